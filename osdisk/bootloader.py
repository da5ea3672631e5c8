"""GRUB on the installed disk, for BIOS and UEFI (docs/install.md).

The image carries GRUB's images made at build time (image/bootfiles.py) in ``/usr/lib/corral/boot``:
``boot.img`` and ``core.img`` (i386-pc) and ``BOOTX64.EFI`` (x86_64-efi). ``bios_sectors`` does what
``grub-bios-setup`` does for a core image embedded in a BIOS boot partition (pure, so it is tested
byte for byte): boot.img goes to the MBR, keeping the disk's protective MBR partition table, told the
sector where core.img starts; core.img's first sector (diskboot) is told where the rest of it is. For
UEFI, BOOTX64.EFI goes to the ESP's removable-media path ``/EFI/BOOT/`` (no firmware variable is
written: the firmware finds it by itself). Both GRUBs read ``/grub/grub.cfg`` and ``/grub/grubenv`` on
the ESP (osdisk/bootmenu.py, osdisk/grubenv.py)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

SECTOR = 512
BOOT_FILES = Path("/usr/lib/corral/boot")
BPB_START, BPB_END = 0x03, 0x5A
KERNEL_SECTOR = 0x5C
DRIVE_CHECK = 0x66
PART_TABLE_START, PART_TABLE_END = 0x1B8, 0x1FE  # the NT disk signature and the four MBR entries
BLOCKLIST_SIZE = 12  # struct grub_boot_blocklist: u64 start, u16 len, u16 segment
KERNEL_SEGMENT = 0x800


class BootloaderError(RuntimeError):
    pass


def bios_sectors(boot_img: bytes, core_img: bytes, mbr: bytes, core_lba: int,
                 room: int) -> tuple[bytes, bytes]:
    """(the disk's new first sector, core.img as written at ``core_lba``), like ``grub-bios-setup`` for
    an embedding area of ``room`` bytes (the BIOS boot partition). ``mbr`` is the disk's first sector as
    it is (its partition table is kept)."""
    if len(boot_img) != SECTOR or len(mbr) != SECTOR:
        raise BootloaderError("boot.img and the MBR must be one 512-byte sector each")
    if mbr[0x1FE:0x200] != b"\x55\xaa":
        raise BootloaderError("the disk's first sector has no MBR signature (no partition table?)")
    core = bytearray(core_img + b"\0" * (-len(core_img) % SECTOR))
    sectors = len(core) // SECTOR
    if len(core) > room:
        raise BootloaderError(f"core.img ({len(core)} bytes) does not fit the BIOS boot partition ({room})")
    if sectors < 2 or sectors - 1 > 0xFFFF:
        raise BootloaderError(f"core.img has {sectors} sectors")
    boot = bytearray(boot_img)
    boot[BPB_START:BPB_END] = mbr[BPB_START:BPB_END]
    boot[PART_TABLE_START:PART_TABLE_END] = mbr[PART_TABLE_START:PART_TABLE_END]
    boot[KERNEL_SECTOR:KERNEL_SECTOR + 8] = struct.pack("<Q", core_lba)
    boot[DRIVE_CHECK:DRIVE_CHECK + 2] = b"\x90\x90"  # a hard disk: trust the BIOS's drive number
    first = SECTOR - BLOCKLIST_SIZE
    core[first:first + BLOCKLIST_SIZE] = struct.pack("<QHH", core_lba + 1, sectors - 1,
                                                     KERNEL_SEGMENT + (SECTOR >> 4))
    second = first - BLOCKLIST_SIZE
    core[second:second + BLOCKLIST_SIZE] = bytes(BLOCKLIST_SIZE)  # the list ends after one entry
    return bytes(boot), bytes(core)


def write_bios(device: str, bios_start: int, bios_size: int, files: Path = BOOT_FILES) -> None:
    """Patch and write boot.img and core.img to ``device`` (its GPT already written)."""
    boot_img = (files / "boot.img").read_bytes()
    core_img = (files / "core.img").read_bytes()
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        mbr = os.pread(fd, SECTOR, 0)
        boot, core = bios_sectors(boot_img, core_img, mbr, bios_start // SECTOR, bios_size)
        _pwrite_all(fd, core, bios_start)
        _pwrite_all(fd, boot, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done
