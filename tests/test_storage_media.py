"""storage/media.py's decisions on a fake sysfs: which device a label finds (udev's database first, else a
probe), pending until boot says how long to wait, the wait bounded and spent once, each medium read once
per boot, a mount that fails reported with the device. The real thing (loop devices, mount(2), the
sandboxed PID 1) is integration/test_datasources_sandbox.py."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from storage import libblkid
from storage.media import LabelledMedia
from supervisor.config.yamlload import MAX_BYTES

NAMES = ("user-data", "meta-data", "network-config")


class World:
    """A fake /sys/class/block, probe results, a udev database and media contents."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys"
        self.udev = root / "udev"
        self.udev.mkdir(parents=True)
        self.labels: dict[str, tuple[str, str]] = {}  # devname -> (type, label)
        self.contents: dict[str, dict[str, str]] = {}
        self.probed: list[str] = []
        self.mounted: list[tuple[str, str]] = []
        self.sleeps = 0
        self.on_sleep: list[tuple[int, str]] = []  # (after this many sleeps, add this device)
        self.mount_error: OSError | None = None

    def add(self, name: str, minor: int, fstype: str, label: str, files: dict[str, str]) -> None:
        d = self.sys / "class/block" / name
        d.mkdir(parents=True)
        (d / "uevent").write_text(f"MAJOR=254\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk\n")
        (d / "size").write_text("2048\n")
        self.labels[f"/dev/{name}"] = (fstype, label)
        self.contents[f"/dev/{name}"] = files

    def probe(self, devname: str) -> tuple[int, dict[str, str]]:
        self.probed.append(devname)
        fstype, label = self.labels[devname]
        return libblkid.FOUND, {"TYPE": fstype, "LABEL": label}

    def mount(self, device: str, target: Path, fstype: str) -> None:
        if self.mount_error is not None:
            raise self.mount_error
        self.mounted.append((device, fstype))
        for name, text in self.contents[device].items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(text)

    def unmount(self, target: Path) -> None:
        for entry in target.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        for after, name in list(self.on_sleep):
            if self.sleeps >= after:
                self.on_sleep.remove((after, name))
                self.add(name, 99, "iso9660", "cidata", {"meta-data": "local-hostname: late\n"})

    def media(self, tmp: Path) -> LabelledMedia:
        return LabelledMedia(tmp / "mnt", sys_root=self.sys, udev_data=self.udev, probe=self.probe,
                             mount=self.mount, unmount=self.unmount, sleep=self.sleep)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_found_by_label_mounted_read_and_unmounted_once_per_boot(world: World, tmp_path: Path) -> None:
    world.add("vda", 0, "ext4", "root", {})
    world.add("vdb", 16, "vfat", "CIDATA", {"user-data": "#cloud-config\n", "meta-data": "instance-id: x\n"})
    media = world.media(tmp_path)
    read = media.read(("cidata", "CIDATA"), NAMES)
    assert (read.device, read.label, read.fstype, read.problem) == ("/dev/vdb", "CIDATA", "vfat", None)
    assert dict(read.files) == {"user-data": "#cloud-config\n", "meta-data": "instance-id: x\n"}
    assert world.mounted == [("/dev/vdb", "vfat")]
    assert not (tmp_path / "mnt/vdb").exists()  # unmounted, its mount point removed
    assert (tmp_path / "mnt").stat().st_mode & 0o777 == 0o700
    assert media.read(("cidata", "CIDATA"), NAMES) == read  # kept: not mounted again
    assert world.mounted == [("/dev/vdb", "vfat")]
    assert media.start_waiting(5) is False  # found at once: nothing to wait for


def test_udev_database_is_used_before_probing(world: World, tmp_path: Path) -> None:
    world.add("sr0", 0, "iso9660", "cidata", {"meta-data": "local-hostname: a\n"})
    (world.udev / "b254:0").write_text("E:ID_FS_TYPE=iso9660\nE:ID_FS_LABEL=cidata\n")
    read = world.media(tmp_path).read(("cidata",), NAMES)
    assert read.device == "/dev/sr0" and world.probed == []


def test_not_found_is_pending_until_boot_says_how_long_to_wait(world: World, tmp_path: Path) -> None:
    media = world.media(tmp_path)
    assert media.read(("cidata", "CIDATA"), NAMES).pending
    assert world.sleeps == 0  # the config phase never waits
    world.on_sleep.append((3, "sr0"))  # the device comes while the datasources phase waits
    assert media.start_waiting(5) is True
    read = media.read(("cidata", "CIDATA"), NAMES)
    assert read.device == "/dev/sr0" and dict(read.files) == {"meta-data": "local-hostname: late\n"}
    assert world.sleeps == 3


def test_the_wait_is_bounded_and_spent_once(world: World, tmp_path: Path) -> None:
    media = world.media(tmp_path)
    media.start_waiting(0.6)
    read = media.read(("config-2",), NAMES)
    assert read.device is None and not read.pending
    assert read.problem == "no device labelled config-2 after waiting 0.6 s"
    waited = world.sleeps
    assert waited >= 1
    assert media.read(("config-2",), NAMES).problem == "no device labelled config-2"  # a reload: no wait
    assert world.sleeps == waited


def test_a_medium_that_cannot_be_mounted_is_named(world: World, tmp_path: Path) -> None:
    world.add("sdb", 16, "vfat", "cidata", {})
    world.mount_error = OSError(errno.ENODEV, "No such device")
    read = world.media(tmp_path).read(("cidata",), NAMES)
    assert (read.device, read.label) == ("/dev/sdb", "cidata")
    assert read.problem == "cannot mount vfat: No such device"
    assert not (tmp_path / "mnt/sdb").exists()


def test_files_are_read_with_the_config_bounds(world: World, tmp_path: Path) -> None:
    world.add("sdc", 32, "vfat", "cidata", {"user-data": "x" * (MAX_BYTES + 1), "meta-data": "a: 1\n"})
    read = world.media(tmp_path).read(("cidata",), NAMES)
    assert list(read.files) == ["meta-data"]
    assert [e.file for e in read.errors] == ["/dev/sdc:user-data"]
