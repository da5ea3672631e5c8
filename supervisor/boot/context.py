"""What a boot phase is given: a small typed context, not the whole ``Supervisor``.

A phase's wiring (``supervisor/boot/*.py``) builds its domain's parts from the bus, the process module,
the config in force and the paths; registers each reconciler with ``add_handler`` (the one way: a runner
with the shared backoff, tuned by ``corral.handlers``) and each thing to stop at shutdown with
``stops.add``. It returns what it built; the ``Supervisor`` keeps that for status and control commands.
Nothing here reaches into the supervisor's private state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from handlers.runner import HandlerRunner, Reconciler
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.domain_checks import Domains
from supervisor.journal import Journal
from supervisor.paths import Paths
from supervisor.process import ProcessManager

log = structlog.get_logger("supervisor")


@dataclass(frozen=True)
class Stopper:
    name: str
    stop: Callable[[], Awaitable[None]]


@dataclass
class StopRegistry:
    """What shutdown stops, in the reverse order of registration (a later part may depend on an earlier
    one: the units are stopped before the system dockerd they run in)."""

    stoppers: list[Stopper] = field(default_factory=list)

    def add(self, name: str, stop: Callable[[], Awaitable[None]]) -> None:
        self.stoppers.append(Stopper(name, stop))

    async def stop_all(self) -> None:
        for stopper in reversed(self.stoppers):
            try:
                await stopper.stop()
            except Exception as exc:
                log.error("stop failed", what=stopper.name, error=str(exc))


def handler_backoff(settings: Mapping[str, Any]) -> Backoff:
    """The shared backoff of reconcilers, tuned by ``corral.handlers`` (``backoff_initial``, ``_cap``)."""
    return Backoff(initial=float(settings.get("backoff_initial", 0.1)),
                   cap=float(settings.get("backoff_cap", 30.0)))


@dataclass
class Runners:
    """Every reconciler's runner, by name, in start order (shutdown stops them in reverse)."""

    bus: Bus
    settings: Callable[[], Mapping[str, Any]]  # corral.handlers of the config in force
    by_name: dict[str, HandlerRunner] = field(default_factory=dict)

    def add(self, reconciler: Reconciler, *, initial_full: bool = True, queue_size: int = 1024
            ) -> HandlerRunner:
        """A runner for ``reconciler``, registered and started (``initial_full``: its first reconcile is
        a full one). A reconciler already registered under that name keeps its runner."""
        existing = self.by_name.get(reconciler.name)
        if existing is not None:
            return existing
        runner = HandlerRunner(self.bus, reconciler, handler_backoff(self.settings()), queue_size=queue_size)
        self.by_name[runner.name] = runner
        runner.start(initial_full=initial_full)
        return runner

    def status(self) -> list[dict[str, object]]:
        return [r.status() for r in self.by_name.values()]

    async def stop_all(self) -> None:
        for runner in reversed(list(self.by_name.values())):
            await runner.stop()


@dataclass(frozen=True)
class BootContext:
    bus: Bus
    processes: ProcessManager
    journal: Journal
    paths: Paths
    sandbox: bool
    config: Callable[[], Mapping[str, Any]]  # the config in force (merged, validated)
    generation: Callable[[], int]  # its generation: changes with every applied change
    runners: Runners
    stops: StopRegistry
    reload: Callable[[], Coroutine[Any, Any, Any]]  # re-read the config (units' io.corral.reloadconfig)
    domains: Domains  # each domain's typed config of the config in force, parsed once per generation
    degrade: Callable[[str, str], None]  # mark the boot degraded: (source, reason)
    clear: Callable[[str], None]  # clear one source's degradation

    def setting(self, key: str, default: Any) -> Any:
        """A value under the ``corral:`` key of the config in force."""
        return (self.config().get("corral") or {}).get(key, default)

    def add_handler(self, reconciler: Reconciler, *, initial_full: bool = True,
                    queue_size: int = 1024) -> HandlerRunner:
        return self.runners.add(reconciler, initial_full=initial_full, queue_size=queue_size)

    @property
    def grace(self) -> float:
        """``corral.shutdown_grace``: seconds a child or unit gets after SIGTERM at shutdown."""
        return float(self.setting("shutdown_grace", 10))
