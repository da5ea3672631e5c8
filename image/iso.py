"""``corral-image build --iso``: a hybrid ISO that boots the live OS on BIOS and UEFI, from a CD or a stick.

The ISO holds the build's own ``vmlinuz`` and ``initrd`` (nothing rebuilt) and a fixed ``grub.cfg``; GRUB
from Debian's packages makes it bootable. ``grub-mkrescue`` (grub-common, with grub-pc-bin and
grub-efi-amd64-bin for the two platforms, xorriso, and mtools for the EFI system partition's FAT image)
writes a hybrid image: El Torito boot records for a CD (BIOS and UEFI), and an MBR with GRUB's hybrid
boot code plus a partition table holding the EFI system partition, so that the same file written with
``dd`` to a USB stick (or attached as a disk) boots too.

The kernel command line is the one the QEMU runs use (``image/run.py``), with the console on ``tty0`` as
well; ``ttyS0`` comes last so that it is ``/dev/console`` (what PID 1's journal echo and the serial getty
use). GRUB's own menu is on the serial port and the screen.

Every tool is run with an argument vector; nothing passes through a shell.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image import run

ISO_NAME = "corral.iso"
VOLUME_ID = "CORRAL"
APPEND = f"console=tty0 {run.BASE_APPEND}"  # ttyS0 last: it is /dev/console
MENU_TIMEOUT = 3  # seconds GRUB's menu waits before booting the live OS
MKRESCUE = "grub-mkrescue"
TOOLS = {  # tool -> the Debian package that has it (scripts/install-system-deps.sh installs them)
    MKRESCUE: "grub-common",
    "xorriso": "xorriso",
    "mformat": "mtools",
}
PLATFORM_DIRS = {  # GRUB's platform -> the package that has its modules
    "i386-pc": "grub-pc-bin",
    "x86_64-efi": "grub-efi-amd64-bin",
}
GRUB_LIB = Path("/usr/lib/grub")
MKRESCUE_TIMEOUT = 600.0


class IsoError(RuntimeError):
    pass


def grub_cfg(version: str, append: str = APPEND, timeout: int = MENU_TIMEOUT) -> str:
    """The ISO's ``/boot/grub/grub.cfg`` (pure): one entry, the live OS, with the menu on the serial
    port and the screen."""
    return (
        "# corral live ISO (made by corral-image build --iso)\n"
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        f"set timeout={timeout}\n"
        "set default=0\n"
        f"menuentry 'corral {version} (live)' {{\n"
        f"  linux /boot/vmlinuz {append}\n"
        "  initrd /boot/initrd\n"
        "}\n"
    )


def missing_tools(grub_lib: Path = GRUB_LIB) -> list[str]:
    """What ``grub-mkrescue`` needs and this machine lacks, as ``tool (package)``."""
    missing = [f"{tool} ({package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]
    missing += [f"{grub_lib / platform} ({package})" for platform, package in PLATFORM_DIRS.items()
                if not (grub_lib / platform).is_dir()]
    return missing


def mkrescue_argv(staging: Path, dest: Path) -> list[str]:
    """``grub-mkrescue`` (pure): it makes an image for every platform under ``/usr/lib/grub`` it finds
    (i386-pc and x86_64-efi: :func:`missing_tools` checks both are there; ``--directory`` would take one
    only); what follows ``--`` goes to xorriso. No translations, fonts nor themes: the menu is text, on the
    serial port and the screen (3.1 MiB less)."""
    return [MKRESCUE, "--compress=xz", "--locales=", "--fonts=", "--themes=", "-o", os.fspath(dest),
            os.fspath(staging), "--", "-volid", VOLUME_ID]


def bundle_files(out: Path) -> list[Path]:
    """The upgrade bundle's manifest (and signature) the ISO's /boot carries beside vmlinuz and initrd:
    ``corral install`` verifies what it copies from the live medium against them (image/bundle.py)."""
    names = ("manifest.json", "manifest.json.sig")
    return [out / "bundle" / n for n in names if (out / "bundle" / n).is_file()]


def input_key(out: Path, cfg: str) -> str:
    """What the ISO is made from: the kernel's and initrd's bytes, the bundle's manifest, grub.cfg and this
    module."""
    digest = hashlib.sha256()
    for part in (out / "vmlinuz", out / "initrd", *bundle_files(out), Path(__file__)):
        with open(part, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    digest.update(cfg.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Sizes:
    kernel: int
    initrd: int
    iso: int

    def as_manifest(self, key: str) -> dict[str, Any]:
        """The manifest's ``iso`` section: everything that is neither the kernel nor the initrd is the
        bootloader (GRUB's BIOS core and EFI system partition, its modules, grub.cfg, and the ISO 9660 and
        partition tables around them)."""
        return {"file": ISO_NAME, "bytes": self.iso,
                "components": {"kernel": self.kernel, "initrd": self.initrd,
                               "bootloader": self.iso - self.kernel - self.initrd},
                "input_hash": key}


def build(out: Path, version: str, previous: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], bool]:
    """Make ``out/corral.iso`` from ``out/{vmlinuz,initrd}`` -> (the manifest's ``iso`` section, whether
    it was made now); up to date when ``previous`` (the manifest's last ``iso`` section) has the same
    inputs and the file is still there."""
    missing = missing_tools()
    if missing:
        raise IsoError(f"--iso needs {', '.join(missing)} (scripts/install-system-deps.sh installs them)")
    for name in ("vmlinuz", "initrd"):
        if not (out / name).is_file():
            raise IsoError(f"--iso: {out / name} missing")
    cfg = grub_cfg(version)
    key = input_key(out, cfg)
    dest = out / ISO_NAME
    if previous and previous.get("input_hash") == key and dest.is_file() \
            and dest.stat().st_size == previous.get("bytes"):
        return dict(previous), False
    staging = out / ".iso-staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "boot" / "grub").mkdir(parents=True)
        for name in ("vmlinuz", "initrd"):
            os.link(out / name, staging / "boot" / name)  # same filesystem: no copy of 90 MiB
        for path in bundle_files(out):
            shutil.copyfile(path, staging / "boot" / path.name)
        (staging / "boot" / "grub" / "grub.cfg").write_text(cfg)
        tmp = out / f".{ISO_NAME}.tmp"
        done = subprocess.run(mkrescue_argv(staging, tmp), capture_output=True, text=True, check=False,
                              timeout=MKRESCUE_TIMEOUT)
        if done.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise IsoError(f"{MKRESCUE} failed ({done.returncode}):\n{tail}")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    sizes = Sizes(kernel=(out / "vmlinuz").stat().st_size, initrd=(out / "initrd").stat().st_size,
                  iso=dest.stat().st_size)
    return sizes.as_manifest(key), True
