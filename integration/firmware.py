"""The firmware boots of a guest (integration/guest.py): Debian's OVMF for UEFI, and the machines that
boot through the firmware from an ISO or an installed disk instead of QEMU's -kernel/-initrd."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from image import run as run_mod

if TYPE_CHECKING:
    from integration.guest import GuestSpec


OVMF_DIR = Path("/usr/share/OVMF")
OVMF_PAIRS = (("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"), ("OVMF_CODE.fd", "OVMF_VARS.fd"))


def ovmf() -> tuple[Path, Path] | None:
    """Debian's OVMF (package ovmf): the code and the variables' template, or None when not installed."""
    for code, variables in OVMF_PAIRS:
        if (OVMF_DIR / code).is_file() and (OVMF_DIR / variables).is_file():
            return OVMF_DIR / code, OVMF_DIR / variables
    return None


def _uefi(workdir: Path, spec: GuestSpec) -> run_mod.Uefi | None:
    if not spec.uefi:
        return None
    found = ovmf()
    if found is None:
        raise _error(f"UEFI boot: no OVMF in {OVMF_DIR} (apt-get install ovmf)")
    variables = workdir / "OVMF_VARS.fd"
    shutil.copyfile(found[1], variables)  # the firmware writes its variables: a copy per boot
    return run_mod.Uefi(found[0], variables)


def disk_machine(workdir: Path, spec: GuestSpec, ssh_port: int, qmp: Path) -> run_mod.Machine:
    """The machine whose firmware boots ``spec.boot_disk`` (qcow2), with ``spec.images`` after it."""
    assert spec.boot_disk is not None
    boot = run_mod.Disk(Path(spec.boot_disk).resolve(), "corral-installed", bootindex=0, format="qcow2")
    more = tuple(run_mod.Disk(Path(p).resolve(), f"corral-image{i}") for i, p in enumerate(spec.images))
    memory = run_mod.parse_size(spec.memory, "memory") // (1 << 20)
    return run_mod.Machine(kernel=None, initrd=None, memory_mib=memory, disks=(boot, *more),
                           nics=1 + spec.nics, ssh_port=ssh_port, qmp=qmp, serial="stdio",
                           uefi=_uefi(workdir, spec))


def iso_machine(workdir: Path, spec: GuestSpec, ssh_port: int, qmp: Path) -> run_mod.Machine:
    """The machine that boots ``spec.iso`` through the firmware (no -kernel/-initrd), with the virtio
    disks ``spec`` names after it: ``state_disk`` (an image's path: the live OS's state, its user config
    in it; or a size), ``disks`` (fresh, zeroed) and ``images``, as /dev/vda, /dev/vdb... in that order."""
    assert spec.iso is not None
    iso = Path(spec.iso).resolve()
    uefi = _uefi(workdir, spec)
    disks: tuple[run_mod.Disk, ...] = ()
    cdrom: Path | None = iso
    if spec.iso_as == "disk":
        stick = workdir / "stick.img"
        shutil.copyfile(iso, stick)  # dd if=corral.iso of=/dev/sdX, as a file
        disks, cdrom = (run_mod.Disk(stick, "corral-stick", bootindex=0),), None
    elif spec.iso_as != "cdrom":
        raise _error(f"iso_as={spec.iso_as!r}: expected cdrom or disk")
    if spec.state_disk is not None:
        state = Path(spec.state_disk) if isinstance(spec.state_disk, Path) else \
            run_mod.make_disk(workdir / "state.img", run_mod.parse_size(spec.state_disk, "state_disk"))
        disks += (run_mod.Disk(state.resolve(), run_mod.STATE_DISK_SERIAL),)
    disks += tuple(run_mod.Disk(run_mod.make_disk(workdir / f"disk{i}.img", run_mod.parse_size(size, "disk")),
                                f"{run_mod.DISK_SERIAL_PREFIX}{i}") for i, size in enumerate(spec.disks))
    disks += tuple(run_mod.Disk(Path(p).resolve(), f"corral-image{i}") for i, p in enumerate(spec.images))
    memory = run_mod.parse_size(spec.memory, "memory") // (1 << 20)
    return run_mod.Machine(kernel=None, initrd=None, memory_mib=memory, disks=disks, nics=1 + spec.nics,
                           ssh_port=ssh_port, qmp=qmp, serial="stdio", cdrom=cdrom, uefi=uefi)


def _error(message: str) -> AssertionError:
    from integration.guest import GuestError  # guest.py imports this module

    return GuestError(message)
