"""Gives each reconciler dirty-marking, coalescing, crash isolation and backoff.

A reconciler is level-triggered: events only say "look again". The runner waits for an event,
drains everything else that is pending (one reconcile covers any number of events), and calls
``reconcile(full)``; ``full`` is true when a Resync was among them, meaning "observe everything, you may
have missed events". An exception is logged, reported on the bus, and the reconcile is retried after
the shared Backoff; nothing escapes to the loop."""

from __future__ import annotations

import asyncio
import time
import traceback
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from supervisor.backoff import Backoff
from supervisor.bus import Bus, Subscription
from supervisor.events import ConfigChanged, Event, HandlerFailed, Resync
from supervisor.tasks import spawn_task


class Reconciler(Protocol):
    """What the runner drives. ``kinds`` are the event types that mark it dirty. ``config_keys`` are the
    config key paths its desired state comes from: a ``ConfigChanged`` that changed none of them does
    not wake it (None: every config change does). A reconciler may also have ``wanted(event) -> bool``:
    an event it answers False for does not wake it either (``wakes``)."""

    name: str
    kinds: tuple[type[Event], ...]
    config_keys: tuple[str, ...] | None

    async def reconcile(self, full: bool) -> None: ...


def concerns(keys: tuple[str, ...] | None, changed: tuple[str, ...]) -> bool:
    """Whether a config change of the key paths ``changed`` (``hostname``, ``corral.network``) touches
    any of ``keys``: the same path, one under the other, or a change that names no path."""
    if keys is None or not changed:
        return True
    return any(c == k or c.startswith(k + ".") or k.startswith(c + ".") for c in changed for k in keys)


def wakes(reconciler: Reconciler, event: Event) -> bool:
    """Whether ``event`` marks ``reconciler`` dirty: every event but a config change of other keys and
    one the reconciler's own ``wanted`` (when it has one) says needs no reconcile."""
    if isinstance(event, ConfigChanged):
        return concerns(reconciler.config_keys, event.changed)
    wanted = getattr(reconciler, "wanted", None)
    return wanted is None or bool(wanted(event))


class InjectedFailure(RuntimeError):
    """Raised by the runner itself when a test or operator asked for a failure (corral debug)."""


@dataclass
class RunnerStats:
    reconciles: int = 0
    events: int = 0
    skipped: int = 0  # wake-ups that needed no reconcile (a config change of other keys)
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_reconcile: float | None = None
    state: str = "idle"  # idle | reconciling | backoff | stopped
    extra: dict[str, object] = field(default_factory=dict)


class HandlerRunner:
    def __init__(self, bus: Bus, reconciler: Reconciler, backoff: Backoff | None = None,
                 queue_size: int = 1024) -> None:
        self.bus = bus
        self.reconciler = reconciler
        self.name = reconciler.name
        self.backoff = backoff or Backoff()
        self.stats = RunnerStats()
        self._sub: Subscription = bus.subscribe(f"handler:{self.name}", *reconciler.kinds, maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._inject = 0
        self.log = structlog.get_logger("handlers.runner").bind(handler=self.name)

    def start(self, initial_full: bool = True) -> None:
        """Start the loop; by default the first reconcile is a full one (boot is a resync)."""
        if initial_full:
            self._sub.deliver(Resync(source="runner", reason="start"))
        self._task = spawn_task(self._supervise(), name=f"handler:{self.name}")

    async def stop(self) -> None:
        self.stats.state = "stopped"
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._sub.close()

    def mark_dirty(self, full: bool = False) -> None:
        """Ask for a reconcile without an event (e.g. from the control socket)."""
        self._sub.deliver(Resync(source="manual", reason="requested") if full else _Poke())

    def inject_failures(self, count: int) -> None:
        """Make the next ``count`` reconciles raise (debugging and tests of crash isolation)."""
        self._inject += count
        self.mark_dirty()

    async def _supervise(self) -> None:
        """Keep the loop alive even if the runner's own code fails."""
        while True:
            try:
                await self._run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.backoff.next_delay()
                self.log.error("handler loop crashed; restarting", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                self._sub.deliver(Resync(source="runner", reason="handler loop restarted"))

    async def _run(self) -> None:
        while True:
            events = [await self._sub.get()]
            while (more := self._sub.get_nowait()) is not None:
                events.append(more)
            self.stats.events += len(events)
            if not any(wakes(self.reconciler, e) for e in events):
                self.stats.skipped += 1  # config changes of keys it does not read
                continue
            await self._reconcile_once(any(isinstance(e, Resync) for e in events))

    async def _reconcile_once(self, full: bool) -> None:
        self.stats.state = "reconciling"
        started = time.monotonic()
        try:
            if self._inject > 0:
                self._inject -= 1
                raise InjectedFailure("failure injected by request")
            await self.reconciler.reconcile(full)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = self.backoff.next_delay()
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self.stats.state = "backoff"
            self.log.error("reconcile failed; retrying", error=self.stats.last_error, retry_in=delay,
                           traceback="".join(traceback.format_exception(exc)))
            self.bus.publish(HandlerFailed(handler=self.name, error=self.stats.last_error, retry_in=delay))
            await asyncio.sleep(delay)
            self.stats.restarts += 1
            self._sub.deliver(Resync(source="runner", reason="retry after failure"))
            return
        self.stats.reconciles += 1
        self.stats.last_reconcile = time.time()
        self.stats.state = "idle"
        self.log.debug("reconciled", full=full, took=round(time.monotonic() - started, 6))

    def status(self) -> dict[str, object]:
        s = self.stats
        return {
            "name": self.name, "state": s.state, "reconciles": s.reconciles, "events": s.events,
            "skipped": s.skipped,
            "failures": s.failures, "restarts": s.restarts, "last_error": s.last_error,
            "pending": self._sub.pending(), "dropped": self._sub.dropped,
        }


class _Poke(Event):
    kind = "poke"
