"""``corral install``: from the live OS, make a disk that boots corral by itself (docs/install.md).

``refusals`` (pure) says why a disk must not be taken without ``--force``: a signature on it or on one
of its partitions (a filesystem, a partition table, RAID or LVM metadata: what ``wipefs`` finds), or the
disk or one of its partitions mounted or used as swap. ``inspect`` gathers those facts.

``install`` carries the steps out, each reported to ``progress``: partition (GPT, osdisk/layout.py),
filesystems, the bootloader (BIOS and UEFI, osdisk/bootloader.py; grub.cfg and grubenv from the boot
selection, osdisk/bootmenu.py and osdisk/grubenv.py), the version into slot A (``write_slot``), the
config into the state partition where PID 1's config loader reads it (``var/lib/corral/conf``, as a
committed generation: supervisor/config/generations.py), and a sync.

The version installed is a bundle (osdisk/bundle.py), verified before anything is written: by default
the live medium's (the ISO's ``/boot`` holds vmlinuz, initrd and the bundle's manifest; the medium is
found by its label ``CORRAL``), or a bundle given with ``--image``."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osdisk import bootloader, bootmenu, bundle, disk, grubenv, layout
from osdisk.disk import Tools
from supervisor.config.generations import CLOUD_CONFIG, Generations
from supervisor.mountinfo import parse_mountinfo

LIVE_LABEL = "CORRAL"  # the ISO's volume id (image/iso.py)
LIVE_BUNDLE_DIR = "boot"
CONFIG_DIR = Path("var/lib/corral/conf")  # on the state partition: bound onto /var/lib/corral at boot
SYS_BLOCK = Path("/sys/class/block")
STEPS = ("check", "partition", "filesystems", "bootloader", "slot A", "config", "sync")

Progress = Callable[[str, str], None]


class InstallError(RuntimeError):
    pass


@dataclass(frozen=True)
class DeviceFacts:
    """What is on a disk now: ``signatures`` ("vdb: gpt partition table at 0x200", ...) and ``in_use``
    ("vdb1 mounted on /mnt", "vdb2 is swap")."""

    device: str
    signatures: tuple[str, ...] = ()
    in_use: tuple[str, ...] = ()


def refusals(facts: DeviceFacts) -> list[str]:
    """Why ``corral install`` will not take this disk without ``--force`` (pure); empty: it is blank."""
    return [*facts.in_use, *facts.signatures]


def describe_signatures(wipefs_json: str) -> list[str]:
    """``wipefs --no-act --json``'s output as one line per signature (pure)."""
    if not wipefs_json.strip():
        return []
    found = []
    for sig in json.loads(wipefs_json).get("signatures", []):
        what = sig.get("type", "?")
        label = f" labelled {sig['label']!r}" if sig.get("label") else ""
        kind = " partition table" if what in ("gpt", "dos", "PMBR") else ""
        found.append(f"{sig.get('device', '?')}: {what}{kind}{label} at offset {sig.get('offset', '?')}")
    return found


def block_name(device: str) -> str:
    return os.path.basename(os.path.realpath(device))


def partitions_of(name: str, sys_block: Path = SYS_BLOCK) -> list[str]:
    """The kernel's partitions of disk ``name`` (``vdb1``, ...)."""
    try:
        return sorted(p.name for p in (sys_block / name).iterdir()
                      if p.name.startswith(name) and (p / "partition").exists())
    except OSError:
        return []


def devno(name: str, sys_block: Path = SYS_BLOCK) -> tuple[int, int] | None:
    try:
        major, minor = (sys_block / name / "dev").read_text().strip().split(":")
    except (OSError, ValueError):
        return None
    return int(major), int(minor)


def inspect(device: str, tools: Tools, mountinfo: str | None = None, swaps: str | None = None,
            sys_block: Path = SYS_BLOCK) -> DeviceFacts:
    """The facts ``refusals`` judges, read from the system."""
    name = block_name(device)
    if not (sys_block / name).exists():
        raise InstallError(f"{device} is not a block device")
    if (sys_block / name / "partition").exists():
        raise InstallError(f"{device} is a partition: give the whole disk")
    names = [name, *partitions_of(name, sys_block)]
    numbers = {devno(n, sys_block): n for n in names}
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    if swaps is None:
        try:
            swaps = Path("/proc/swaps").read_text()
        except OSError:
            swaps = ""
    in_use = [f"{numbers[e.devno]} is mounted on {e.target}" for e in parse_mountinfo(mountinfo)
              if e.devno in numbers]
    in_use += [f"{block_name(line.split()[0])} is swap" for line in swaps.splitlines()[1:]
               if line.split() and block_name(line.split()[0]) in names]
    signatures: list[str] = []
    for n in names:
        signatures += describe_signatures(tools.run(["wipefs", "--no-act", "--json", f"/dev/{n}"]))
    return DeviceFacts(device, tuple(signatures), tuple(in_use))


