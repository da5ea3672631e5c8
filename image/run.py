"""``corral-image run`` / ``python -m image run``: boot the built image in QEMU.

The build output (``vmlinuz``, ``initrd``, ``manifest.json``) is booted with the serial console on the
terminal (``-serial mon:stdio``: Ctrl-A X quits, Ctrl-A C switches to QEMU's monitor), QEMU's user
network with ssh forwarded from ``127.0.0.1:PORT``, a QMP socket, and optional extra disks and NICs.

The machine is ``pc`` (i440FX + PIIX4): its ACPI has the power button (``system_powerdown``) and PCI
hotplug on the root bus (the guest's ``acpiphp``), so QMP ``device_add`` of a virtio disk or NIC needs no
pre-created hotplug ports. Under TCG (no KVM here) the CPU is QEMU's default model.

``--config FILE`` delivers a cloud-config to the guest without rebuilding: a copy of the initrd gets an
uncompressed newc cpio segment appended holding ``/etc/corral/seed/user-data`` (the kernel unpacks
concatenated archives in order, so the segment's file lands in the initramfs next to the image's own).

The pure parts (:func:`qemu_argv`, :func:`parse_size`, :func:`nic_mac`) are separate from the I/O
(:func:`prepare`, which makes the run directory, disks and initrd copy) so tests and the guest harness
(``integration/guest.py``) use the same command line as a person at the terminal.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / ".cache" / "image" / "out"
DEFAULT_RUN_DIR = REPO_ROOT / ".cache" / "image" / "run"
DEFAULT_MEMORY = "1536M"
MIN_MEMORY_MIB = 1024
DEFAULT_SSH_PORT = 2222
DEFAULT_STATE_SIZE = "2G"
QEMU = "qemu-system-x86_64"
# Where --config lands in the guest: the image's datasource is the NoCloud-style directory
# `file:/etc/corral/seed` (image/config/10-image.yml), which reads its `user-data` file.
USER_DATA_PATH = "etc/corral/seed/user-data"
BASE_APPEND = "console=ttyS0,115200 panic=-1"  # panic=-1 with -no-reboot: a kernel panic ends QEMU
MAC_PREFIX = "52:54:00:c0:ff"  # QEMU's locally administered OUI; NIC n gets ...:NN
DISK_SERIAL_PREFIX = "corral-disk"  # virtio-blk serial, seen by the guest as ID_SERIAL / sysfs serial
STATE_DISK_SERIAL = "corral-state"
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class RunError(Exception):
    """A bad option or a missing input, with a message that names it."""


def parse_size(text: str, what: str = "size") -> int:
    """``"512M"``, ``"2G"``, ``"1GiB"`` or bytes -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m:
        raise RunError(f"{what}: {text!r} is not a size like 512M or 2G")
    value = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if value <= 0:
        raise RunError(f"{what}: {text!r} must be more than 0")
    return value


def nic_mac(index: int) -> str:
    """The MAC of NIC ``index`` (0 is the boot NIC with the ssh forward): stable, so rules can match it."""
    if not 0 <= index <= 0xFF:
        raise RunError(f"--nic: NIC index {index} out of range (0..255)")
    return f"{MAC_PREFIX}:{index:02x}"


@dataclass(frozen=True)
class Disk:
    """A raw disk image attached as virtio-blk; ``serial`` is what the guest sees as its serial. With
    ``bootindex`` the firmware boots from it (a hybrid ISO written to a stick, as a disk)."""

    path: Path
    serial: str
    bootindex: int | None = None
    format: str = "raw"  # or qcow2 (an overlay of an installed disk, integration/installed.py)


@dataclass(frozen=True)
class Uefi:
    """UEFI firmware as two pflash drives: OVMF's code (read-only) and a writable copy of its variables."""

    code: Path
    vars: Path


@dataclass(frozen=True)
class Machine:
    """Everything :func:`qemu_argv` needs; paths are absolute. Without ``kernel`` (and ``initrd``) the
    firmware boots: from ``cdrom`` (an ISO on an IDE CD-ROM), or a disk with a ``bootindex``."""

    kernel: Path | None
    initrd: Path | None
    append: str = ""
    memory_mib: int = 1536
    cpus: int = 2
    disks: tuple[Disk, ...] = ()
    nics: int = 1  # the boot NIC included
    ssh_port: int | None = DEFAULT_SSH_PORT
    qmp: Path | None = None
    serial: str = "mon:stdio"  # a QEMU -serial argument; the harness uses "stdio" on pipes
    extra_args: tuple[str, ...] = ()
    cdrom: Path | None = None
    uefi: Uefi | None = None  # None: QEMU's default firmware (SeaBIOS)


