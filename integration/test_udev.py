"""The udev source against real kernel uevents; the devices handler against real coldplug and a real
hotplug uevent (with a fake modprobe that records its arguments). Nothing here mounts anything."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from handlers.devices import DevicesHandler
from handlers.runner import HandlerRunner
from integration.test_storage import Loops, need_root_and_tools
from supervisor.backoff import Backoff
from supervisor.bus import Bus, Subscription
from supervisor.events import Event, Resync
from supervisor.events.udev import BlockEvent, UdevMonitorState, UEvent
from supervisor.process import ProcessManager
from supervisor.sources.udev import UdevSource
from tests.test_udev_devices import FakeModprobe, sysfs_aliases


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    need_root_and_tools()
    made = Loops(tmp_path)
    yield made
    assert not made.cleanup()


@pytest.fixture
async def source() -> AsyncIterator[list[UdevSource]]:
    started: list[UdevSource] = []
    yield started
    for s in started:
        await s.stop()


async def next_matching(sub: Subscription, pred: object, timeout: float = 10) -> Event:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await asyncio.wait_for(sub.get(), max(0.01, deadline - loop.time()))
        if pred(event):  # type: ignore[operator]
            return event


def drain(sub: Subscription) -> list[Event]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


async def test_block_uevents_arrive_typed_and_fast(loops: Loops, source: list[UdevSource]) -> None:
    bus = Bus()
    sub = bus.subscribe("test", BlockEvent, maxsize=100_000)
    udev = UdevSource(bus)
    source.append(udev)
    await udev.start()
    assert udev.status()["source"] == "kernel" and udev.status()["open"]
    assert udev.rcvbuf is not None and udev.rcvbuf >= 32 << 20  # SO_RCVBUFFORCE as root
    drain(sub)
    image = loops.image("a.img", "UDEV_A")
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        dev = loops.attach(image)
        diskseq = Path(f"/sys/class/block/{dev.rsplit('/', 1)[1]}/diskseq").read_text().strip()  # noqa: ASYNC240

        def attached(e: Event, dev: str = dev, diskseq: str = diskseq) -> bool:
            return isinstance(e, BlockEvent) and e.devname == dev and e.get("DISKSEQ") == diskseq

        event = await next_matching(sub, attached)
        assert isinstance(event, BlockEvent)
        latencies.append((event.received - started) * 1000)
        assert event.action == "change" and event.subsystem == "block" and event.devtype == "disk"
        assert event.seqnum is not None and event.source == "kernel" and not event.coldplug
        loops.detach(dev)
    print(f"losetup start -> uevent received: {[round(x, 2) for x in latencies]} ms")


async def test_coldplug_enumerates_every_device_then_resyncs(source: list[UdevSource]) -> None:
    need_root_and_tools()
    bus = Bus()
    sub = bus.subscribe("test", UEvent, maxsize=100_000)
    udev = UdevSource(bus)
    source.append(udev)
    await udev.start()
    events = drain(sub)
    resyncs = [i for i, e in enumerate(events) if isinstance(e, Resync) and e.source == "udev"]
    assert resyncs, "no resync after coldplug"
    cold = [e for e in events[: resyncs[0]] if isinstance(e, UEvent) and e.coldplug]
    block = {e.devname for e in cold if isinstance(e, BlockEvent)}
    assert block >= {f"/dev/{name}" for name in os.listdir("/sys/class/block")}
    assert {e.modalias for e in cold if e.modalias} == sysfs_aliases()
    assert all(e.action == "add" and e.seqnum is None for e in cold)
    assert udev.status()["coldplug_devices"] == len(cold)
    print(f"coldplug: {len(cold)} devices in {udev.status()['coldplug_seconds']} s")


async def test_background_coldplug_returns_first_and_is_awaited(source: list[UdevSource]) -> None:
    """At boot the coldplug runs on while the next phases do: start returns with the monitor open,
    before the enumeration (held here by the hook); ``coldplugged`` returns once its events are out."""
    need_root_and_tools()
    bus = Bus()
    sub = bus.subscribe("test", UEvent, maxsize=100_000)
    release = asyncio.Event()

    async def hold(stage: str) -> None:
        if stage == "enumerating":
            await release.wait()

    udev = UdevSource(bus, coldplug_hook=hold)
    source.append(udev)
    await asyncio.wait_for(udev.start(background=True), 10)
    assert udev.status()["open"] and udev.status()["coldplugs"] == 0
    waiting = asyncio.ensure_future(udev.coldplugged())
    await asyncio.sleep(0.2)
    assert not waiting.done() and not drain(sub)
    release.set()
    assert await asyncio.wait_for(waiting, 30) is None
    events = drain(sub)
    assert udev.status()["coldplugs"] == 1
    assert any(isinstance(e, Resync) and e.source == "udev" for e in events)
    assert any(isinstance(e, UEvent) and e.coldplug for e in events)


async def test_a_failed_background_coldplug_is_reported_to_whoever_waits(source: list[UdevSource]) -> None:
    """The boot's `network` phase waits for the coldplug and degrades `devices` when it failed."""
    need_root_and_tools()

    async def fail(stage: str) -> None:
        if stage == "enumerating":
            raise OSError("sysfs unreadable")

    udev = UdevSource(Bus(), coldplug_hook=fail)
    source.append(udev)
    await udev.start(background=True)
    failed = await asyncio.wait_for(udev.coldplugged(), 30)
    assert isinstance(failed, OSError) and "sysfs unreadable" in str(failed)
    assert udev.status()["open"]  # the monitor stays: hotplug still works


