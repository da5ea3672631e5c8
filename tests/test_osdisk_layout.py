"""The installed disk's layout plan (osdisk/layout.py): pure."""

from __future__ import annotations

import pytest

from osdisk import layout
from osdisk.layout import MIB, LayoutError, partition_path, plan, sfdisk_script


def test_plan_of_a_4g_disk() -> None:
    lay = plan(4096 * MIB)
    assert [p.name for p in lay.partitions] == ["corral-bios", "corral-esp", "corral-a", "corral-b",
                                                "corral-state"]
    assert [p.number for p in lay.partitions] == [1, 2, 3, 4, 5]
    assert [(p.start // MIB, p.size // MIB) for p in lay.partitions] == [
        (1, 1), (2, 64), (66, 512), (578, 512), (1090, 4096 - 1090 - 1)]
    assert lay.esp.fstype == "vfat" and lay.esp.label == "CORRAL_EFI"
    assert lay.bios.fstype is None and lay.bios.type_guid == layout.BIOS_BOOT
    assert lay.slot("A").label == "CORRAL_A" and lay.slot("B").label == "CORRAL_B"
    assert lay.state.label == "CORRAL_STATE"


def test_partitions_are_aligned_contiguous_and_leave_gpts_backup() -> None:
    size = 3 * 1024 * MIB + 12345 * 512  # not a whole number of MiB
    lay = plan(size)
    for part in lay.partitions:
        assert part.start % MIB == 0 and part.size % MIB == 0
    for left, right in zip(lay.partitions, lay.partitions[1:], strict=False):
        assert left.start + left.size == right.start
    last = lay.partitions[-1]
    assert last.start + last.size <= size - layout.GPT_BACKUP_SECTORS * 512


def test_smallest_disk_fits_and_one_mib_less_is_refused() -> None:
    assert plan(layout.min_disk_bytes()).state.size == layout.MIN_STATE_MIB * MIB
    with pytest.raises(LayoutError, match="needs at least 1347 MiB"):
        plan(layout.min_disk_bytes() - MIB)


def test_sfdisk_script() -> None:
    text = sfdisk_script(plan(2048 * MIB))
    assert text.startswith("label: gpt\nunit: sectors\nfirst-lba: 2048\n")
    assert 'start=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="corral-bios"' in text
    assert 'start=135168, size=1048576, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="corral-a"' in text


def test_partition_paths_and_slots() -> None:
    assert partition_path("/dev/vda", 3) == "/dev/vda3"
    assert partition_path("/dev/nvme0n1", 3) == "/dev/nvme0n1p3"
    assert partition_path("/dev/loop7", 1) == "/dev/loop7p1"
    assert layout.other_slot("A") == "B" and layout.other_slot("B") == "A"
    with pytest.raises(LayoutError):
        layout.slot_label("C")
