"""Observing only what changed: the probe cache per medium, the handler's reading of its events, and
partial observation (only the devices the uevents named, plus the mount table) on a sysfs tree made
in the test's directory, with filesystem facts from a udev database there (no blkid, no mounts)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.storage import StorageHandler, Suppressed, replugged
from storage import libblkid
from storage.observe import BlockDevice, FsFacts, Observer, ProbeCache, Prober
from storage.plan import Mount
from storage.rules import parse_storage
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Resync
from supervisor.events.udev import BlockEvent
from supervisor.process import ProcessManager


def dev(name: str = "loop1", diskseq: int | None = 11, size: int = 32768, minor: int = 1) -> BlockDevice:
    return BlockDevice(name, f"/dev/{name}", 7, minor, size, diskseq=diskseq)


# ---- the probe cache -------------------------------------------------------------------------------------
def test_an_unchanged_device_is_not_probed_again_and_a_new_diskseq_is() -> None:
    cache = ProbeCache()
    facts = FsFacts(type="ext4", label="DATA")
    cache.put(dev(), facts)
    assert cache.get(dev()) == facts  # same medium: no probe
    assert cache.get(dev(diskseq=12)) is None  # another medium in the same device: probe
    assert cache.get(dev(size=65536)) is None  # resized: probe
    assert cache.get(dev(minor=2)) is None  # another device number: probe


def test_forget_prune_and_unproven_entries() -> None:
    cache = ProbeCache()
    cache.put(dev("loop1"), FsFacts(type="ext4"))
    cache.put(dev("loop2", diskseq=None, minor=2), FsFacts(type="vfat"))
    cache.put(dev("loop3", minor=3), FsFacts())
    cache.forget_unproven()  # a resync: loop2's key cannot tell two media of one size apart
    assert cache.get(dev("loop2", diskseq=None, minor=2)) is None
    assert cache.get(dev("loop1")) is not None and len(cache) == 2
    cache.forget("/dev/loop1")  # a change uevent named it
    assert cache.get(dev("loop1")) is None
    cache.prune([dev("loop1")])  # loop3 is gone
    assert len(cache) == 0


# ---- which events ask for what --------------------------------------------------------------------------
def block(action: str, name: str, coldplug: bool = False) -> BlockEvent:
    return BlockEvent(action=action, subsystem="block", devpath=f"/devices/virtual/block/{name}",
                      devname=f"/dev/{name}", coldplug=coldplug)


def test_handler_reads_its_events_into_device_names() -> None:
    bus = Bus()
    handler = StorageHandler(ProcessManager(), bus)
    bus.publish(block("add", "loop1"))
    bus.publish(block("change", "loop2"))
    bus.publish(block("add", "loop3", coldplug=True))
    assert handler._drain() == ({"loop1", "loop2", "loop3"}, {"/dev/loop2"}, False)
    assert handler._drain() == (set(), set(), False)
    bus.publish(block("remove", "loop1"))
    bus.publish(ConfigChanged(generation=2, changed=("mounts",)))
    assert handler._drain() == ({"loop1"}, set(), True)  # a config change: observe everything
    bus.publish(Resync(source="udev", reason="overflow"))
    assert handler._drain()[2] is True


# ---- partial observation on a made-up sysfs -------------------------------------------------------------
class FakeSys:
    """/sys/class/block and /run/udev/data under a directory; loop devices with ext4 labels."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.block = root / "sys/class/block"
        self.devices = root / "sys/devices/virtual/block"
        self.udev = root / "udev"
        for d in (self.block, self.devices, self.udev):
            d.mkdir(parents=True)
        self.mountinfo = root / "mountinfo"
        self.mountinfo.write_text("")

    def disk(self, name: str, minor: int, diskseq: int, label: str | None, size: int = 32768) -> None:
        d = self.devices / name
        d.mkdir(exist_ok=True)
        uevent = f"MAJOR=7\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk\nDISKSEQ={diskseq}\n"
        (d / "uevent").write_text(uevent)
        (d / "size").write_text(f"{size}\n")
        (d / "ro").write_text("0\n")
        if not (self.block / name).is_symlink():
            (self.block / name).symlink_to(os.path.relpath(d, self.block))
        self.facts(7, minor, label)

    def partition(self, disk: str, name: str, minor: int, label: str | None) -> None:
        d = self.devices / disk / name
        d.mkdir(exist_ok=True)
        (d / "uevent").write_text(f"MAJOR=259\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=partition\n")
        (d / "size").write_text("2048\n")
        (d / "partition").write_text("1\n")
        if not (self.block / name).is_symlink():
            (self.block / name).symlink_to(os.path.relpath(d, self.block))
        self.facts(259, minor, label)

    def facts(self, major: int, minor: int, label: str | None) -> None:
        text = f"E:ID_FS_TYPE=ext4\nE:ID_FS_LABEL={label}\n" if label else "E:ID_PART_TABLE_TYPE=gpt\n"
        (self.udev / f"b{major}:{minor}").write_text(text)

    def remove(self, name: str) -> None:
        (self.block / name).unlink()

    def observer(self) -> Observer:
        # blkid is never run here: every device has udev facts (a probe would fail loudly: no loop)
        return Observer(Prober(ProcessManager()), sys_root=self.root / "sys", mountinfo=self.mountinfo,
                        udev_data=self.udev)