def qemu_argv(m: Machine, qemu: str = QEMU) -> list[str]:
    """The QEMU command line for ``m`` (pure)."""
    if m.memory_mib < MIN_MEMORY_MIB:
        raise RunError(f"--memory: {m.memory_mib}M is too little; the guest needs at least {MIN_MEMORY_MIB}M")
    if m.nics < 0:
        raise RunError("--nic: must not be negative")
    if (m.kernel is None) != (m.initrd is None):
        raise RunError("a kernel needs an initrd and an initrd a kernel")
    if m.kernel is None and m.cdrom is None and not any(d.bootindex is not None for d in m.disks):
        raise RunError("nothing to boot: no kernel, no CD-ROM and no disk with a bootindex")
    argv = [
        qemu, "-nodefaults", "-display", "none", "-no-user-config",
        "-machine", "pc", "-accel", "tcg", "-cpu", "max",
        "-m", f"{m.memory_mib}M", "-smp", str(m.cpus),
    ]
    if m.uefi is not None:
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={m.uefi.code}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={m.uefi.vars}"]
    if m.kernel is not None and m.initrd is not None:
        append = " ".join(a for a in (BASE_APPEND, m.append.strip()) if a)
        argv += ["-kernel", os.fspath(m.kernel), "-initrd", os.fspath(m.initrd), "-append", append]
    argv += [
        "-serial", m.serial,
        "-device", "virtio-rng-pci",  # entropy early: dockerd and sshd would otherwise wait for it
        "-no-reboot",
    ]
    for i in range(m.nics):
        netdev = f"user,id=n{i}"
        if i == 0 and m.ssh_port is not None:
            netdev += f",hostfwd=tcp:127.0.0.1:{m.ssh_port}-:22"
        argv += ["-netdev", netdev, "-device", f"virtio-net-pci,netdev=n{i},mac={nic_mac(i)}"]
    for i, disk in enumerate(m.disks):
        argv += [
            "-blockdev", f"driver=file,filename={disk.path},node-name=f{i},cache.direct=off",
            "-blockdev", f"driver={disk.format},file=f{i},node-name=d{i}",
            "-device", f"virtio-blk-pci,drive=d{i},serial={disk.serial}"
                       + (f",bootindex={disk.bootindex}" if disk.bootindex is not None else ""),
        ]
    if m.cdrom is not None:
        argv += ["-blockdev", f"driver=file,filename={m.cdrom},node-name=cdf,read-only=on",
                 "-blockdev", "driver=raw,file=cdf,node-name=cd,read-only=on",
                 "-device", "ide-cd,drive=cd,bus=ide.1,bootindex=0"]
    if m.qmp is not None:
        argv += ["-qmp", f"unix:{m.qmp},server=on,wait=off"]
    argv += list(m.extra_args)
    return argv


# ---- I/O: the run directory ------------------------------------------------------------------------


def make_disk(path: Path, size: int) -> Path:
    """A sparse raw image of ``size`` bytes (reads as zeros), created fresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def user_data_segment(config: Path, workdir: Path) -> bytes:
    """An uncompressed newc cpio archive holding ``config`` at ``USER_DATA_PATH`` (mode 0600)."""
    try:
        data = config.read_bytes()
    except OSError as exc:
        raise RunError(f"--config: cannot read {config}: {exc.strerror}") from exc
    stage = Path(tempfile.mkdtemp(prefix="user-data.", dir=workdir))
    try:
        target = stage / USER_DATA_PATH
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        target.chmod(0o600)
        parents = [str(p) for p in reversed(Path(USER_DATA_PATH).parents) if str(p) != "."]
        names = "".join(f"{n}\n" for n in [*parents, USER_DATA_PATH])
        out = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=stage,
                             input=names.encode(), capture_output=True, check=False, timeout=60)
        if out.returncode != 0:
            raise RunError(f"cpio failed: {out.stderr.decode(errors='replace').strip()}")
        return out.stdout
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def initrd_with_config(initrd: Path, config: Path, dest: Path) -> Path:
    """A copy of ``initrd`` with the user-data cpio segment appended (the original is not changed)."""
    segment = user_data_segment(config, dest.parent)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(initrd, tmp)
    with open(tmp, "ab") as f:
        pad = -f.tell() % 512  # zeros between archives are skipped by the kernel; keep the next aligned
        f.write(b"\0" * pad + segment)
    os.replace(tmp, dest)
    return dest


@dataclass
class Options:
    """``corral-image run``'s options, as parsed (sizes and paths still as given)."""

    out: Path = DEFAULT_OUT
    run_dir: Path = DEFAULT_RUN_DIR
    disks: list[str] = field(default_factory=list)
    state_disk: str | None = None
    state_size: str = DEFAULT_STATE_SIZE
    nics: int = 0  # extra NICs, beyond the boot NIC
    append: str = ""
    config: Path | None = None
    ssh_port: int | None = DEFAULT_SSH_PORT
    memory: str = DEFAULT_MEMORY
    qmp: Path | None = None
    serial: str = "mon:stdio"


