"""How the units reconciler reaches each dockerd (``system``, ``user``): a client for its calls and one
for following the units' logs, made when first needed, closed and made again when the daemon restarted
(its epoch changed: a pooled connection to a dead daemon is no use) or stopped answering."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor.backoff import Backoff
from supervisor.tasks import spawn_task
from units.model import Scope
from units.runtime import Runtime


def unanswered_backoff(clock: Callable[[], float] = time.monotonic) -> Backoff:
    """The one Backoff, for what a dockerd did not answer (a unit's action, a listing): 0.5 s, doubling
    to 10 s."""
    return Backoff(first=0.5, initial=0.5, cap=10.0, reset_after=10.0, clock=clock)


@dataclass(frozen=True)
class Daemon:
    """How the reconciler reaches one dockerd. ``up`` says whether to try it now; ``epoch`` changes when
    it restarted (a new client is made then: a pooled connection to a dead daemon is no use)."""

    scope: Scope
    socket: Path
    up: Callable[[], bool]
    epoch: Callable[[], int] = lambda: 0


class Dockerds:
    """The clients of each dockerd. ``drops`` counts the clients dropped (a daemon restarted or stopped
    answering): what was looked up through them (image ids) is looked up again."""

    def __init__(self, daemons: Mapping[Scope, Daemon],
                 runtime_factory: Callable[[Path], Runtime] = Runtime) -> None:
        self.daemons = dict(daemons)
        self.runtime_factory = runtime_factory
        self.drops = 0
        self._runtimes: dict[Scope, Runtime] = {}
        self._log_runtimes: dict[Scope, Runtime] = {}
        self._epochs: dict[Scope, int] = {}
        self._retries: dict[Scope, Backoff] = {}

    def runtime(self, scope: Scope) -> Runtime | None:
        """The client of ``scope``'s dockerd; None when it is not configured or not up."""
        daemon = self.daemons.get(scope)
        if daemon is None or not daemon.up():
            return None
        epoch = daemon.epoch()
        if self._epochs.get(scope) != epoch:
            self.drop(scope)
            self._epochs[scope] = epoch
        runtime = self._runtimes.get(scope)
        if runtime is None:
            runtime = self._runtimes[scope] = self.runtime_factory(daemon.socket)
        return runtime

    def log_runtime(self, name: str) -> Runtime | None:
        """The client that follows logs on dockerd ``name`` (a scope; ``units.logs.UnitLogs`` asks): its
        streams never hold up the calls of the other."""
        scope: Scope = "user" if name == "user" else "system"
        if self.runtime(scope) is None:
            return None
        runtime = self._log_runtimes.get(scope)
        if runtime is None:
            runtime = self._log_runtimes[scope] = self.runtime_factory(self.daemons[scope].socket)
        return runtime

    def epoch(self, scope: Scope) -> int:
        """The epoch of ``scope``'s dockerd when its client was made (0 before)."""
        return self._epochs.get(scope, 0)

    def retry_in(self, scope: Scope) -> float | None:
        """``scope``'s dockerd did not answer a listing: seconds until looking again (the one Backoff:
        0.5 s doubling to 10 s), or None when it is not up (its coming up brings a resync). A dockerd
        its supervisor finds healthy brings no event of its own: without this, units would wait for
        one for good (issue 14: 100 units pending for 600 s)."""
        daemon = self.daemons.get(scope)
        if daemon is None or not daemon.up():
            return None
        backoff = self._retries.setdefault(scope, unanswered_backoff())
        return backoff.next_delay()

    def drop(self, scope: Scope) -> None:
        """Forget the clients of a dockerd that went away (closed in the background)."""
        for table in (self._runtimes, self._log_runtimes):
            runtime = table.pop(scope, None)
            if runtime is not None:
                spawn_task(runtime.close(), name=f"units:close:{scope}")
        self.drops += 1

    async def close(self) -> None:
        for table in (self._runtimes, self._log_runtimes):
            for runtime in table.values():
                await runtime.close()
            table.clear()
