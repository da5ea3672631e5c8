from supervisor.bus import Bus
from supervisor.events import ProcessExited, Resync, TimerFired


def _exit(pid: int) -> ProcessExited:
    return ProcessExited(pid=pid, name="x", returncode=0, signal=None)


async def test_subscriber_gets_only_its_kinds_and_always_resync() -> None:
    bus = Bus()
    sub = bus.subscribe("t", TimerFired)
    bus.publish(_exit(1))
    bus.publish(TimerFired(name="a"))
    bus.publish(Resync(source="s", reason="r"))
    assert isinstance(await sub.get(), TimerFired)
    assert isinstance(await sub.get(), Resync)
    assert sub.get_nowait() is None


async def test_overflow_becomes_one_resync_never_a_silent_drop() -> None:
    bus = Bus()
    sub = bus.subscribe("slow", maxsize=10)
    for i in range(25):
        bus.publish(_exit(i))
    first = await sub.get()
    assert isinstance(first, Resync)
    assert "25 events dropped" in first.reason
    assert sub.get_nowait() is None
    assert sub.dropped == 25 and sub.overflows == 1
    bus.publish(_exit(99))  # after the resync, normal delivery resumes
    again = await sub.get()
    assert isinstance(again, ProcessExited) and again.pid == 99


async def test_events_are_immutable() -> None:
    event = TimerFired(name="a")
    try:
        event.name = "b"  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("event was mutable")


async def test_fast_subscriber_unaffected_by_slow_one() -> None:
    bus = Bus()
    slow = bus.subscribe("slow", maxsize=2)
    fast = bus.subscribe("fast", maxsize=100)
    for i in range(5):
        bus.publish(_exit(i))
    got = [fast.get_nowait() for _ in range(5)]
    assert [e.pid for e in got if isinstance(e, ProcessExited)] == [0, 1, 2, 3, 4]
    assert isinstance(slow.get_nowait(), Resync)
