"""GRUB's BIOS boot code patched for the installed disk (osdisk/bootloader.py), as grub-bios-setup does for
a core image in a BIOS boot partition; with the real boot.img and a real core.img when GRUB is here."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from osdisk import bootloader
from osdisk.bootloader import BootloaderError, bios_sectors

GRUB_PC = Path("/usr/lib/grub/i386-pc")


def protective_mbr() -> bytes:
    mbr = bytearray(512)
    mbr[0x1B8:0x1BC] = b"\x12\x34\x56\x78"  # a disk signature, kept
    mbr[0x1BE:0x1CE] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack("<II", 1, 0xFFFFFFFF)
    mbr[0x1FE:0x200] = b"\x55\xaa"
    return bytes(mbr)


def images() -> tuple[bytes, bytes]:
    boot = bytearray(b"\xeb\x63\x90" + bytes(509))
    boot[0x66:0x68] = b"\x75\x02"  # the drive check's jump
    boot[0x1FE:0x200] = b"\x55\xaa"
    core = bytearray(b"\xaa" * (3 * 512 + 100))  # not a whole number of sectors
    return bytes(boot), bytes(core)


def test_boot_sector_points_at_core_and_keeps_the_partition_table() -> None:
    boot_img, core_img = images()
    mbr, core = bios_sectors(boot_img, core_img, protective_mbr(), core_lba=2048, room=1 << 20)
    assert len(mbr) == 512 and mbr[:3] == boot_img[:3]
    assert struct.unpack_from("<Q", mbr, 0x5C)[0] == 2048
    assert mbr[0x66:0x68] == b"\x90\x90"
    assert mbr[0x1B8:0x200] == protective_mbr()[0x1B8:0x200]
    assert len(core) == 4 * 512
    start, length, segment = struct.unpack_from("<QHH", core, 512 - 12)
    assert (start, length, segment) == (2049, 3, 0x820)
    assert core[512 - 24:512 - 12] == bytes(12)  # the list ends there
    assert core[512:3 * 512 + 100] == core_img[512:]


def test_refusals() -> None:
    boot_img, core_img = images()
    with pytest.raises(BootloaderError, match="does not fit the BIOS boot partition"):
        bios_sectors(boot_img, core_img, protective_mbr(), 2048, room=1024)
    with pytest.raises(BootloaderError, match="no MBR signature"):
        bios_sectors(boot_img, core_img, bytes(512), 2048, room=1 << 20)


def test_the_real_grub_images(tmp_path: Path) -> None:
    if not (GRUB_PC / "boot.img").is_file():
        pytest.skip("grub-pc-bin is not installed")
    from image import bootfiles

    made = bootfiles.install(tmp_path)
    files = tmp_path / bootfiles.DEST
    assert set(made) == {"boot.img", "core.img", "BOOTX64.EFI"}
    assert made["core.img"] < 1 << 20  # it fits the 1 MiB BIOS boot partition
    assert (files / "BOOTX64.EFI").read_bytes()[:2] == b"MZ"  # a PE image
    mbr, core = bios_sectors((files / "boot.img").read_bytes(), (files / "core.img").read_bytes(),
                             protective_mbr(), 2048, 1 << 20)
    assert mbr[0x1FE:0x200] == b"\x55\xaa"
    assert struct.unpack_from("<QHH", core, 500) == (2049, len(core) // 512 - 1, 0x820)
    assert bootloader.SECTOR == 512
