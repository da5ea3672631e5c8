"""The hybrid ISO (`corral-image build --iso`) booted by the firmware, with no -kernel/-initrd: as a CD-ROM
on BIOS (QEMU's SeaBIOS) and on UEFI (OVMF), and as a plain disk on BIOS (what `dd` to a USB stick gives).
Each boot must reach "corral <version> ready" on the serial console, as the kernel+initrd boots do.

One ISO, made from the image the other guest tests boot (`python -m image build --iso`: the image from
cache, then only the ISO), serves every test. Two boots of its own (UEFI from the CD, BIOS from the ISO
written to a disk), each minutes under TCG; the CD-ROM on BIOS is the boot of the session's
``installed_disk`` (integration/installed.py: the live OS that ``corral install`` runs in), judged here from
its kept serial log and QEMU command line.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from image import iso as iso_mod
from image import manifest
from integration.firmware import ovmf
from integration.guest import BOOT_TIMEOUT, Guest, GuestSpec, build_iso, image_version
from integration.installed import InstalledDisk
from integration.netns import unavailable

pytestmark = pytest.mark.timeout(2400)
# The firmware's part comes on top of a kernel+initrd boot: SeaBIOS and GRUB reading 90 MiB from the CD,
# OVMF's start (a UEFI boot took 244 s to ready on this shared machine, against 171 s on SeaBIOS).
ISO_BOOT_TIMEOUT = max(BOOT_TIMEOUT, 600.0)

MBR_SIGNATURE = b"\x55\xaa"
GPT_PROTECTIVE = 0xEE  # the MBR's one partition when a GPT follows
EFI_SYSTEM_PARTITION = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b").bytes_le  # its GPT type GUID


@pytest.fixture(scope="module")
def iso(guest_image: Path) -> Path:
    path, why = build_iso(guest_image)
    if path is None:
        unavailable(f"the ISO could not be made: {why}", "the ISO build itself failed; its output is above")
    return path


def test_iso_is_hybrid_and_its_sizes_are_in_the_manifest(iso: Path, guest_image: Path,
                                                          tmp_path: Path) -> None:
    data = manifest.read(guest_image / "manifest.json")
    assert data is not None
    section = data["iso"]
    assert section["file"] == iso.name and section["bytes"] == iso.stat().st_size
    parts = section["components"]
    assert parts["kernel"] == (guest_image / "vmlinuz").stat().st_size
    assert parts["initrd"] == (guest_image / "initrd").stat().st_size
    assert parts["bootloader"] > 0
    assert sum(parts.values()) == section["bytes"]
    with iso.open("rb") as f:
        head = f.read(64 * 1024)
    assert head[0x8001:0x8006] == b"CD001", "no ISO 9660 volume descriptor"
    assert head[510:512] == MBR_SIGNATURE, "no MBR: a stick written with dd would not boot"
    assert head[446 + 4] == GPT_PROTECTIVE, "the MBR does not announce a GPT"
    assert head[512:520] == b"EFI PART", "no GPT header at LBA 1"
    entries_lba = int.from_bytes(head[512 + 72:512 + 80], "little")
    count = int.from_bytes(head[512 + 80:512 + 84], "little")
    size = int.from_bytes(head[512 + 84:512 + 88], "little")
    with iso.open("rb") as f:
        f.seek(entries_lba * 512)
        table = f.read(count * size)
    types = [table[i * size:i * size + 16] for i in range(count)]
    assert EFI_SYSTEM_PARTITION in types, "no EFI system partition in the GPT: UEFI could not boot a stick"
    # El Torito boot images for both firmwares (a CD): GRUB's BIOS image and the EFI system partition
    report = subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                            capture_output=True, text=True, check=True, timeout=120).stdout
    images = [line.split(":", 1)[1].split()[1] for line in report.splitlines()
              if line.startswith("El Torito boot img")]
    assert sorted(images) == ["BIOS", "UEFI"], report
    # the ISO's grub.cfg boots the build's kernel with the QEMU runs' command line, consoles on both
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/boot/grub/grub.cfg",
                    str(tmp_path / "grub.cfg")], capture_output=True, check=True, timeout=120)
    cfg = (tmp_path / "grub.cfg").read_text()
    assert f"linux /boot/vmlinuz {iso_mod.APPEND}\n" in cfg
    assert "console=tty0" in cfg and "console=ttyS0,115200" in cfg


def _boot(make_guest: Callable[..., Guest], iso: Path, guest_image: Path, name: str, iso_as: str = "cdrom",
          uefi: bool = False) -> Guest:
    g = make_guest(GuestSpec(iso=iso, iso_as=iso_as, uefi=uefi, boot_timeout=ISO_BOOT_TIMEOUT), name=name)
    assert "-kernel" not in g.argv and "-initrd" not in g.argv
    assert g.version == image_version(guest_image)
    return g


def test_iso_as_cdrom_boots_on_bios(installed_disk: InstalledDisk, guest_image: Path) -> None:
    """The live boot ``corral install`` ran in (the session's installed_disk) was this boot."""
    if installed_disk.live_log is None:
        pytest.skip("CORRAL_INSTALLED_DISK: the reused directory keeps no live/serial.log")
    argv = installed_disk.live_argv
    assert "-kernel" not in argv and "-initrd" not in argv, argv
    assert "ide-cd,drive=cd,bus=ide.1,bootindex=0" in argv and "pflash" not in " ".join(argv), argv
    assert installed_disk.live_version == image_version(guest_image)
    log = installed_disk.live_log.read_text(errors="replace")
    assert f"corral {installed_disk.live_version} ready" in log
    assert f"Booting `corral {installed_disk.live_version} (live)'" in log  # GRUB's menu, on the serial port
    assert "console=tty0 console=ttyS0,115200" in log  # the kernel's command line came from grub.cfg
    assert "efi: EFI v" not in log


def test_iso_as_cdrom_boots_on_uefi(make_guest: Callable[..., Guest], iso: Path, guest_image: Path) -> None:
    if ovmf() is None:
        unavailable("no OVMF in /usr/share/OVMF (apt-get install ovmf)")
    g = _boot(make_guest, iso, guest_image, "uefi-cdrom", uefi=True)
    assert "efi: EFI v" in g.serial.text()  # the kernel was started by the UEFI firmware


def test_iso_written_to_a_disk_boots_on_bios(make_guest: Callable[..., Guest], iso: Path,
                                             guest_image: Path) -> None:
    g = _boot(make_guest, iso, guest_image, "bios-disk", iso_as="disk")
    assert "ide-cd" not in " ".join(g.argv)
    assert "console=tty0 console=ttyS0,115200" in g.serial.text()