def labels(devices: tuple[BlockDevice, ...]) -> dict[str, str | None]:
    return {d.name: d.fs.label if d.fs else None for d in devices}


async def test_observe_named_rereads_only_the_named_devices(tmp_path: Path) -> None:
    sys = FakeSys(tmp_path)
    sys.disk("loop1", 1, 11, "ONE")
    sys.disk("loop2", 2, 12, "TWO")
    observer = sys.observer()
    full = await observer.observe()
    assert labels(full.devices) == {"loop1": "ONE", "loop2": "TWO"}
    sys.disk("loop1", 1, 21, "UNO")  # new media in both; only loop1's uevent is looked at
    sys.disk("loop2", 2, 22, "DOS")
    sys.disk("loop3", 3, 23, "TRES")
    part = await observer.observe_named({"loop1", "loop3"})
    assert labels(part.devices) == {"loop1": "UNO", "loop2": "TWO", "loop3": "TRES"}
    assert observer.observations == 1 and observer.partial_observations == 1
    sys.remove("loop3")  # removed: its uevent makes it go
    assert labels((await observer.observe_named({"loop3"})).devices) == {"loop1": "UNO", "loop2": "TWO"}
    assert labels((await observer.observe()).devices) == {"loop1": "UNO", "loop2": "DOS"}


async def test_a_disks_partitions_come_along(tmp_path: Path) -> None:
    sys = FakeSys(tmp_path)
    sys.disk("loop4", 4, 14, None)
    observer = sys.observer()
    await observer.observe()
    sys.partition("loop4", "loop4p1", 0, "PART")  # the table was re-read: an event for the disk
    found = await observer.observe_named({"loop4"})
    assert labels(found.devices) == {"loop4": None, "loop4p1": "PART"}
    assert found.devices[1].disk == "loop4"
    (sys.devices / "loop4" / "loop4p1" / "partition").unlink()
    sys.remove("loop4p1")  # gone with the disk's next change
    assert labels((await observer.observe_named({"loop4"})).devices) == {"loop4": None}


async def test_handler_observes_fully_first_then_only_what_events_name(tmp_path: Path) -> None:
    sys = FakeSys(tmp_path)
    sys.disk("loop1", 1, 11, "ONE")
    target = tmp_path / "mnt/one"
    # loop1 is already mounted at the rule's path: the handler adopts it (bookkeeping only)
    sys.mountinfo.write_text(f"90 1 7:1 / {target} rw,relatime - ext4 /dev/loop1 rw\n")
    bus = Bus()
    rules = parse_storage({"mounts": [{"match": {"label": "ONE"}, "path": str(target)}]}).rules
    assert rules is not None
    handler = StorageHandler(ProcessManager(), bus, rules=rules.mounts, observer=sys.observer())
    await handler.reconcile(full=True)
    assert handler.known[str(target)].devname == "/dev/loop1"
    bus.publish(block("change", "loop2"))
    sys.disk("loop2", 2, 12, "OTHER")
    await handler.reconcile(full=False)
    counters = handler.status()["counters"]
    assert isinstance(counters, dict)
    assert (counters["full_observations"], counters["partial_observations"]) == (1, 1)
    assert counters["passes"] == 2  # no extra pass when nothing was to be done
    assert [d.name for d in handler.observer.devices.values()] == ["loop1", "loop2"]
    bus.publish(ConfigChanged(generation=2, changed=("hostname",)))
    await handler.reconcile(full=False)
    assert handler.status()["counters"]["full_observations"] == 2  # type: ignore[index]


