"""The event bus: publish is synchronous and never blocks; every subscriber has a bounded queue.

When a subscriber's queue is full, its pending events are discarded and its next ``get`` returns a
``Resync`` instead: the subscriber learns that it missed something and observes everything again.
Nothing is dropped silently."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import structlog

from supervisor.events import Event, Resync

log = structlog.get_logger("supervisor.bus")

DEFAULT_QUEUE = 1024


class Subscription:
    """One subscriber's view of the bus."""

    def __init__(self, bus: Bus, name: str, kinds: tuple[type[Event], ...], maxsize: int) -> None:
        self.bus = bus
        self.name = name
        self.kinds = kinds
        self.maxsize = maxsize
        self._queue: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self.dropped = 0  # events discarded by overflow, all time
        self.overflows = 0
        self._overflowed_by = 0  # discarded since the last Resync handed out

    def wants(self, event: Event) -> bool:
        return isinstance(event, Resync) or not self.kinds or isinstance(event, self.kinds)

    def deliver(self, event: Event) -> None:
        """Queue one event for this subscriber (the bus calls this; so may an owner poking itself)."""
        if self._overflowed_by:
            self._overflowed_by += 1
            self.dropped += 1
            return
        if len(self._queue) >= self.maxsize:
            self.overflows += 1
            self._overflowed_by = len(self._queue) + 1
            self.dropped += self._overflowed_by
            self._queue.clear()
            log.warning("subscriber queue overflowed; it will resync", subscriber=self.name)
        else:
            self._queue.append(event)
        self._wakeup.set()

    def get_nowait(self) -> Event | None:
        if self._overflowed_by:
            count, self._overflowed_by = self._overflowed_by, 0
            return Resync(source="bus", reason=f"queue overflow: {count} events dropped")
        if self._queue:
            return self._queue.popleft()
        self._wakeup.clear()
        return None

    async def get(self) -> Event:
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            await self._wakeup.wait()

    def pending(self) -> int:
        return len(self._queue) + (1 if self._overflowed_by else 0)

    def close(self) -> None:
        self.bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class Bus:
    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self.published = 0

    def subscribe(
        self, name: str, *kinds: type[Event], maxsize: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Subscribe to events of the given types (all when none given); Resync always comes through."""
        sub = Subscription(self, name, kinds, maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            if sub.wants(event):
                sub.deliver(event)

    def stats(self) -> dict[str, object]:
        return {
            "published": self.published,
            "subscribers": {
                s.name: {"pending": s.pending(), "dropped": s.dropped, "overflows": s.overflows}
                for s in self._subs
            },
        }
