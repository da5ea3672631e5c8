"""osdisk/bootdisk.py on real partitions: an ESP and an ext4 slot on loop devices, found by label
(libblkid), mounted read-only to read and read-write only to write the block grub-editenv then reads.

The ESP is FAT on an installed disk; the kernels these tests run on may lack vfat (the guest's has it,
image/definition.yml), so the ESP here is ext4 when /proc/filesystems has no vfat."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from osdisk import bootdisk, grubenv

TOOLS = ("losetup", "mkfs.vfat", "mkfs.ext4", "grub-editenv")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mount)"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"),
]
TAG = f"T{os.getpid() % 100000}"  # labels no other test or helper's disk has


def _loop(image: Path) -> str:
    return subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[bootdisk.Location, str, str]]:
    esp_img, slot_img = tmp_path / "esp.img", tmp_path / "slot.img"
    for img, size in ((esp_img, 40 << 20), (slot_img, 16 << 20)):
        with img.open("wb") as f:
            f.truncate(size)
    vfat = "\tvfat\n" in Path("/proc/filesystems").read_text()
    esp_mkfs = ["mkfs.vfat", "-F", "32", "-n"] if vfat else ["mkfs.ext4", "-q", "-L"]
    subprocess.run([*esp_mkfs, f"{TAG}_EFI", str(esp_img)], check=True, capture_output=True, timeout=60)
    subprocess.run(["mkfs.ext4", "-q", "-L", f"{TAG}_B", str(slot_img)], check=True, capture_output=True,
                   timeout=60)
    devices = [_loop(esp_img), _loop(slot_img)]
    location = bootdisk.Location(run_dir=tmp_path / "run", esp_label=f"{TAG}_EFI",
                                 esp_fstype="vfat" if vfat else "ext4",
                                 slot_labels={"A": f"{TAG}_A", "B": f"{TAG}_B"})
    try:
        yield location, devices[0], devices[1]
    finally:
        for dev in devices:
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)


def _mount(dev: str, target: Path, *options: str) -> None:
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", *options, dev, str(target)], check=True, timeout=30)


def test_the_block_is_written_on_the_esp_and_read_back(disk: tuple[bootdisk.Location, str, str],
                                                        tmp_path: Path) -> None:
    location, esp_dev, _ = disk
    assert bootdisk.find_by_label(location.esp_label) == esp_dev
    assert bootdisk.read_env(location) == {}  # no block yet
    bootdisk.set_next_once("B", "2.0", location)
    assert bootdisk.read_env(location)["trial_slot"] == "B"
    assert not list((location.run_dir / "osdisk").iterdir())  # unmounted, its directory gone
    view = tmp_path / "view"
    _mount(esp_dev, view, "-o", "ro")
    try:
        listed = subprocess.run(["grub-editenv", str(view / "grub/grubenv"), "list"], check=True,
                                capture_output=True, text=True, timeout=30).stdout
        assert listed == "trial_slot=B\ntrial_version=2.0\n"
    finally:
        subprocess.run(["umount", str(view)], check=True, timeout=30)


def test_a_slot_is_complete_only_with_its_files_as_the_manifest_says(
        disk: tuple[bootdisk.Location, str, str], tmp_path: Path) -> None:
    location, _, slot_dev = disk
    assert bootdisk.read_slot("A", location).problem == f"no partition labelled {TAG}_A: this is not an " \
                                                          "installed corral disk"
    assert bootdisk.read_slot("B", location).problem == "empty (no manifest.json)"
    files = tmp_path / "slot"
    _mount(slot_dev, files)
    try:
        (files / "vmlinuz").write_bytes(b"k" * 10)
        (files / "initrd").write_bytes(b"i" * 20)
        (files / "manifest.json").write_text(json.dumps({"corral_version": "2.0",
                                                         "files": {"vmlinuz": {"bytes": 10},
                                                                   "initrd": {"bytes": 21}}}))
    finally:
        subprocess.run(["umount", str(files)], check=True, timeout=30)
    half = bootdisk.read_slot("B", location)
    assert (half.version, half.complete, half.problem) == ("2.0", False,
                                                          "initrd is 20 bytes, the manifest says 21")
    _mount(slot_dev, files)
    try:
        (files / "initrd").write_bytes(b"i" * 21)
    finally:
        subprocess.run(["umount", str(files)], check=True, timeout=30)
    assert bootdisk.read_slot("B", location) == bootdisk.SlotInfo("B", "2.0", True)


def test_a_directory_location_is_used_as_it_is(tmp_path: Path) -> None:
    location = bootdisk.Location.directories(tmp_path)
    bootdisk.update_env(location, {"default_slot": "B"})
    assert grubenv.read(tmp_path / "esp/grub/grubenv") == {"default_slot": "B"}
    assert not bootdisk.read_slot("A", location).complete
