"""The installed disk's layout carried out on a real loop device (osdisk/disk.py): real wipefs, sfdisk,
mkfs.vfat and mkfs.ext4, and a version written into a slot with write_slot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osdisk import bundle, disk, layout
from osdisk.layout import MIB

TOOLS = ("losetup", "sfdisk", "wipefs", "mkfs.vfat", "mkfs.ext4", "blkid", "mount", "umount")


def need() -> None:
    if os.geteuid() != 0:
        from integration.netns import unavailable

        unavailable("needs root (loop devices)")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            from integration.netns import unavailable

            unavailable(f"{tool} missing")


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[str]:
    need()
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(layout.min_disk_bytes() + 64 * MIB)
    dev = subprocess.run(["losetup", "-f", "--show", "-P", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        for part in [*ATTACHED, dev]:
            subprocess.run(["losetup", "-d", part], check=False, capture_output=True)
        ATTACHED.clear()


def make_bundle(directory: Path, version: str) -> bundle.Bundle:
    directory.mkdir()
    (directory / "vmlinuz").write_bytes(b"kernel " + version.encode() * 1000)
    (directory / "initrd").write_bytes(os.urandom(3 * MIB))
    manifest = bundle.make_manifest(directory, version, "6.1.0-test")
    (directory / bundle.MANIFEST).write_text(json.dumps(manifest))
    return bundle.read(directory)


ATTACHED: list[str] = []


def image(dev: str) -> str:
    return Path(f"/sys/block/{Path(dev).name}/loop/backing_file").read_text().strip()


def attach_part(backing: str, part: layout.Partition) -> str:
    """The partition as a loop device of its own (this host's kernel may not scan a loop disk's GPT)."""
    dev = subprocess.run(["losetup", "-f", "--show", "-o", str(part.start), "--sizelimit", str(part.size),
                          backing], check=True, capture_output=True, text=True).stdout.strip()
    ATTACHED.append(dev)
    return dev


def sfdisk_json(dev: str) -> list[dict[str, Any]]:
    out = subprocess.run(["sfdisk", "--json", dev], check=True, capture_output=True, text=True).stdout
    return list(json.loads(out)["partitiontable"]["partitions"])


def blkid(path: str, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, path], capture_output=True,
                          text=True, check=False).stdout.strip()


def test_partition_format_and_write_slots(loop_disk: str, tmp_path: Path) -> None:
    tools = disk.Tools()
    lay = layout.plan(disk.device_bytes(loop_disk))
    disk.partition(loop_disk, lay, tools, settle=False)
    table = sfdisk_json(loop_disk)
    assert [(p["name"], p["type"], p["start"] * 512, p["size"] * 512) for p in table] == [
        (p.name, p.type_guid, p.start, p.size) for p in lay.partitions]
    paths = {part.number: attach_part(image(loop_disk), part) for part in lay.partitions}
    disk.make_filesystems(paths, lay, tools)
    for part in lay.partitions:
        path = paths[part.number]
        if part.label is not None:
            assert blkid(path, "LABEL") == part.label
            assert blkid(path, "TYPE") == part.fstype
    old = make_bundle(tmp_path / "old", "1.0.0")
    new = make_bundle(tmp_path / "new", "2.0.0")
    slot_a = paths[lay.slot("A").number]
    disk.write_slot(slot_a, old, tools, layout.slot_label("A"))
    disk.write_slot(slot_a, new, tools, layout.slot_label("A"))  # a slot is written whole, again
    assert blkid(slot_a, "LABEL") == "CORRAL_A"
    with disk.mounted(slot_a, "ext4", tools, read_only=True) as root:
        assert sorted(p.name for p in root.iterdir() if p.name != "lost+found") == sorted(bundle.SLOT_FILES)
        written = bundle.read(root)
        bundle.check_files(written)
        assert written.version == "2.0.0"
        assert (root / "initrd").read_bytes() == (tmp_path / "new" / "initrd").read_bytes()