def _state_disk(spec: str, run_dir: Path, new_size: str = DEFAULT_STATE_SIZE) -> Path:
    """``--state-disk``: a size makes a fresh zeroed image in the run dir; anything else is a path, to an
    image kept from earlier runs, or made (sparse, zeroed, ``new_size``) when it does not exist yet: the
    guest formats a zeroed state disk at its first boot and keeps it from then on."""
    if _SIZE.match(spec):
        return make_disk(run_dir / "state.img", parse_size(spec, "--state-disk"))
    path = Path(spec).resolve()
    if path.exists():
        if not path.is_file():
            raise RunError(f"--state-disk: {spec} is not a disk image file")
        return path
    if not path.parent.is_dir():
        raise RunError(f"--state-disk: {spec}: no directory {path.parent} to make it in")
    print(f"corral-image run: new state disk {path} ({new_size}; the guest formats it at its first boot)",
          file=sys.stderr)
    return make_disk(path, parse_size(new_size, "--state-size"))


def prepare(opts: Options) -> Machine:
    """Check the build output, make the run directory (disks, initrd with config) -> the machine to boot.

    The state disk (when given) is the first virtio disk, so the guest sees it as ``/dev/vda``; extra
    disks follow as ``/dev/vdb``, ``/dev/vdc``..."""
    out = opts.out.resolve()
    kernel, initrd = out / "vmlinuz", out / "initrd"
    for f in (kernel, initrd):
        if not f.is_file():
            raise RunError(f"--out: {f} missing; build the image first (python -m image build -o {out})")
    memory = parse_size(opts.memory, "--memory") // (1 << 20)
    run_dir = opts.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    disks: list[Disk] = []
    if opts.state_disk is not None:
        disks.append(Disk(_state_disk(opts.state_disk, run_dir, opts.state_size), STATE_DISK_SERIAL))
    for i, size in enumerate(opts.disks):
        path = make_disk(run_dir / f"disk{i}.img", parse_size(size, f"--disk #{i + 1}"))
        disks.append(Disk(path, f"{DISK_SERIAL_PREFIX}{i}"))
    if opts.config is not None:
        initrd = initrd_with_config(initrd, opts.config, run_dir / "initrd")
    qmp = opts.qmp.resolve() if opts.qmp is not None else None
    return Machine(kernel=kernel, initrd=initrd, append=opts.append, memory_mib=memory,
                   disks=tuple(disks), nics=1 + opts.nics, ssh_port=opts.ssh_port, qmp=qmp,
                   serial=opts.serial)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral-image run",
        description="Boot the built corral image in QEMU (TCG) with the serial console on this terminal "
                    "(Ctrl-A X quits).")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="the build output: vmlinuz, initrd, manifest.json (default: .cache/image/out)")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                   help="where disks and the initrd copy go (default: .cache/image/run)")
    p.add_argument("--disk", action="append", default=[], metavar="SIZE", dest="disks",
                   help="an extra empty raw disk of SIZE (e.g. 1G), repeatable: /dev/vdb, /dev/vdc...")
    p.add_argument("--state-disk", metavar="SIZE|PATH",
                   help="the state disk as /dev/vda: a new zeroed image of SIZE for this run, or an image "
                        "file kept across runs (made, zeroed, at --state-size when it does not exist)")
    p.add_argument("--state-size", default=DEFAULT_STATE_SIZE, metavar="SIZE",
                   help=f"size of a new state disk for --state-disk PATH (default {DEFAULT_STATE_SIZE})")
    p.add_argument("--nic", type=int, default=0, metavar="N", dest="nics",
                   help="N extra NICs on QEMU's user network (MACs " + nic_mac(1) + ", ...)")
    p.add_argument("--append", default="", metavar="ARGS",
                   help="more kernel command line (e.g. 'corral.password=secret')")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a cloud-config delivered as /" + USER_DATA_PATH)
    p.add_argument("--ssh-port", type=int, default=DEFAULT_SSH_PORT, metavar="PORT",
                   help=f"forward 127.0.0.1:PORT to the guest's sshd (default {DEFAULT_SSH_PORT}; 0: none)")
    p.add_argument("--memory", default=DEFAULT_MEMORY, metavar="SIZE",
                   help=f"guest memory (default {DEFAULT_MEMORY}; at least {MIN_MEMORY_MIB}M)")
    p.add_argument("--qmp", type=Path, metavar="PATH", help="a QMP unix socket (python -m image.qmp, socat)")
    p.add_argument("--print", action="store_true", dest="print_only",
                   help="print the QEMU command line instead of running it")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    opts = Options(out=args.out, run_dir=args.run_dir, disks=args.disks, state_disk=args.state_disk,
                   state_size=args.state_size, nics=args.nics, append=args.append, config=args.config,
                   ssh_port=args.ssh_port or None, memory=args.memory, qmp=args.qmp)
    try:
        machine = prepare(opts)
        argv_ = qemu_argv(machine)
    except RunError as exc:
        print(f"corral-image run: {exc}", file=sys.stderr)
        return 2
    if args.print_only:
        print(" ".join(argv_))
        return 0
    if shutil.which(QEMU) is None:
        print(f"corral-image run: {QEMU} not found (apt-get install qemu-system-x86)", file=sys.stderr)
        return 2
    if machine.ssh_port is not None:
        print(f"corral-image run: ssh -p {machine.ssh_port} rancher@127.0.0.1 once ready; Ctrl-A X quits",
              file=sys.stderr)
    return subprocess.run(argv_, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
