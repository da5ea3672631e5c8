"""How the units reconciler asks for its next reconcile (handlers/units/wake.py): at once, at a time (one
timer, replaced), and nothing once closed."""

from __future__ import annotations

import asyncio

from handlers.units.wake import Wake
from supervisor.bus import Bus
from supervisor.events import TimerFired
from tests.units_fakes import Clock


def fired(sub: object) -> list[str]:
    names = []
    while (event := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        assert isinstance(event, TimerFired)
        names.append(event.name)
    return names


async def test_poke_asks_at_once() -> None:
    bus = Bus()
    sub = bus.subscribe("test", TimerFired)
    wake = Wake(bus, "containers", Clock())
    wake.poke()
    assert fired(sub) == ["containers"]


async def test_a_timer_fires_once_at_its_time_and_is_replaced_by_the_next() -> None:
    bus, clock = Bus(), Clock()
    sub = bus.subscribe("test", TimerFired)
    wake = Wake(bus, "containers", clock)
    wake.at(clock.now + 3600)
    first = wake._timer
    wake.at(clock.now + 0.01)  # replaces the first
    second = wake._timer
    assert first is not None and first.cancelled() and second is not None
    wake.at(clock.now + 0.01)  # the same time: kept as it is
    assert wake._timer is second
    assert fired(sub) == []
    await asyncio.wait_for(sub.get(), 5)
    assert wake._timer is None
    await asyncio.sleep(0.05)
    assert fired(sub) == []  # once only
    wake.at(clock.now - 1)  # due already: at once
    await asyncio.wait_for(sub.get(), 5)
    wake.at(clock.now + 0.01)
    wake.at(None)  # no timer
    await asyncio.sleep(0.05)
    assert fired(sub) == []


async def test_nothing_is_asked_once_closed() -> None:
    bus, clock = Bus(), Clock()
    sub = bus.subscribe("test", TimerFired)
    wake = Wake(bus, "containers", clock)
    wake.at(clock.now + 0.01)
    wake.close()
    wake.poke()
    wake.at(clock.now)
    await asyncio.sleep(0.05)
    assert fired(sub) == []
