"""Observation: mountinfo, blkid and udev database parsers; sysfs; the blkid prober against real blkid."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.observe import (
    BlockDevice,
    FsFacts,
    Prober,
    facts_from_blkid,
    facts_from_udev,
    parse_blkid_export,
    parse_udev_db,
    read_block_devices,
)
from supervisor.bus import Bus
from supervisor.mountinfo import parse_mountinfo
from supervisor.process import ProcessManager

MOUNTINFO = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "81 27 7:0 / /mnt/with\\040space rw,nosuid,nodev,noatime shared:40 master:2 - ext4 /dev/loop0 "
    "rw,errors=remount-ro\n"
    "82 81 7:1 /sub /mnt/with\\040space/in ro,relatime - vfat /dev/loop1 ro\n"
    "garbage line\n"
)


def test_parse_mountinfo() -> None:
    proc, loop0, loop1 = parse_mountinfo(MOUNTINFO)
    assert (proc.target, proc.fstype, proc.devno) == ("/proc", "proc", (0, 21))
    assert loop0.target == "/mnt/with space" and loop0.source == "/dev/loop0" and loop0.devno == (7, 0)
    assert loop0.options == "rw,nosuid,nodev,noatime" and loop0.super_options == "rw,errors=remount-ro"
    assert loop0.fstype == "ext4" and (loop0.mount_id, loop0.parent_id) == (81, 27)
    assert loop1.root == "/sub" and loop1.fstype == "vfat"


def test_blkid_export_and_udev_facts() -> None:
    out = 'DEVNAME=/dev/loop0\nLABEL=My Data\nUUID=1-2\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n'
    facts = facts_from_blkid(parse_blkid_export(out))
    assert facts == FsFacts(type="ext4", label="My Data", uuid="1-2", usage="filesystem", version="1.0")
    assert not facts.blank
    assert facts_from_blkid(parse_blkid_export("PTUUID=x\nPTTYPE=gpt\n")).pttype == "gpt"
    assert FsFacts().blank
    props = {"ID_FS_TYPE": "vfat", "ID_FS_LABEL": "USB", "ID_FS_UUID": "AB-CD", "ID_FS_USAGE": "filesystem"}
    assert facts_from_udev(props) == FsFacts(type="vfat", label="USB", uuid="AB-CD", usage="filesystem",
                                             source="udev")
    assert facts_from_udev({"DEVNAME": "/dev/sda"}) is None  # udev knows nothing: probe


def test_udev_database() -> None:
    text = ("S:disk/by-label/DATA\nS:disk/by-uuid/1-2\nI:123\nE:ID_FS_TYPE=ext4\nE:ID_FS_LABEL=DATA\n"
            "G:systemd\n")
    props, links = parse_udev_db(text)
    assert props == {"ID_FS_TYPE": "ext4", "ID_FS_LABEL": "DATA"}
    assert links == ("/dev/disk/by-label/DATA", "/dev/disk/by-uuid/1-2")


def test_read_block_devices_from_real_sysfs() -> None:
    devices, _ = read_block_devices(Path("/sys"), udev_data=None, include_empty=True)
    names = {d.name for d in devices}
    expected = {p.name for p in Path("/sys/class/block").iterdir()}
    assert names == expected
    for d in devices:
        assert d.devname == f"/dev/{d.name}" or d.devname.startswith("/dev/")
        devno = Path(f"/sys/class/block/{d.name}/dev").read_text().split(":")
        assert (d.major, d.minor) == (int(devno[0]), int(devno[1]))
    with_medium, _ = read_block_devices(Path("/sys"), udev_data=None)
    assert all(d.size > 0 for d in with_medium)


@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager(Bus().publish)
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


@pytest.mark.skipif(not shutil.which("mkfs.ext4") or not shutil.which("blkid"),
                    reason="needs e2fsprogs and blkid")
async def test_prober_runs_real_blkid_and_caches_per_medium(tmp_path: Path, pm: ProcessManager) -> None:
    image = tmp_path / "fs.img"
    status, _, _ = await pm.run(["truncate", "-s", "8M", str(image)])
    assert status.returncode == 0
    blank = BlockDevice("img", str(image), 7, 99, 16384, diskseq=1)
    prober = Prober(pm)
    assert await prober.probe(blank) == FsFacts()  # blkid exit 2: nothing there
    status, _, _ = await pm.run(["mkfs.ext4", "-q", "-F", "-L", "PROBED", str(image)])
    assert status.returncode == 0
    assert await prober.probe(blank) == FsFacts()  # same medium: cached
    assert prober.stats.probes == 1 and prober.stats.cached == 1
    new_medium = BlockDevice("img", str(image), 7, 99, 16384, diskseq=2)
    facts = await prober.probe(new_medium)
    assert facts is not None and facts.type == "ext4" and facts.label == "PROBED" and facts.uuid
    prober.forget(str(image))
    assert await prober.probe(new_medium) == facts and prober.stats.probes == 3
    missing = BlockDevice("nope", str(tmp_path / "missing"), 7, 98, 1)
    assert await prober.probe(missing) is None and prober.stats.failures == 1