async def test_overflow_reopens_the_monitor_and_resyncs(loops: Loops, source: list[UdevSource]) -> None:
    bus = Bus()
    sub = bus.subscribe("test", UEvent, UdevMonitorState, maxsize=100_000)
    udev = UdevSource(bus, buffer_size=4096)
    source.append(udev)
    await udev.start()
    assert udev.rcvbuf is not None and udev.rcvbuf < 64 << 10
    drain(sub)
    image = loops.image("burst.img", "UDEV_B")
    for _ in range(60):  # the loop is blocked: nothing is read while the kernel queues ~180 uevents
        dev = loops.attach(image)
        loops.detach(dev)
    lost = await next_matching(sub, lambda e: isinstance(e, UdevMonitorState) and e.state == "lost")
    assert isinstance(lost, UdevMonitorState) and lost.reason == "overflow"
    resync = await next_matching(sub, lambda e: isinstance(e, Resync) and e.source == "udev")
    assert isinstance(resync, Resync) and resync.reason == "coldplug (overflow)"
    assert udev.stats.overflows >= 1 and udev.stats.reopens >= 1 and udev.running
    # the new monitor works
    dev = loops.attach(image)
    await next_matching(sub, lambda e: isinstance(e, BlockEvent) and e.devname == dev and not e.coldplug)
    loops.detach(dev)


@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager()
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def test_coldplug_loads_every_sysfs_alias_once(tmp_path: Path, pm: ProcessManager,
                                                     source: list[UdevSource]) -> None:
    need_root_and_tools()
    bus = Bus()
    fake = FakeModprobe(tmp_path)
    handler = DevicesHandler(pm, bus, modprobe=[str(fake.path)])
    runner = HandlerRunner(bus, handler, Backoff(initial=0.01, cap=0.05))
    runner.start(initial_full=False)  # subscribed before the coldplug, as start_devices does
    udev = UdevSource(bus)
    source.append(udev)
    await udev.start()
    expected = sorted(f"-b -- {a}" for a in sysfs_aliases())
    for _ in range(1000):
        if len(fake.calls()) >= len(expected) and handler.status()["running"] == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    await runner.stop()
    handler.close()
    assert sorted(fake.calls()) == expected  # each alias once
    assert handler.status()["scans"] == 0  # the coldplug events sufficed


def trigger_target() -> Path | None:
    """A device whose uevent can be re-announced harmlessly (what `udevadm trigger` does)."""
    for pattern in ("platform/*", "system/cpu/cpu0", "pci*/*"):
        for path in sorted(Path("/sys/devices").glob(pattern)):
            uevent = path / "uevent"
            if uevent.exists() and "MODALIAS=" in uevent.read_text():
                return path
    return None


async def test_hotplug_uevent_with_modalias_runs_modprobe_once(tmp_path: Path, pm: ProcessManager,
                                                               source: list[UdevSource]) -> None:
    need_root_and_tools()
    target = trigger_target()
    if target is None:
        pytest.skip("no device with a MODALIAS to trigger")
    lines = (target / "uevent").read_text().splitlines()
    alias = next(line[9:] for line in lines if line.startswith("MODALIAS="))
    bus = Bus()
    udev = UdevSource(bus)
    source.append(udev)
    await udev.start()
    fake = FakeModprobe(tmp_path)
    handler = DevicesHandler(pm, bus, modprobe=[str(fake.path)])  # after the coldplug: sees only hotplug
    runner = HandlerRunner(bus, handler, Backoff(initial=0.01, cap=0.05))
    runner.start(initial_full=False)
    sub = bus.subscribe("test", UEvent)
    for _ in range(2):
        (target / "uevent").write_text("add")
        await next_matching(sub, lambda e: isinstance(e, UEvent) and e.devpath == str(target)[len("/sys"):]
                            and e.action == "add")
        for _ in range(300):
            if fake.calls() and handler.status()["running"] == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    await runner.stop()
    handler.close()
    assert fake.calls() == [f"-b -- {alias}"]


def test_no_loop_device_of_ours_is_left(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        out = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        assert str(tmp_path.parent) not in out