@pytest.mark.parametrize(("diskseq", "present", "lifted"), [(11, True, False), (12, True, True),
                                                             (11, False, True)],
                         ids=["same medium", "medium changed", "device gone"])
def test_unmount_on_request_is_lifted_by_a_replug(diskseq: int, present: bool, lifted: bool) -> None:
    suppressed = {"/mnt/one": Suppressed("mounts[0]", "/dev/loop1", 11, 7, 1)}
    gone = replugged(suppressed, [dev("loop1", diskseq=diskseq)] if present else [])
    assert ("/mnt/one" in gone) == lifted


# ---- a probe made while the medium changed is not trusted ------------------------------------------------
@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager(Bus().publish)
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


@pytest.mark.skipif(not shutil.which("mkfs.ext4") or not shutil.which("blkid"),
                    reason="needs e2fsprogs and blkid")
async def test_a_probe_overtaken_by_a_medium_change_is_dropped(tmp_path: Path, pm: ProcessManager) -> None:
    image = tmp_path / "fs.img"
    status, _, _ = await pm.run(["truncate", "-s", "8M", str(image)])
    assert status.returncode == 0
    status, _, _ = await pm.run(["mkfs.ext4", "-q", "-F", "-L", "PROBED", str(image)])
    assert status.returncode == 0
    sys = FakeSys(tmp_path / "root")
    sys.disk("loop9", 9, 12, None)  # the kernel says: medium 12 now
    observer = Observer(Prober(pm), sys_root=sys.root / "sys", mountinfo=sys.mountinfo, udev_data=None)
    seen_at_11 = BlockDevice("loop9", str(image), 7, 9, 16384, diskseq=11)  # read before the change
    [stale] = await observer.with_facts([seen_at_11], {})
    assert stale.fs is None and len(observer.prober.cache) == 0  # not trusted, not cached
    [fresh] = await observer.with_facts([replace(seen_at_11, diskseq=12)], {})
    assert fresh.fs is not None and fresh.fs.label == "PROBED" and len(observer.prober.cache) == 1


@pytest.mark.skipif(not shutil.which("mkfs.ext4") or not shutil.which("blkid") or not libblkid.available(),
                    reason="needs e2fsprogs, blkid and libblkid")
async def test_libblkid_and_the_blkid_command_agree(tmp_path: Path, pm: ProcessManager) -> None:
    fs, blank = tmp_path / "fs.img", tmp_path / "blank.img"
    for image in (fs, blank):
        status, _, _ = await pm.run(["truncate", "-s", "8M", str(image)])
        assert status.returncode == 0
    status, _, _ = await pm.run(["mkfs.ext4", "-q", "-F", "-L", "SAME", str(fs)])
    assert status.returncode == 0
    devices = [BlockDevice(p.name, str(p), 7, i, 16384, diskseq=1) for i, p in enumerate((fs, blank))]
    library, command = Prober(pm, library=True), Prober(pm, library=False)
    for dev in devices:
        assert await library.probe(dev) == await command.probe(dev)
    facts = library.cache.get(devices[0])
    assert facts is not None and (facts.type, facts.label) == ("ext4", "SAME") and facts.uuid
    assert library.cache.get(devices[1]) == FsFacts()
    missing = BlockDevice("nope", str(tmp_path / "missing"), 7, 9, 1)
    assert await library.probe(missing) is None and library.stats.failures == 1


async def test_a_mount_failing_because_the_medium_changed_is_not_held(tmp_path: Path) -> None:
    sys = FakeSys(tmp_path)
    sys.disk("loop1", 1, 11, "ONE")
    handler = StorageHandler(ProcessManager(), Bus(), observer=sys.observer())
    await handler.observer.observe()
    action = Mount("mounts[0]", "/dev/loop1", "/mnt/one", "ext4", 0, "", "defaults", 7, 1, 11)
    sys.disk("loop1", 1, 12, "ONE")  # another medium between the probe and mount(2)
    await handler._mount_failed(action, "Bad message", 0.0)
    assert handler.held == {} and handler.stats.failures == 0  # the change's uevent brings a new look
    sys.disk("loop1", 1, 11, "ONE")  # (the same medium as observed) a real failure: held
    await handler._mount_failed(action, "Bad message", 0.0)
    assert handler.held == {("/mnt/one", "/dev/loop1", 11): "Bad message"} and handler.stats.failures == 1
