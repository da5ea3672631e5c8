"""The docker events source and the runtime wrapper against a real dockerd (the ``dockerd`` fixture).

The source runs in the test's own event loop, publishing on a private bus."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from integration.dockerd import TEST_IMAGE, Dockerd
from supervisor.backoff import Backoff
from supervisor.bus import Bus, Subscription
from supervisor.events import Event, Resync
from supervisor.events.docker import ContainerEvent, EventStreamState
from supervisor.sources.docker import DockerEventsSource, since_param
from units.runtime import LABEL_UNIT, DockerUnavailable, LogLine, NotFound, Runtime, pump_logs

pytestmark = pytest.mark.docker


class Collector:
    """Every event of a subscription, kept, with waiting for one that matches."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.seen: list[Event] = []

    async def wait(self, pred: Callable[[Event], bool], timeout: float = 20.0, after: int = 0) -> Event:
        """The first matching event, among those kept from index ``after`` on or still to come."""
        for event in self.seen[after:]:
            if pred(event):
                return event
        async with asyncio.timeout(timeout):
            while True:
                event = await self.sub.get()
                self.seen.append(event)
                if pred(event):
                    return event

    def container(self, cid: str) -> list[ContainerEvent]:
        return [e for e in self.seen if isinstance(e, ContainerEvent) and e.container_id == cid]


