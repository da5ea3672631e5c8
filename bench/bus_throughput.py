"""Bus throughput through the handler runner (no-op reconciler) and event -> reconcile latency.

Prints events/s for a storm (coalesced, as in production), events/s with a reconcile per event
(the worst case: one event at a time), and latency p50/p99 from publish to the reconciler running."""

from __future__ import annotations

import asyncio
import time

from bench._stats import loadavg, summary
from handlers.runner import HandlerRunner
from supervisor import journal
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import Event, TimerFired


class Noop:
    name = "noop"
    kinds: tuple[type[Event], ...] = (TimerFired,)

    def __init__(self) -> None:
        self.calls = 0
        self.woken: asyncio.Event = asyncio.Event()

    async def reconcile(self, full: bool) -> None:
        self.calls += 1
        self.woken.set()


async def main() -> None:
    journal.setup(level="warning", console=None)
    bus = Bus()
    noop = Noop()
    runner = HandlerRunner(bus, noop, Backoff(), queue_size=1 << 20)
    runner.start()
    await asyncio.sleep(0.01)

    n = 200_000
    start = time.perf_counter()
    for i in range(n):
        bus.publish(TimerFired(name="t"))
        if i % 1000 == 999:
            await asyncio.sleep(0)
    while runner._sub.pending():  # noqa: ASYNC110 (spinning the loop is what is measured)
        await asyncio.sleep(0)
    took = time.perf_counter() - start
    print(f"storm: {n} events in {took:.3f} s = {n / took:,.0f} events/s, {noop.calls} reconciles; "
          f"load {loadavg():.2f}")

    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        noop.woken.clear()
        bus.publish(TimerFired(name="t"))
        await noop.woken.wait()
    took = time.perf_counter() - start
    print(f"one at a time: {n} events in {took:.3f} s = {n / took:,.0f} events/s (a reconcile each); "
          f"load {loadavg():.2f}")

    latencies = []
    for _ in range(5000):
        noop.woken.clear()
        t0 = time.perf_counter()
        bus.publish(TimerFired(name="t"))
        await noop.woken.wait()
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(0)
    print(f"event -> reconcile latency: {summary(latencies, 'us', 1e6)}; load {loadavg():.2f}")
    await runner.stop()


if __name__ == "__main__":
    asyncio.run(main())
