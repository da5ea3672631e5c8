"""Typed, immutable events that travel on the bus.

An event never carries the whole truth: it tells a handler that something may have changed, and the
handler observes current state before acting. ``Resync`` says "you may have missed events: observe
everything"."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every bus event. ``kind`` is a stable name used in `corral events` and logs."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class Resync(Event):
    """Events may have been lost (queue overflow, source reconnect): observe everything again."""

    kind: ClassVar[str] = "resync"
    source: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ProcessExited(Event):
    """A child spawned through supervisor.process ended (``orphan`` for reaped strangers)."""

    kind: ClassVar[str] = "process.exited"
    pid: int
    name: str
    returncode: int | None  # exit code, or None when killed by a signal
    signal: int | None  # terminating signal, or None
    orphan: bool = False


@dataclass(frozen=True, kw_only=True)
class TimerFired(Event):
    kind: ClassVar[str] = "timer"
    name: str


@dataclass(frozen=True, kw_only=True)
class ConfigChanged(Event):
    """A new config was accepted; ``changed`` lists the top-level key paths that differ."""

    kind: ClassVar[str] = "config.changed"
    generation: int
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SignalReceived(Event):
    kind: ClassVar[str] = "signal"
    signum: int
    name: str
    action: str


@dataclass(frozen=True, kw_only=True)
class HandlerFailed(Event):
    kind: ClassVar[str] = "handler.failed"
    handler: str
    error: str
    retry_in: float


@dataclass(frozen=True, kw_only=True)
class Phase(Event):
    """Boot or shutdown progress: phase name and state (started, done, failed)."""

    kind: ClassVar[str] = "phase"
    name: str
    state: str
