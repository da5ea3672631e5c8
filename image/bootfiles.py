"""GRUB images the live OS needs to make a disk bootable (``corral install``; docs/install.md).

Made at image build time with Debian's ``grub-mkimage`` (grub-common, with grub-pc-bin and
grub-efi-amd64-bin, as for the ISO) and put into the root under ``/usr/lib/corral/boot/``:

- ``boot.img``: GRUB's 512-byte i386-pc boot sector (copied from grub-pc-bin);
- ``core.img``: i386-pc core image with every module the installed disk's grub.cfg uses built in, and
  its prefix ``(,gpt2)/grub``: the ESP of the disk the BIOS booted (GRUB fills in that disk);
- ``BOOTX64.EFI``: the x86_64-efi image, prefix ``/grub`` on the partition it was loaded from (the ESP).

So the live OS needs none of GRUB's tools or module directories: ``osdisk/bootloader.py`` patches
boot.img and core.img as ``grub-bios-setup`` does and writes them, and copies BOOTX64.EFI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

GRUB_LIB = Path("/usr/lib/grub")
DEST = Path("usr/lib/corral/boot")
MKIMAGE = "grub-mkimage"
MKIMAGE_TIMEOUT = 120.0
COMMON_MODULES = ("part_gpt", "part_msdos", "fat", "ext2", "normal", "linux", "loadenv", "test", "echo",
                  "configfile", "serial", "terminal", "search", "search_label", "regexp", "minicmd", "halt",
                  "reboot", "sleep", "gzio", "cat")
PLATFORMS = {  # platform -> (the file it makes, its prefix, its own modules)
    "i386-pc": ("core.img", "(,gpt2)/grub", ("biosdisk",)),
    "x86_64-efi": ("BOOTX64.EFI", "/grub", ("efi_gop",)),
}
FORMATS = {"i386-pc": "i386-pc", "x86_64-efi": "x86_64-efi"}


class BootFilesError(RuntimeError):
    pass


def mkimage_argv(platform: str, output: Path, grub_lib: Path = GRUB_LIB) -> list[str]:
    """``grub-mkimage`` for one platform (pure)."""
    _name, prefix, extra = PLATFORMS[platform]
    return [MKIMAGE, "--directory", os.fspath(grub_lib / platform), "--format", FORMATS[platform],
            "--prefix", prefix, "--output", os.fspath(output), "--compression", "auto",
            *COMMON_MODULES, *extra]


def input_key(grub_lib: Path = GRUB_LIB) -> str:
    """What the boot files are made from: this module and GRUB's images and modules' versions (their
    sizes and names: the files are large, and a GRUB update changes them)."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for platform in PLATFORMS:
        for path in sorted((grub_lib / platform).glob("*")):
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]


def install(root: Path, grub_lib: Path = GRUB_LIB) -> dict[str, int]:
    """Make the boot files into ``root/usr/lib/corral/boot``; returns name -> bytes."""
    if shutil.which(MKIMAGE) is None:
        raise BootFilesError(f"{MKIMAGE} is missing (grub-common; scripts/install-system-deps.sh)")
    dest = root / DEST
    dest.mkdir(parents=True, exist_ok=True)
    for platform, (name, _prefix, _extra) in PLATFORMS.items():
        if not (grub_lib / platform).is_dir():
            raise BootFilesError(f"{grub_lib / platform} is missing (grub-pc-bin, grub-efi-amd64-bin)")
        done = subprocess.run(mkimage_argv(platform, dest / name, grub_lib), capture_output=True, text=True,
                              check=False, timeout=MKIMAGE_TIMEOUT)
        if done.returncode != 0:
            raise BootFilesError(f"{MKIMAGE} {platform} failed ({done.returncode}): {done.stderr.strip()}")
    shutil.copyfile(grub_lib / "i386-pc" / "boot.img", dest / "boot.img")
    return {p.name: p.stat().st_size for p in sorted(dest.iterdir())}
