"""The installed disk's GPT layout (docs/install.md): a pure plan from the disk's size, and its text for
``sfdisk``.

| # | partlabel | size | type | content |
|---|---|---|---|---|
| 1 | corral-bios | 1 MiB | BIOS boot | GRUB's i386-pc core.img |
| 2 | corral-esp | 64 MiB | EFI System | FAT32 ``CORRAL_EFI``: EFI/BOOT/BOOTX64.EFI, grub/ |
| 3 | corral-a | 512 MiB | Linux | ext4 ``CORRAL_A``: slot A |
| 4 | corral-b | 512 MiB | Linux | ext4 ``CORRAL_B``: slot B |
| 5 | corral-state | the rest | Linux | ext4 ``CORRAL_STATE`` (storage/state.py finds it) |

Every partition starts on a MiB boundary; the state partition ends on one too, before GPT's backup table.
Nothing here touches a disk: ``osdisk/disk.py`` carries a plan out."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
SECTOR = 512
GPT_BACKUP_SECTORS = 33  # the backup entries (32 sectors of 128 x 128 bytes) and header at the disk's end

BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
EFI_SYSTEM = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

BIOS_MIB = 1
ESP_MIB = 64
SLOT_MIB = 512
MIN_STATE_MIB = 256

SLOTS = ("A", "B")
ESP_LABEL = "CORRAL_EFI"
STATE_LABEL = "CORRAL_STATE"


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class Partition:
    number: int
    name: str  # the GPT partition label
    start: int  # bytes from the disk's start
    size: int  # bytes
    type_guid: str
    fstype: str | None  # what osdisk/disk.py makes on it: vfat, ext4, or nothing (BIOS boot)
    label: str | None  # the filesystem label

    @property
    def start_sector(self) -> int:
        return self.start // SECTOR

    @property
    def sectors(self) -> int:
        return self.size // SECTOR


@dataclass(frozen=True)
class Layout:
    disk_bytes: int
    partitions: tuple[Partition, ...]

    def by_name(self, name: str) -> Partition:
        for part in self.partitions:
            if part.name == name:
                return part
        raise KeyError(name)

    @property
    def bios(self) -> Partition:
        return self.partitions[0]

    @property
    def esp(self) -> Partition:
        return self.partitions[1]

    @property
    def state(self) -> Partition:
        return self.partitions[4]

    def slot(self, slot: str) -> Partition:
        """Slot ``A`` or ``B``'s partition."""
        return self.partitions[2 + slot_index(slot)]


def slot_index(slot: str) -> int:
    if slot not in SLOTS:
        raise LayoutError(f"unknown slot {slot!r} (A or B)")
    return SLOTS.index(slot)


def slot_label(slot: str) -> str:
    """The slot's ext4 label: ``CORRAL_A`` or ``CORRAL_B``."""
    slot_index(slot)
    return f"CORRAL_{slot}"


def other_slot(slot: str) -> str:
    return SLOTS[1 - slot_index(slot)]


def min_disk_bytes() -> int:
    """The smallest disk the layout fits: the partitions, 1 MiB before them (GPT) and 1 MiB after."""
    return (1 + BIOS_MIB + ESP_MIB + 2 * SLOT_MIB + MIN_STATE_MIB + 1) * MIB


def plan(disk_bytes: int) -> Layout:
    """The layout for a disk of ``disk_bytes`` (pure); LayoutError when it is too small."""
    if disk_bytes < min_disk_bytes():
        raise LayoutError(f"the disk has {disk_bytes / MIB:.0f} MiB; the layout needs at least "
                          f"{min_disk_bytes() // MIB} MiB (BIOS boot {BIOS_MIB}, EFI {ESP_MIB}, two slots of "
                          f"{SLOT_MIB}, state {MIN_STATE_MIB}, and GPT's tables)")
    fixed = [
        ("corral-bios", BIOS_MIB, BIOS_BOOT, None, None),
        ("corral-esp", ESP_MIB, EFI_SYSTEM, "vfat", ESP_LABEL),
        ("corral-a", SLOT_MIB, LINUX_FS, "ext4", slot_label("A")),
        ("corral-b", SLOT_MIB, LINUX_FS, "ext4", slot_label("B")),
    ]
    parts: list[Partition] = []
    offset = MIB
    for number, (name, mib, type_guid, fstype, label) in enumerate(fixed, start=1):
        parts.append(Partition(number, name, offset, mib * MIB, type_guid, fstype, label))
        offset += mib * MIB
    usable_end = disk_bytes - GPT_BACKUP_SECTORS * SECTOR
    state_end = usable_end // MIB * MIB
    parts.append(Partition(5, "corral-state", offset, state_end - offset, LINUX_FS, "ext4", STATE_LABEL))
    return Layout(disk_bytes, tuple(parts))


def sfdisk_script(layout: Layout) -> str:
    """``sfdisk``'s input for ``layout`` (pure): a new GPT, every partition at its sector with its type and
    name. It goes to sfdisk's standard input, never through a shell."""
    lines = ["label: gpt", "unit: sectors", f"first-lba: {MIB // SECTOR}", f"sector-size: {SECTOR}", ""]
    for part in layout.partitions:
        lines.append(f"start={part.start_sector}, size={part.sectors}, type={part.type_guid}, "
                     f'name="{part.name}"')
    return "\n".join(lines) + "\n"


def partition_path(device: str, number: int) -> str:
    """The kernel's name of ``device``'s partition ``number``: ``/dev/vda3``, ``/dev/nvme0n1p3``,
    ``/dev/loop0p3`` (a ``p`` when the disk's name ends in a digit)."""
    return f"{device}{'p' if device[-1:].isdigit() else ''}{number}"


MOUNT_OPTIONS = {"vfat": "codepage=437,iocharset=utf8"}
"""Options every mount of a filesystem of the layout needs: Debian's kernel defaults vfat to
iocharset=ascii, whose module the image does not ship (the mount fails with EINVAL, "IO charset ascii not
found"); utf8 and codepage 437 it does (the kernel loads them by itself, or ``osdisk.disk`` first)."""
