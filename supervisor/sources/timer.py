"""Timer source: publishes ``TimerFired(name)`` every ``interval`` seconds.

Used for periodic level-triggered checks (status refresh, watchdogs). It sleeps between ticks, so an
idle host makes one wakeup per interval and no more."""

from __future__ import annotations

import asyncio

from supervisor.bus import Bus
from supervisor.events import TimerFired
from supervisor.tasks import spawn_task


class Timer:
    def __init__(self, bus: Bus, name: str, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.bus = bus
        self.name = name
        self.interval = interval
        self.fired = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = spawn_task(self._run(), name=f"timer:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self.interval
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if loop.time() - deadline > self.interval:  # suspended or stalled: don't fire a burst
                deadline = loop.time()
            self.fired += 1
            self.bus.publish(TimerFired(name=self.name))
