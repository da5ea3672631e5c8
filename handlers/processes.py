"""Keeps native (non-container) processes that PID 1 itself runs alive: the system dockerd, udevd.

Desired: the declared specs. Observed: the children that are running. A ``ProcessExited`` for one of
ours marks the handler dirty; the reconcile restarts what is missing, each process with its own
Backoff (the one backoff policy). ``plan`` is pure.

``declare`` replaces every spec; ``want``/``drop`` add or remove one (for several owners sharing the
keeper). Listeners (``listen``) hear ``("started", name, child)`` after each spawn,
``("exited", name, child)`` when the reconcile finds one of ours gone (before it is started again) and
``("stopped", name, child)`` after it stopped one that is no longer wanted or whose spec changed.
A spec with ``log_output`` has its stdout/stderr read line by line into the log (``unit=name``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import Event, ProcessExited, TimerFired
from supervisor.journal.lines import parse_line
from supervisor.process import INHERIT, PIPE, Child, ProcessManager
from supervisor.tasks import spawn_task

log = structlog.get_logger("handlers.processes")


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] | None = None
    log_output: bool = False  # read stdout/stderr into the log instead of inheriting PID 1's


@dataclass(frozen=True)
class Start:
    name: str
    delay: float


@dataclass(frozen=True)
class Stop:
    name: str


Action = Start | Stop
Listener = Callable[[str, str, Child], None]  # (what: started | exited | stopped, name, child)


def plan(desired: Mapping[str, ProcessSpec], running: Mapping[str, ProcessSpec],
         delays: Mapping[str, float]) -> list[Action]:
    """Start what is wanted and not running (after its backoff delay); stop what is no longer wanted
    or whose spec changed (it is started again on the next pass)."""
    actions: list[Action] = []
    for name, spec in running.items():
        if desired.get(name) != spec:
            actions.append(Stop(name))
    for name in desired:
        if name not in running:
            actions.append(Start(name, delays.get(name, 0.0)))
    return actions


@dataclass
class _Tracked:
    spec: ProcessSpec
    child: Child
    backoff: Backoff
    restarts: int = 0
    started: float = field(default_factory=time.monotonic)


class ProcessKeeper:
    """The reconciler. ``desired`` is replaced whole by ``declare``; the runner calls ``reconcile``."""

    name = "processes"
    kinds: tuple[type[Event], ...] = (ProcessExited, TimerFired)
    config_keys: tuple[str, ...] | None = ()  # no config: the specs are given by its users

    def __init__(self, processes: ProcessManager, bus: Bus, grace: float = 10.0) -> None:
        self.processes = processes
        self.bus = bus
        self.grace = grace
        self.desired: dict[str, ProcessSpec] = {}
        self._tracked: dict[str, _Tracked] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._not_before: dict[str, float] = {}
        self.restarts: dict[str, int] = {}
        self._listeners: list[Listener] = []

    def declare(self, specs: Sequence[ProcessSpec]) -> None:
        self.desired = {s.name: s for s in specs}

    def want(self, spec: ProcessSpec) -> None:
        """Add (or replace) one spec; the next reconcile starts it."""
        self.desired = {**self.desired, spec.name: spec}

    def drop(self, name: str) -> None:
        """Remove one spec; the next reconcile stops its process."""
        self.desired = {n: s for n, s in self.desired.items() if n != name}

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def kick(self) -> None:
        """Ask for a reconcile now (after ``want``/``drop``), through the bus like any timer."""
        self._poke()

    def child(self, name: str) -> Child | None:
        tracked = self._tracked.get(name)
        return tracked.child if tracked is not None else None

    def _tell(self, what: str, name: str, child: Child) -> None:
        for listener in list(self._listeners):
            try:
                listener(what, name, child)
            except Exception as exc:  # a listener's bug must not stop the keeper
                log.error("process listener failed", unit=name, what=what, error=repr(exc))

    async def reconcile(self, full: bool) -> None:
        now = time.monotonic()
        for name, tracked in list(self._tracked.items()):
            if not tracked.child.running:
                status = tracked.child.status
                ran = now - tracked.started
                delay = tracked.backoff.next_delay(ran_for=ran)
                self._not_before[name] = now + delay
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("process exited; restarting", unit=name, retry_in=delay, ran_for=round(ran, 3),
                            status=status.describe() if status else "?")
                del self._tracked[name]
                self._tell("exited", name, tracked.child)
        running = {n: t.spec for n, t in self._tracked.items()}
        delays = {n: max(0.0, t - now) for n, t in self._not_before.items()}
        for action in plan(self.desired, running, delays):
            if isinstance(action, Stop):
                tracked = self._tracked.pop(action.name)
                await tracked.child.stop(self.grace)
                self._tell("stopped", action.name, tracked.child)
            elif action.delay > 0:
                asyncio.get_running_loop().call_later(action.delay, self._poke)
            else:
                self._start(self.desired[action.name])

    def _start(self, spec: ProcessSpec) -> None:
        backoff = self._backoffs.setdefault(spec.name, Backoff())
        env = dict(spec.env) if spec.env is not None else None
        try:
            stream = PIPE if spec.log_output else INHERIT
            child = self.processes.spawn(spec.argv, name=spec.name, env=env, stdout=stream, stderr=stream)
        except OSError as exc:
            delay = backoff.next_delay()
            self._not_before[spec.name] = time.monotonic() + delay
            log.error("cannot start process", unit=spec.name, error=str(exc), retry_in=delay)
            asyncio.get_running_loop().call_later(delay, self._poke)
            return
        self._not_before.pop(spec.name, None)
        self._tracked[spec.name] = _Tracked(spec, child, backoff)
        log.info("process started", unit=spec.name, pid=child.pid)
        for reader, name in ((child.stdout, "stdout"), (child.stderr, "stderr")):
            if reader is not None:  # never cancelled: they end at EOF, when the last writer is gone
                spawn_task(_pump(reader, spec.name, name), name=f"processes:{spec.name}:{name}")
        self._tell("started", spec.name, child)

    def _poke(self) -> None:
        """A restart is due: wake this handler through the bus like any other timer."""
        self.bus.publish(TimerFired(name=f"{self.name}.restart"))

    def status(self) -> dict[str, object]:
        """Every running process, and every wanted one waiting to be started again (``pid`` None)."""
        now = time.monotonic()
        result: dict[str, object] = {
            n: {"pid": t.child.pid, "restarts": self.restarts.get(n, 0)} for n, t in self._tracked.items()
        }
        for name in self.desired:
            retry = self._not_before.get(name)
            if name not in result and (retry is not None or self.restarts.get(name)):
                result[name] = {"pid": None, "restarts": self.restarts.get(name, 0),
                                "retry_in": round(max(0.0, retry - now), 3) if retry is not None else None}
        return result


async def _pump(reader: asyncio.StreamReader, unit: str, stream: str) -> None:
    """A child's output, line by line, into the log."""
    while line := await reader.readline():
        text = line.decode(errors="replace").rstrip()
        if text:
            parsed = parse_line(text)
            fields = {k: v for k, v in parsed.fields.items() if k not in ("unit", "stream")}
            getattr(log, parsed.level)(parsed.message, unit=unit, stream=stream, **fields)
