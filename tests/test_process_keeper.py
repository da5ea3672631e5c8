"""ProcessKeeper against real child processes: the process-exit source and timers as its inputs."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from handlers.processes import ProcessKeeper, ProcessSpec, Start, Stop, plan
from handlers.runner import HandlerRunner
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import TimerFired
from supervisor.process import ProcessManager
from supervisor.sources.timer import Timer

SLEEPER = ProcessSpec("sleeper", ("sleep", "30"))


def test_plan_is_pure_and_minimal() -> None:
    want = {"a": SLEEPER}
    assert plan(want, {}, {}) == [Start("a", 0.0)]
    assert plan(want, {"a": SLEEPER}, {}) == []
    changed = ProcessSpec("a", ("sleep", "31"))
    assert plan({"a": changed}, {"a": SLEEPER}, {}) == [Stop("a")]
    assert plan({}, {"a": SLEEPER}, {}) == [Stop("a")]
    assert plan(want, {}, {"a": 0.4}) == [Start("a", 0.4)]


@pytest.fixture
async def world() -> AsyncIterator[tuple[Bus, ProcessManager, ProcessKeeper, HandlerRunner]]:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    keeper = ProcessKeeper(pm, bus, grace=1.0)
    runner = HandlerRunner(bus, keeper, Backoff(initial=0.001, cap=0.002))
    yield bus, pm, keeper, runner
    await runner.stop()
    await pm.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def wait_for(predicate: object, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_killed_process_is_restarted_with_backoff(
    world: tuple[Bus, ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, pm, keeper, runner = world
    keeper.declare([SLEEPER])
    runner.start()
    await wait_for(lambda: "sleeper" in keeper.status())
    pids = [keeper.status()["sleeper"]["pid"]]
    for _ in range(4):  # each kill is an exit event; the keeper starts it again
        pm.children()[0].send_signal(signal.SIGKILL)
        await wait_for(lambda: keeper.status().get("sleeper", {}).get("pid") not in (None, *pids))
        pids.append(keeper.status()["sleeper"]["pid"])
    assert keeper.restarts["sleeper"] == 4
    assert len(set(pids)) == 5
    # The backoff grew: first restart immediate, then 0.1 s doubling (the default policy).
    assert keeper._backoffs["sleeper"].failures == 4


async def test_undeclared_process_is_stopped(
    world: tuple[Bus, ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    bus, pm, keeper, runner = world
    keeper.declare([SLEEPER])
    runner.start()
    await wait_for(lambda: "sleeper" in keeper.status())
    child = pm.children()[0]
    keeper.declare([])
    bus.publish(TimerFired(name="poke"))
    status = await asyncio.wait_for(child.wait(), 10)
    assert status.signal == signal.SIGTERM
    await wait_for(lambda: keeper.status() == {})


async def test_missing_binary_is_retried_not_fatal(
    world: tuple[Bus, ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, _, keeper, runner = world
    keeper.declare([ProcessSpec("ghost", ("/nonexistent/daemon",))])
    runner.start()
    await wait_for(lambda: "ghost" in keeper._backoffs and keeper._backoffs["ghost"].failures >= 3)
    assert runner.stats.failures == 0  # a failed spawn is the keeper's business, not a handler crash


async def test_timer_fires_at_its_interval() -> None:
    bus = Bus()
    sub = bus.subscribe("t", TimerFired)
    timer = Timer(bus, "tick", 0.02)
    timer.start()
    got = [await asyncio.wait_for(sub.get(), 2) for _ in range(3)]
    await timer.stop()
    assert [e.name for e in got if isinstance(e, TimerFired)] == ["tick"] * 3
    with pytest.raises(ValueError):
        Timer(bus, "bad", 0)
