"""How the units reconciler asks for its next reconcile: at once (``poke``: a wave finished, a background
action ended) or at a time (``at``: the earliest restart due, a ``loop.call_later``); either publishes
``TimerFired(name=<the reconciler's name>)``, which its runner turns into a reconcile. Closed at
shutdown: nothing is asked for any more."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from supervisor.bus import Bus
from supervisor.events import TimerFired


class Wake:
    def __init__(self, bus: Bus, name: str, clock: Callable[[], float]) -> None:
        self.bus = bus
        self.name = name
        self.clock = clock
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._at: float | None = None

    def poke(self) -> None:
        """Reconcile again soon."""
        if not self.closed:
            self.bus.publish(TimerFired(name=self.name))

    def at(self, until: float | None) -> None:
        """Reconcile again at ``until`` (the clock's time; None: no timer), replacing the timer set."""
        if until is not None and self._timer is not None and self._at == until:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._at = None, None
        if until is None or self.closed:
            return
        delay = max(0.0, until - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
        self._at = until

    def _fire(self) -> None:
        self._timer, self._at = None, None
        self.poke()

    def close(self) -> None:
        self.closed = True
        self.at(None)
