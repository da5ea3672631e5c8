"""The ProcessKeeper as udevd's runner uses it: want/drop one spec among others, listeners told of
starts and exits, output read into the log, status of a process waiting for its restart. Real children
(sleep, sh); no udevd."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest
import structlog

from handlers.processes import ProcessKeeper, ProcessSpec, Start, Stop, plan
from handlers.runner import HandlerRunner
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.process import Child, ProcessManager

A = ProcessSpec("a", ("sleep", "30"))
B = ProcessSpec("b", ("sleep", "31"))


def test_plan_keeps_one_and_starts_the_other_after_its_delay() -> None:
    assert plan({"a": A, "b": B}, {"a": A}, {"b": 0.2}) == [Start("b", 0.2)]
    assert plan({"b": B}, {"a": A, "b": B}, {}) == [Stop("a")]
    log_changed = ProcessSpec("a", A.argv, log_output=True)
    assert plan({"a": log_changed}, {"a": A}, {}) == [Stop("a")]  # any change of the spec restarts it


@pytest.fixture
async def world() -> AsyncIterator[tuple[ProcessManager, ProcessKeeper, HandlerRunner]]:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    keeper = ProcessKeeper(pm, bus, grace=1.0)
    runner = HandlerRunner(bus, keeper, Backoff(initial=0.001, cap=0.002))
    runner.start()
    yield pm, keeper, runner
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


async def test_want_and_drop_leave_other_specs_alone(
    world: tuple[ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, keeper, _ = world
    keeper.declare([A])
    keeper.want(B)
    keeper.kick()
    await wait_for(lambda: {"a", "b"} <= set(keeper.status()))
    a_pid = keeper.status()["a"]["pid"]  # type: ignore[index]
    keeper.drop("b")
    keeper.kick()
    await wait_for(lambda: set(keeper.status()) == {"a"})
    assert keeper.status()["a"]["pid"] == a_pid  # type: ignore[index]


async def test_listeners_hear_start_exit_and_restart(
    world: tuple[ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, keeper, _ = world
    heard: list[tuple[str, str, int]] = []

    def listener(what: str, name: str, child: Child) -> None:
        heard.append((what, name, child.pid))

    def broken(what: str, name: str, child: Child) -> None:
        raise RuntimeError("a listener's bug")

    keeper.listen(broken)  # must not stop the keeper or the other listeners
    keeper.listen(listener)
    keeper.want(A)
    keeper.kick()
    await wait_for(lambda: len(heard) == 1)
    first = heard[0][2]
    child = keeper.child("a")
    assert child is not None and child.pid == first
    child.send_signal(signal.SIGKILL)
    await wait_for(lambda: len(heard) == 3)
    assert [(w, n) for w, n, _ in heard] == [("started", "a"), ("exited", "a"), ("started", "a")]
    assert heard[1][2] == first and heard[2][2] != first
    assert keeper.restarts["a"] == 1


async def test_output_goes_to_the_log(world: tuple[ProcessManager, ProcessKeeper, HandlerRunner]) -> None:
    _, keeper, _ = world
    script = "echo out-line; echo err-line >&2; exec sleep 30"
    spec = ProcessSpec("talker", ("sh", "-c", script), log_output=True)
    with structlog.testing.capture_logs() as logs:
        keeper.want(spec)
        keeper.kick()
        await wait_for(lambda: {"out-line", "err-line"} <= {e["event"] for e in logs})
    lines = {e["event"]: e for e in logs if e["event"] in ("out-line", "err-line")}
    assert lines["out-line"]["unit"] == "talker" and lines["out-line"]["stream"] == "stdout"
    assert lines["err-line"]["stream"] == "stderr"


async def test_status_shows_a_wanted_process_waiting_to_restart(
    world: tuple[ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, keeper, _ = world
    keeper.want(ProcessSpec("crasher", ("sh", "-c", "exit 3")))
    keeper.kick()
    await wait_for(lambda: keeper.restarts.get("crasher", 0) >= 2)
    status = keeper.status()["crasher"]
    assert isinstance(status, dict) and status["restarts"] >= 2
    keeper.drop("crasher")
    keeper.kick()
    await wait_for(lambda: "crasher" not in keeper.status())


async def test_a_changed_spec_is_stopped_then_started_and_listeners_hear_both(
    world: tuple[ProcessManager, ProcessKeeper, HandlerRunner],
) -> None:
    _, keeper, _ = world
    heard: list[tuple[str, str]] = []
    keeper.listen(lambda what, name, child: heard.append((what, name)))
    keeper.want(A)
    keeper.kick()
    await wait_for(lambda: heard == [("started", "a")])
    keeper.want(ProcessSpec("a", ("sleep", "32")))
    keeper.kick()
    await wait_for(lambda: len(heard) == 3)
    assert heard[1:] == [("stopped", "a"), ("started", "a")]
    assert keeper.restarts.get("a", 0) == 0  # a deliberate restart is not a crash
    child = keeper.child("a")
    assert child is not None and child.argv == ["sleep", "32"]
