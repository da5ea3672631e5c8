"""The control server's connection limits: how many at once, how long one may sit idle, and which
connection makes room for a new one at the limit.

``ConnectionTable.admit`` is the pure decision (tested without sockets): below the limit a new connection
is admitted; at the limit it takes the place of the connection idle longest, when that one has been idle
(waiting for a request, not running one or a stream) for ``evict_idle`` seconds or more; otherwise it is
refused. A client sends its request as soon as it is connected, so a fresh connection is never the one
evicted, and idle connections can never lock out ``corral status``. ``Limits.from_environment`` reads
the test knobs ``CORRAL_CONTROL_MAX_CONNECTIONS`` and ``CORRAL_CONTROL_IDLE_TIMEOUT``."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from supervisor.control import protocol

log = structlog.get_logger("supervisor.control")

MAX_CONNECTIONS_ENV = "CORRAL_CONTROL_MAX_CONNECTIONS"
IDLE_TIMEOUT_ENV = "CORRAL_CONTROL_IDLE_TIMEOUT"


@dataclass(frozen=True)
class Limits:
    max_connections: int = protocol.MAX_CONNECTIONS
    idle_timeout: float = protocol.IDLE_TIMEOUT  # seconds to send a whole request, or to read a reply
    evict_idle: float = protocol.EVICT_IDLE  # seconds idle after which a connection may be evicted

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, or what ``CORRAL_CONTROL_MAX_CONNECTIONS`` / ``CORRAL_CONTROL_IDLE_TIMEOUT`` say
        (tests set them on the sandbox's PID 1); a value that is not a positive number is logged and
        the default kept."""
        env = os.environ if environ is None else environ
        defaults = cls()
        connections = _positive(env, MAX_CONNECTIONS_ENV, int, defaults.max_connections)
        idle = _positive(env, IDLE_TIMEOUT_ENV, float, defaults.idle_timeout)
        return cls(int(connections), float(idle), min(defaults.evict_idle, float(idle)))


def _positive(env: Mapping[str, str], name: str, kind: Callable[[str], float], default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if not (math.isfinite(value) and value > 0):
        log.warning("ignoring a bad control limit", variable=name, value=text[:40], default=default)
        return default
    return value


@dataclass(eq=False)
class Connection:
    """One open connection as the table sees it."""

    number: int
    accepted: float
    idle_since: float | None = None  # waiting for a request since (None: accepted, or busy)
    evict: Callable[[], None] | None = field(default=None, repr=False)  # closes it, telling the client


@dataclass(frozen=True)
class Admission:
    """``admit``'s decision: ``connection`` None means refused; ``evicted`` was closed to make room."""

    connection: Connection | None
    evicted: Connection | None = None


class ConnectionTable:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._open: dict[int, Connection] = {}
        self._numbers = 0
        self.admitted = self.evicted = self.refused = 0

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, now: float) -> Admission:
        """A new connection: admitted, admitted in place of an idle one (removed from the table), or
        refused (None)."""
        evicted = None
        if len(self._open) >= self.limits.max_connections:
            evicted = self.idle_longest(now)
            if evicted is None:
                self.refused += 1
                return Admission(None)
            self.remove(evicted)
            self.evicted += 1
        self._numbers += 1
        connection = Connection(self._numbers, now)
        self._open[connection.number] = connection
        self.admitted += 1
        return Admission(connection, evicted)

    def idle_longest(self, now: float) -> Connection | None:
        """The connection idle longest, if idle for ``evict_idle`` seconds or more."""
        idle = [c for c in self._open.values() if c.idle_since is not None]
        if not idle:
            return None
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        assert oldest.idle_since is not None
        return oldest if now - oldest.idle_since >= self.limits.evict_idle else None

    def remove(self, connection: Connection) -> None:
        self._open.pop(connection.number, None)

    def stats(self) -> dict[str, int]:
        return {"open": len(self._open), "limit": self.limits.max_connections, "admitted": self.admitted,
                "evicted": self.evicted, "refused": self.refused}
