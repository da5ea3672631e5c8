import asyncio

from handlers.runner import HandlerRunner, concerns
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event, TimerFired


class Recorder:
    name = "rec"
    kinds: tuple[type[Event], ...] = (TimerFired,)
    config_keys: tuple[str, ...] | None = None

    def __init__(self, fail: int = 0, hold: asyncio.Event | None = None) -> None:
        self.calls: list[bool] = []
        self.fail = fail
        self.hold = hold

    async def reconcile(self, full: bool) -> None:
        self.calls.append(full)
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            self.fail -= 1
            raise ValueError("boom")


async def settle(runner: HandlerRunner) -> None:
    for _ in range(200):
        await asyncio.sleep(0.005)
        if runner.stats.state == "idle" and runner._sub.pending() == 0:
            return


async def test_storm_is_coalesced() -> None:
    bus = Bus()
    hold = asyncio.Event()
    rec = Recorder(hold=hold)
    runner = HandlerRunner(bus, rec, Backoff(cap=0.01))
    runner.start()
    await asyncio.sleep(0.01)  # first (full) reconcile is now blocked on hold
    for _ in range(500):
        bus.publish(TimerFired(name="t"))
    hold.set()
    await settle(runner)
    assert rec.calls == [True, False]  # the initial resync, then one for all 500 events
    assert runner.stats.events == 501
    await runner.stop()


async def test_failure_is_isolated_and_retried_full_with_backoff() -> None:
    bus = Bus()
    rec = Recorder(fail=3)
    runner = HandlerRunner(bus, rec, Backoff(initial=0.001, cap=0.002))
    runner.start()
    await settle(runner)
    assert len(rec.calls) == 4 and all(rec.calls)  # retries are full reconciles
    assert runner.stats.failures == 3 and runner.stats.restarts == 3
    assert runner.stats.state == "idle"
    await runner.stop()


async def test_injected_failures() -> None:
    bus = Bus()
    rec = Recorder()
    runner = HandlerRunner(bus, rec, Backoff(initial=0.0001, cap=0.0001))
    runner.start()
    await settle(runner)
    runner.inject_failures(100)
    await settle(runner)
    assert runner.stats.failures == 100
    assert runner.stats.state == "idle"
    assert len(rec.calls) >= 2  # it reconciled again after the injected failures
    await runner.stop()


def test_concerns_matches_key_paths_either_way() -> None:
    keys = ("network", "corral.network")
    assert concerns(keys, ("corral.network",)) and concerns(keys, ("network",))
    assert concerns(keys, ("corral",))  # the whole corral: map changed
    assert concerns(("corral.state.dev",), ("corral.state",))
    assert not concerns(keys, ("hostname", "corral.log"))
    assert not concerns(keys, ("corral.networks",))  # a prefix of the text is not a parent
    assert concerns(None, ("hostname",)) and concerns(keys, ())  # no keys given / no paths named: always


async def test_a_config_change_of_other_keys_does_not_wake_it() -> None:
    """`config set hostname x` must not make the network reconciler dump netlink (issue 12)."""
    bus = Bus()
    rec = Recorder()
    rec.kinds = (ConfigChanged, TimerFired)
    rec.config_keys = ("corral.network",)
    runner = HandlerRunner(bus, rec, Backoff(cap=0.01))
    runner.start()
    await settle(runner)
    assert rec.calls == [True]
    bus.publish(ConfigChanged(generation=2, changed=("hostname",)))
    await settle(runner)
    assert rec.calls == [True] and runner.stats.skipped == 1
    bus.publish(ConfigChanged(generation=3, changed=("hostname", "corral.network")))
    await settle(runner)
    assert rec.calls == [True, False]
    bus.publish(TimerFired(name="t"))  # its other events still do
    await settle(runner)
    assert rec.calls == [True, False, False]
    await runner.stop()


async def test_an_event_the_reconciler_does_not_want_does_not_wake_it() -> None:
    """A reconciler's own ``wanted`` (the units reconciler: container events of a unit whose action is in
    flight) keeps an event from waking it; a Resync always does."""
    bus = Bus()
    rec = Recorder()
    unwanted = {"skip"}
    rec.wanted = lambda event: getattr(event, "name", None) not in unwanted  # type: ignore[attr-defined]
    runner = HandlerRunner(bus, rec, Backoff(cap=0.01))
    runner.start()
    await settle(runner)
    assert rec.calls == [True]
    bus.publish(TimerFired(name="skip"))
    await settle(runner)
    assert rec.calls == [True] and runner.stats.skipped == 1
    bus.publish(TimerFired(name="other"))
    await settle(runner)
    assert rec.calls == [True, False]
    unwanted.clear()
    bus.publish(TimerFired(name="skip"))
    await settle(runner)
    assert rec.calls == [True, False, False]
    await runner.stop()