def find_live_medium(sys_block: Path = SYS_BLOCK, dev: Path = Path("/dev")) -> str | None:
    """The block device holding the live ISO (filesystem label ``CORRAL``), CD-ROMs included."""
    link = dev / "disk" / "by-label" / LIVE_LABEL
    if link.exists():
        return os.path.realpath(link)
    from storage import libblkid

    if not libblkid.available():
        return None
    try:
        names = sorted(os.listdir(sys_block))
    except OSError:
        return None
    for name in names:
        if name.startswith(("loop", "ram", "zram")):
            continue
        try:
            status, values = libblkid.probe(os.fspath(dev / name))
        except OSError:
            continue
        if status == libblkid.FOUND and values.get("LABEL") == LIVE_LABEL:
            return os.fspath(dev / name)
    return None


@contextlib.contextmanager
def live_bundle(tools: Tools) -> Iterator[bundle.Bundle]:
    """The running version's bundle on the live medium, mounted read-only for the block."""
    medium = find_live_medium()
    if medium is None:
        raise InstallError(f"no live medium (a filesystem labelled {LIVE_LABEL}: the ISO) to install "
                           "from; give a bundle with --image")
    with disk.mounted(medium, "iso9660", tools, read_only=True) as root:
        yield bundle.read(root / LIVE_BUNDLE_DIR)


@dataclass
class Report:
    device: str
    version: str = ""
    slot: str = "A"
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "version": self.version, "slot": self.slot, "steps": self.steps}


class _Steps:
    def __init__(self, report: Report, progress: Progress) -> None:
        self.report = report
        self.progress = progress

    @contextlib.contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        started = time.monotonic()
        self.progress(name, detail)
        yield
        self.report.steps.append({"step": name, "detail": detail,
                                  "seconds": round(time.monotonic() - started, 2)})


def esp_files(boot_files: Path = bootloader.BOOT_FILES) -> dict[str, bytes]:
    """What the ESP holds: GRUB's UEFI image where firmware looks for removable media, grub.cfg and
    grubenv (slot A the default)."""
    return {
        "EFI/BOOT/BOOTX64.EFI": (boot_files / "BOOTX64.EFI").read_bytes(),
        bootmenu.CFG_PATH.lstrip("/"): bootmenu.grub_cfg().encode(),
        bootmenu.ENV_PATH.lstrip("/"): grubenv.render({"default_slot": "A"}),
    }


def install(device: str, source: bundle.Bundle, config: bytes | None, progress: Progress,
            tools: Tools | None = None, boot_files: Path = bootloader.BOOT_FILES,
            partition_paths: Callable[[layout.Layout], dict[int, str]] | None = None) -> Report:
    """Partition, format, make bootable, write ``source`` into slot A and ``config`` into the state
    partition. ``source`` is verified and the disk judged by the caller. ``partition_paths`` stands in
    for the kernel's partition nodes (tests on a host whose loop devices are not scanned)."""
    tools = tools or Tools()
    report = Report(device, version=source.version)
    steps = _Steps(report, progress)
    plan = layout.plan(disk.device_bytes(device))
    with steps.step("partition", f"GPT: {', '.join(p.name for p in plan.partitions)}"):
        paths = disk.partition(device, plan, tools, settle=partition_paths is None)
        if partition_paths is not None:
            paths = partition_paths(plan)
    with steps.step("filesystems", "vfat CORRAL_EFI, ext4 CORRAL_A, CORRAL_B, CORRAL_STATE"):
        disk.make_filesystems(paths, plan, tools)
    with steps.step("bootloader", "GRUB for BIOS (MBR, BIOS boot partition) and UEFI (BOOTX64.EFI)"):
        bootloader.write_bios(device, plan.bios.start, plan.bios.size, boot_files)
        disk.write_esp(paths[plan.esp.number], esp_files(boot_files), tools)
    with steps.step("slot A", f"corral {source.version}"):
        disk.write_slot(paths[plan.slot("A").number], source, tools, layout.slot_label("A"))
    with steps.step("config", "--config into the state partition" if config else "no --config"), \
            disk.mounted(paths[plan.state.number], "ext4", tools) as state:
        conf = state / CONFIG_DIR
        conf.mkdir(parents=True, exist_ok=True)
        if config is not None:
            Generations(conf).commit({CLOUD_CONFIG: config})
    with steps.step("sync"):
        os.sync()
    return report


def check_source(source: bundle.Bundle, trusted_keys: Sequence[str]) -> None:
    """Verify the bundle to install; InstallError naming what is wrong."""
    try:
        bundle.verify(source, trusted_keys)
    except bundle.BundleError as exc:
        raise InstallError(str(exc)) from None