def stop_and_wait(pid: int, timeout: float = 10) -> None:
    """SIGSTOP, then wait until every thread is stopped: kill(2) only queues the stop, and on a loaded
    machine one of dockerd's threads could still answer a request sent right after it."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                continue  # a thread that just exited
        if states and all(state == "T" for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} not stopped after {timeout} s")


def is_stream(state: str) -> Callable[[Event], bool]:
    return lambda e: isinstance(e, EventStreamState) and e.state == state


def is_action(cid: str, action: str, observed: bool | None = None) -> Callable[[Event], bool]:
    return lambda e: (isinstance(e, ContainerEvent) and e.container_id == cid and e.action == action
                      and (observed is None or e.observed == observed))


def body(*cmd: str, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"Image": TEST_IMAGE, "Cmd": list(cmd), "HostConfig": {"NetworkMode": "none"},
                         **extra}
    if unit is not None:
        b["Labels"] = {LABEL_UNIT: unit}
    return b


async def test_container_start_and_die_are_bus_events(dockerd: Dockerd) -> None:
    bus = Bus()
    events = Collector(bus.subscribe("test", ContainerEvent, EventStreamState))
    source = DockerEventsSource(bus, dockerd.socket, daemon="test")
    source.start()
    try:
        connected = await events.wait(is_stream("connected"))
        assert isinstance(connected, EventStreamState) and connected.since is None
        async with Runtime(dockerd.socket) as rt:
            cid = await rt.create(body("sh", "-c", "sleep 0.2; exit 3", unit="job"), name="job")
            await rt.start(cid)
            die = await events.wait(is_action(cid, "die"))
            received = time.time()
            state = await rt.inspect(cid)
        assert isinstance(die, ContainerEvent)
        assert [e.action for e in events.container(cid)] == ["create", "start", "die"]
        assert (die.exit_code, die.unit, die.name, die.daemon) == (3, "job", "job", "test")
        assert not die.observed
        assert state is not None and state.finished_at is not None and state.exit_code == 3
        latency = received - state.finished_at
        print(f"die event {latency * 1000:.1f} ms after the container exited")
        assert latency < 2.0
        assert source.status()["connected"] and source.status()["events"] >= 3
        assert source.since == since_param(die.time_nano)
    finally:
        await source.stop()


async def test_frozen_dockerd_is_noticed_and_the_stream_resumes_with_since(dockerd: Dockerd) -> None:
    """SIGSTOP freezes the stream (it would hang forever): the source's /_ping watchdog ends the session.
    While it is away, one container dies and another lives and goes entirely; after reconnecting, the
    since= replay brings every event of both, and the listing diff reports the death (observed)."""
    bus = Bus()
    events = Collector(bus.subscribe("test", ContainerEvent, EventStreamState, Resync))
    # Reconnect 1.5 s after the loss: time to make things happen while disconnected.
    source = DockerEventsSource(bus, dockerd.socket, daemon="test", ping_interval=0.2, ping_timeout=0.5,
                                ping_misses=2, backoff=Backoff(first=1.5, initial=1.5))
    source.start()
    rt = Runtime(dockerd.socket, timeout=5)
    try:
        await events.wait(is_stream("connected"))
        sleeper = await rt.create(body("sleep", "1000", unit="sleeper"), name="sleeper")
        await rt.start(sleeper)
        await events.wait(is_action(sleeper, "start"))
        since_before = source.since
        os.kill(dockerd.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            lost = await events.wait(is_stream("lost"), timeout=10)
            noticed = time.monotonic() - frozen_at
        finally:
            os.kill(dockerd.pid, signal.SIGCONT)
        assert isinstance(lost, EventStreamState) and lost.reason.startswith("watchdog")
        print(f"frozen dockerd noticed after {noticed:.2f} s")
        assert noticed < 3.0
        # While disconnected: the sleeper is killed, and a short-lived container comes and goes.
        await rt.kill(sleeper)
        brief = await rt.create(body("sh", "-c", "exit 5"), name="brief")
        await rt.start(brief)
        assert await rt.wait(brief, timeout=10) == 5
        await rt.remove(brief)
        assert not source.status()["connected"]
        connected = await events.wait(is_stream("connected"), 10, after=events.seen.index(lost))
        assert isinstance(connected, EventStreamState) and connected.since == since_before
        resync_index = next(i for i, e in enumerate(events.seen)
                            if isinstance(e, Resync) and "reconnected" in e.reason)
        # The listing says the sleeper died: reported before the Resync, as observed.
        observed_die = await events.wait(is_action(sleeper, "die", observed=True))
        assert isinstance(observed_die, ContainerEvent) and observed_die.exit_code == 137
        assert events.seen.index(observed_die) < resync_index
        # since= replays what happened meanwhile, with dockerd's timestamps.
        replayed = await events.wait(is_action(brief, "destroy"))
        assert isinstance(replayed, ContainerEvent) and not replayed.observed and replayed.time_nano > 0
        assert [e.action for e in events.container(brief)] == ["create", "start", "die", "destroy"]
        assert next(e for e in events.container(brief) if e.action == "die").exit_code == 5
        replayed_die = await events.wait(is_action(sleeper, "die", observed=False))
        assert isinstance(replayed_die, ContainerEvent) and replayed_die.exit_code == 137
        # Nothing seen before the freeze came twice.
        assert [e.action for e in events.container(sleeper) if not e.observed] == ["create", "start", "kill",
                                                                                 "die"]
    finally:
        await rt.close()
        await source.stop()


async def test_dockerd_gone_ends_the_stream_and_the_source_keeps_retrying(make_dockerd: Any) -> None:
    d: Dockerd = make_dockerd(load_image=False)
    bus = Bus()
    events = Collector(bus.subscribe("test", EventStreamState))
    source = DockerEventsSource(bus, d.socket, daemon="test", backoff=Backoff(initial=0.05, cap=0.1))
    source.start()
    try:
        await events.wait(is_stream("connected"))
        os.kill(d.pid, signal.SIGKILL)  # the subscriber's stream ends: aiodocker's None
        lost = await events.wait(is_stream("lost"), timeout=10)
        assert (isinstance(lost, EventStreamState) and "broke" in lost.reason) or "ended" in lost.reason
        await asyncio.sleep(0.5)
        status = source.status()
        assert not status["connected"] and status["sessions"] == 1
    finally:
        await source.stop()


# ---- units.runtime against the real thing --------------------------------------------------------------
async def test_runtime_container_life_cycle_and_logs(dockerd: Dockerd) -> None:
    async with Runtime(dockerd.socket) as rt:
        assert await rt.ping()
        assert (await rt.version())["ApiVersion"]
        assert await rt.image_exists(TEST_IMAGE) and not await rt.image_exists("corral/none:latest")
        image = await rt.image_inspect("corral/busybox:latest")
        assert image is not None and image["Config"]["Cmd"] == ["sh"]
        script = ("echo out1; echo err1 >&2; echo out2; trap 'echo bye; exit 0' TERM; "
                  "while :; do sleep 0.1; done")
        cid = await rt.create(body("sh", "-c", script, unit="talker"), name="talker")
        await rt.create(body("true"), name="stranger")  # no unit label: not listed by default
        await rt.start(cid)
        lines: list[tuple[str, str, str]] = []

        class Sink:
            def log(self, event: str, level: str = "info", logger: str = "corral", **fields: Any) -> None:
                lines.append((event, fields["unit"], fields["stream"]))

        pump = asyncio.get_running_loop().create_task(pump_logs(rt, cid, "talker", Sink()))
        listed = await rt.list_containers()
        assert [(c.name, c.unit, c.state, c.running) for c in listed] == [
            ("talker", "talker", "running", True)]
        assert {c.name for c in await rt.list_containers(label=None)} == {"talker", "stranger"}
        assert [c.name for c in await rt.list_containers(unit="talker")] == ["talker"]
        started = time.monotonic()
        await rt.stop(cid, timeout=5)
        assert time.monotonic() - started < 4  # the trap answered SIGTERM
        assert await asyncio.wait_for(pump, 10) == 4
        assert sorted(lines) == sorted([("out1", "talker", "stdout"), ("err1", "talker", "stderr"),
                                        ("out2", "talker", "stdout"), ("bye", "talker", "stdout")])
        state = await rt.inspect("talker")
        assert state is not None and state.exit_code == 0 and not state.running and state.started_at
        await rt.start(cid)
        await rt.kill(cid, signal="SIGKILL")
        assert await rt.wait(cid, timeout=10) == 137
        await rt.remove(cid)
        await rt.remove("stranger", force=True)
        assert await rt.inspect(cid) is None
        with pytest.raises(NotFound):
            await rt.start(cid)
        tty = await rt.create(body("sh", "-c", "printf 'a\\r\\nb'", Tty=True), name="tty")
        await rt.start(tty)
        assert await rt.wait(tty, timeout=10) == 0
        got = [line async for line in rt.follow_logs(tty)]
        assert got == [LogLine("stdout", "a"), LogLine("stdout", "b")]


async def test_runtime_calls_to_a_frozen_dockerd_time_out(dockerd: Dockerd) -> None:
    async with Runtime(dockerd.socket, timeout=0.5) as rt:
        assert await rt.ping()
        stop_and_wait(dockerd.pid)
        try:
            started = time.monotonic()
            assert not await rt.ping(timeout=0.3)
            with pytest.raises(DockerUnavailable, match="no answer"):
                await rt.list_containers()
            with pytest.raises(DockerUnavailable):
                await rt.stop("whatever", timeout=0)
            assert time.monotonic() - started < 3
        finally:
            os.kill(dockerd.pid, signal.SIGCONT)
        assert await rt.ping(timeout=5)
