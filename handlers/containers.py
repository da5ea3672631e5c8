"""The units reconciler: keeps the containers of both dockerds what the config's units say they should be.

A ``Reconciler`` for ``handlers.runner.HandlerRunner``. Every event (a container's ``die``, a config
change, the system dockerd coming back, an image loaded, its own timer) only marks it dirty; a reconcile
then:

1. reloads the units when the config generation changed (``units.loader.load_units``; a unit whose
   definition changed gets a fresh ``UnitPolicy``, so it is recreated and runs again);
2. observes: one ``GET /containers/json?all=1&filters=label=io.corral.unit`` per dockerd, nothing
   inspected (the listing has the state, the labels and, in ``Status``, the exit code: all that
   ``units.plan`` needs); image ids come from a cache refreshed on image events, on a resync and every
   ``IMAGE_REFRESH`` seconds;
3. decides: ``units.plan.sync_policies`` (exits reach the restart policies) then ``units.plan.plan``;
4. acts: removals and stops (and recreations, which stop a container) run in the background, so a
   unit's grace period never holds up another unit's restart; creates and starts of one wave run in
   parallel and are awaited; ``Wait.until`` becomes a ``loop.call_later`` that publishes
   ``TimerFired(name="containers")``. After a wave it looks again at once, for the dependents.

Units that require mounts (``io.corral.requires-mount``): a ``MountChanged`` from the storage handler
only marks the reconciler dirty; each reconcile then observes the required paths (the mount table, and
the storage handler's own view of its rules' paths: ``storage_rules``), holds or releases the units'
policies (``units.mounts.sync_mounts``) and lets ``units.plan.plan`` stop, start or restart them. The
journal gets one line per path naming its units (``mount gone; stopping the units that require it``,
``mount is here; starting the units that require it``...) and one line per unit (with ``unit=``).

``not_up`` says which units are not up yet (running for less than ``UP_AFTER`` seconds, pending,
restarting, crash-looping, failed); ``wait_all_up``, looked at again after each reconcile, is what the
supervisor's ``corral <version> ready`` line waits for.

Restart latency is the point: a ``die`` reaches the bus ~20 ms after the exit, the reconcile costs one
listing call, the first restart is immediate, the start ~60 ms. Docker's own policy waits 100 ms before
its first restart (bench/restart_latency.py compares the two).

Containers carry ``io.corral.unit`` and ``io.corral.config-hash``; one with the unit label but no hash was
not made by corral and is treated as someone else's (never removed). In ``corral sandbox`` the units'
bind-mount sources below ``/var``, ``/run``, ``/home``, ``/root``, ``/srv``, ``/opt``, ``/mnt``,
``/media`` and ``/tmp`` are taken from under the sandbox's directory (``localize``): the sandbox's
dockerd shares the host's filesystem, and a unit must not write to the host's ``/var/lib``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import structlog

from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event, TimerFired
from supervisor.events.docker import ContainerEvent, DockerdState
from supervisor.events.udev import MountChanged
from supervisor.mountinfo import read_mountinfo
from supervisor.tasks import spawn_task
from units.graph import UnitGraph
from units.loader import load_units
from units.logs import UnitLogs
from units.model import LABEL_HASH, LABEL_UNIT, SCOPES, USER_DOCKERD_UNIT, Scope, Unit, Volume
from units.mounts import (
    MountNews,
    MountState,
    RuleMount,
    mount_ids,
    observe_mounts,
    required_paths,
    sync_mounts,
    units_requiring,
)
from units.plan import (
    ACTIVE,
    Action,
    Create,
    ObservedContainer,
    Recreate,
    Remove,
    Restart,
    Start,
    Stop,
    Wait,
    plan,
    sync_policies,
)
from units.policy import (
    CRASH_LOOPING,
    EXITED,
    FAILED,
    PENDING,
    RESET_AFTER,
    RUNNING,
    STOPPED,
    WAITING,
    Decision,
    UnitPolicy,
    remembered_stops,
)
from units.runtime import DockerAPIError, DockerUnavailable, LineSink, NotFound, Runtime
from units.spec import create_request
from units.stops import read_stops, write_stops

log = structlog.get_logger("units")

NAME = "containers"
IMAGE_REFRESH = 30.0  # seconds: image ids are looked up again at least this often (on any reconcile)
FIRST_WAVE_TIMEOUT = 60.0  # seconds the `units` boot phase waits for the first wave
IMAGE_EVENT_RETRY = 5.0  # seconds before watching a dockerd's image events again after a failure
UP_AFTER = 1.0  # seconds a unit must have been running to count as up (one that dies at once is not)
UP_RECHECK = 5.0  # seconds `wait_all_up` waits at most before it looks again without a reconcile
CREATED = "created"  # a createonly unit's state once its container exists
REMOVING = "removing"  # a unit no longer configured whose container is still there
# States that count as up whatever the time: a finished oneshot, a unit the user stopped, one that waits
# for a missing mount (not a failure), a createonly unit whose container exists.
UP_STATES = frozenset({EXITED, STOPPED, WAITING, CREATED})
# In the sandbox, bind sources below these are taken from under its directory (see ``localize``).
SANDBOX_ROOTS = ("/var", "/run", "/home", "/root", "/srv", "/opt", "/mnt", "/media", "/tmp")
_EXIT = re.compile(r"\((-?\d+)\)")


@dataclass(frozen=True, kw_only=True)
class ImagesChanged(Event):
    """An image of ``daemon`` was loaded, tagged, untagged or deleted: unit image ids may differ now."""

    kind: ClassVar[str] = "docker.image"
    daemon: str
    action: str
    ref: str = ""


@dataclass(frozen=True)
class Daemon:
    """How the reconciler reaches one dockerd. ``up`` says whether to try it now; ``epoch`` changes when
    it restarted (a new client is made then: a pooled connection to a dead daemon is no use)."""

    scope: Scope
    socket: Path
    up: Callable[[], bool]
    epoch: Callable[[], int] = lambda: 0


# ---- pure helpers ----------------------------------------------------------------------------------
def exit_code_of(status: str) -> int | None:
    """The exit code in a listing's ``Status`` ("Exited (137) 2 seconds ago"), if it shows one."""
    if not status.startswith(("Exited", "Restarting")):
        return None
    found = _EXIT.search(status)
    return int(found.group(1)) if found else None


def observed_from_summary(raw: Mapping[str, Any], scope: Scope) -> ObservedContainer:
    """One entry of ``GET /containers/json`` as plan's input. No times (the policy's own clock stands in
    for the run time). A container with the unit label but no config hash was not created by corral:
    its unit label is dropped, so it is never touched (only reported when it holds a unit's name)."""
    seen = ObservedContainer.from_list(raw, scope)
    labels = dict(seen.labels)
    if LABEL_UNIT in labels and LABEL_HASH not in labels:
        labels.pop(LABEL_UNIT)
    return replace(seen, labels=labels, exit_code=exit_code_of(str(raw.get("Status") or "")))


def localize(unit: Unit, prefix: Path | None) -> Unit:
    """The unit as the sandbox under ``prefix`` runs it: bind sources below ``SANDBOX_ROOTS`` moved under
    the prefix (``/var/run`` is ``/run``), and every required mount's path (as the storage handler
    roots its rules' paths there). None (a real host): the unit unchanged."""
    if prefix is None or not (unit.volumes or unit.requires_mounts):
        return unit

    def moved(source: str | None) -> str | None:
        if source is None or not source.startswith("/"):
            return source
        path = "/run" + source[len("/var/run"):] if source == "/var/run" or source.startswith("/var/run/") \
            else source
        if any(path == root or path.startswith(root + "/") for root in SANDBOX_ROOTS):
            return str(prefix / path.lstrip("/"))
        return source

    volumes = tuple(Volume(v.target, moved(v.source), v.options) for v in unit.volumes)
    requires = tuple(sorted(str(prefix / p.lstrip("/")) for p in unit.requires_mounts))
    return replace(unit, volumes=volumes, requires_mounts=requires)


def _current(containers: Sequence[ObservedContainer]) -> ObservedContainer:
    return next((c for c in containers if c.state in ACTIVE), containers[0])


def current_containers(units: Mapping[str, Unit], observed: Iterable[ObservedContainer]
                       ) -> dict[str, ObservedContainer]:
    """Each unit's container as plan keeps it (the running one, else the first)."""
    mine: dict[str, list[ObservedContainer]] = {}
    for c in observed:
        name = c.unit
        if name is not None and name in units and units[name].scope == c.scope:
            mine.setdefault(name, []).append(c)
    return {name: _current(cs) for name, cs in mine.items()}


def storage_rule_mounts(storage: Any) -> dict[str, RuleMount]:
    """The storage handler's view of its rules' paths (``handlers.storage.StorageHandler``: its
    ``rules`` and the mounts it made, ``known``), for ``units.mounts.observe_mounts``. None: {}."""
    if storage is None:
        return {}
    known: Mapping[str, Any] = getattr(storage, "known", {}) or {}
    view: dict[str, RuleMount] = {}
    for rule in getattr(storage, "rules", ()) or ():
        k = known.get(rule.path)
        view[rule.path] = RuleMount(rule.path, k is not None, getattr(rule, "on_remove", "stop"),
                                    getattr(k, "devname", None), getattr(k, "diskseq", None))
    for path, k in known.items():  # mounted by a rule that is gone (unmounted at its next reconcile)
        view.setdefault(path, RuleMount(path, True, getattr(k, "on_remove", "stop"),
                                        getattr(k, "devname", None), getattr(k, "diskseq", None)))
    return view


def not_up(statuses: Iterable[Mapping[str, Any]], stable: float = UP_AFTER) -> dict[str, str]:
    """The units that are not up, name -> state, from ``ContainersHandler.unit_status`` entries. Up:
    running for ``stable`` seconds or more, or in ``UP_STATES``. Not up: pending, restarting,
    crash-looping, failed, and running for less than ``stable`` seconds (it may be about to die)."""
    missing: dict[str, str] = {}
    for status in statuses:
        state = str(status["state"])
        uptime = status.get("uptime")
        if state in UP_STATES or (state == RUNNING and uptime is not None and uptime >= stable):
            continue
        missing[str(status["name"])] = state
    return missing


def up_in(statuses: Iterable[Mapping[str, Any]], stable: float = UP_AFTER) -> float | None:
    """Seconds until time alone may bring a unit up (no event, no reconcile): a running unit reaching
    ``stable`` seconds, a crash-looping one that runs reaching ``RESET_AFTER`` (it is running then).
    None: nothing changes by time alone."""
    due: list[float] = []
    for status in statuses:
        uptime = status.get("uptime")
        if uptime is None:
            continue
        if status["state"] == RUNNING and uptime < stable:
            due.append(stable - uptime)
        elif status["state"] == CRASH_LOOPING:
            due.append(max(0.0, max(RESET_AFTER, stable) - uptime))
    return min(due) if due else None


def _key(action: Action) -> str:
    return f"remove:{action.container_id}" if isinstance(action, Remove) else action.unit


# ---- the reconciler ----------------------------------------------------------------------------------
class ContainersHandler:
    name = NAME
    kinds: tuple[type[Event], ...] = (ContainerEvent, ConfigChanged, DockerdState, TimerFired, ImagesChanged,
                                      MountChanged)
    config_keys: tuple[str, ...] | None = ("corral.services", "corral.services_include", "corral.environment")

    def __init__(
        self,
        bus: Bus,
        daemons: Mapping[Scope, Daemon],
        *,
        config: Callable[[], Mapping[str, Any]],
        generation: Callable[[], int],
        unit_dirs: Sequence[Path] = (),
        journal: LineSink | None = None,
        stops_file: Path | None = None,
        grace: Callable[[], float] = lambda: 10.0,
        prefix: Path | None = None,
        on_reload: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        runtime_factory: Callable[[Path], Runtime] = Runtime,
        follow_events: Callable[[Scope], None] | None = None,
        storage_rules: Callable[[], Mapping[str, RuleMount]] = dict,
        mountinfo: Path = Path("/proc/self/mountinfo"),
    ) -> None:
        self.bus = bus
        self.daemons = dict(daemons)
        self.config = config
        self.generation = generation
        self.unit_dirs = list(unit_dirs)
        self.stops_file = stops_file
        self.grace = grace
        self.prefix = prefix
        self.on_reload = on_reload
        self.clock = clock
        self.wall = wall
        self.runtime_factory = runtime_factory
        self.follow_events = follow_events  # start an events source for a dockerd (the user's), once
        self.storage_rules = storage_rules  # the storage handler's rules' paths (see storage_rule_mounts)
        self.mountinfo = mountinfo
        self._mounts: dict[str, MountState] = {}  # the paths units require, as last observed
        self.units: dict[str, Unit] = {}
        self.graph: UnitGraph | None = None
        self.policies: dict[str, UnitPolicy] = {}
        self.load_errors: list[str] = []
        self.reconciles = 0
        self.last_seconds: float | None = None
        self._generation: int | None = None
        self._remembered: set[str] | None = None
        self._runtimes: dict[Scope, Runtime] = {}
        self._log_runtimes: dict[Scope, Runtime] = {}
        self._epochs: dict[Scope, int] = {}
        self._image_ids: dict[str, str] = {}
        self._images_stale = True
        self._images_at = float("-inf")
        self._image_watch: dict[Scope, tuple[int, asyncio.Task[None]]] = {}
        self._image_watch_failed: dict[Scope, float] = {}
        self._current: dict[str, ObservedContainer] = {}
        # Containers of units no longer configured, until their removal is seen done: `service list`
        # shows them as "removing" rather than as gone while they still exist.
        self._leaving: dict[str, ObservedContainer] = {}
        self._reachable: set[Scope] = set()
        self._waiting: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._missing_image: set[str] = set()
        self._create_failed: set[str] = set()  # units whose last create failed (retried when due)
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at: float | None = None
        self._lock = asyncio.Lock()
        self._first_wave = asyncio.Event()
        self._reconciled = asyncio.Event()  # set after each reconcile: `wait_all_up` looks again
        self._stopping = False
        self._died: dict[str, int | None] = {}  # container id -> exit code, from `die` events
        self._tap: asyncio.Task[None] | None = None
        self.logs = UnitLogs(journal, self._log_runtime, wall=wall) if journal is not None else None

    # ---- events ------------------------------------------------------------------------------------
    def start_tap(self) -> None:
        """Follow ``die`` events on a subscription of the handler's own. dockerd publishes ``die`` while
        it is still processing the exit: a listing taken at once (what the reconcile the event triggers
        does) can show the container running for a few more milliseconds. The tap remembers which
        containers died, so that the reconcile treats them as exited (and a start queues behind dockerd's
        processing instead of waiting for another event)."""
        if self._tap is not None:
            return
        sub = self.bus.subscribe(f"handler:{NAME}:exits", ContainerEvent, maxsize=4096)

        async def tap() -> None:
            try:
                while True:
                    self.note(await sub.get())
            finally:
                sub.close()

        self._tap = spawn_task(tap(), name=f"handler:{NAME}:exits")

    def note(self, event: Event) -> None:
        if not isinstance(event, ContainerEvent):
            return  # a resync (overflow): the runner's reconcile observes everything anyway
        if event.action == "die":
            self._died[event.container_id] = event.exit_code
            self._fast_restart(event)
        elif event.action in ("start", "destroy"):
            self._died.pop(event.container_id, None)

    def _fast_restart(self, event: ContainerEvent) -> None:
        """The restart path, without waiting for a reconcile: a unit's container that corral started
        died, and its policy says restart now (the first restart is immediate): the start call goes out
        at once and queues behind dockerd's own handling of the exit. Anything else (a delay, giving
        up, a oneshot finishing, a unit being changed) is left to the reconcile the event triggers."""
        name = event.unit
        if self._stopping or name is None or event.daemon not in SCOPES:
            return
        scope: Scope = "user" if event.daemon == "user" else "system"
        unit, policy, current = self.units.get(name), self.policies.get(name), self._current.get(name)
        busy = self._busy.get(name)
        if (unit is None or policy is None or current is None or current.id != event.container_id
                or unit.scope != scope or unit.oneshot or unit.createonly or policy.stopped
                or policy.started_at is None or (busy is not None and not busy.done())):
            return
        if unit.restart.name == "no" or (unit.restart.name == "on-failure" and event.exit_code == 0):
            return
        now = self.clock()
        decision = policy.on_exit(event.exit_code, max(0.0, now - policy.started_at), now)
        self._report_exit(name, decision)
        if decision.restart and decision.delay == 0 and policy.start_due(now):
            self._busy[name] = spawn_task(self._background(name, [Start(name, scope)]), name=f"units:{name}")

    def _with_exits(self, observed: list[ObservedContainer]) -> list[ObservedContainer]:
        result = []
        for c in observed:
            if c.id in self._died:
                if c.state in ACTIVE:
                    c = replace(c, state="exited", exit_code=self._died[c.id])
                else:
                    del self._died[c.id]  # the listing has caught up
            result.append(c)
        return result

    # ---- the runner's entry point ---------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        if self._stopping:
            return
        async with self._lock:
            started = time.monotonic()
            try:
                await self._reconcile(full)
            finally:
                self._reconciled.set()
            self.reconciles += 1
            self.last_seconds = round(time.monotonic() - started, 6)

    async def _reconcile(self, full: bool) -> None:
        self._load()
        if full:
            self._images_stale = True
        # A unit whose action was in flight at any moment of the listing is left alone this time: a start
        # that ends while the listing is on its way would otherwise meet a listing from before it (the
        # container still `created`) and be taken for an exit. Its task's end asks for another reconcile.
        in_flight = self._in_flight()
        observed = self._with_exits(await self._observe())
        if "system" not in self._reachable:
            return  # nothing to do until it answers: its `up` comes with a resync
        self._mounts = await self._observe_mounts()
        desired = {n: u for n, u in self.units.items() if u.scope in self._reachable}
        graph = self._graph_for(desired)
        await self._refresh_images(desired)
        now = self.clock()
        self._current = current_containers(desired, observed)
        self._leaving = {c.unit: c for c in observed
                         if c.unit is not None and c.unit not in self.units and c.scope in self._reachable}
        busy = in_flight | self._in_flight()
        idle = {n: u for n, u in desired.items() if n not in busy}
        for name, decision in sync_policies(idle, observed, self.policies, now).items():
            self._report_exit(name, decision)
        news = sync_mounts(idle, self.policies, self._mounts)
        actions = self._due(plan(desired, observed, self.policies, image_ids=self._image_ids, now=now,
                                 graph=graph, mounts=self._mounts), now)
        self._log_mounts(news, actions, busy)
        self._waiting = {a.unit: a.reason for a in actions if isinstance(a, Wait)}
        self._follow_logs(busy)
        self._check_first_wave()
        self._execute([a for a in actions if not isinstance(a, Wait)], busy)
        dues = [a.until for a in actions if isinstance(a, Wait) and a.until is not None]
        self._schedule_wake(min(dues) if dues else None)
        self._check_first_wave()

    # ---- required mounts ----------------------------------------------------------------------------
    async def _observe_mounts(self) -> dict[str, MountState]:
        """The state of every path a unit requires (nothing read when no unit requires one)."""
        paths = required_paths(self.units.values())
        if not paths:
            return {}
        try:
            table = await asyncio.to_thread(read_mountinfo, self.mountinfo)
        except OSError as exc:
            log.error("mount table not read; units that require mounts keep their state",
                      file=str(self.mountinfo), error=str(exc))
            return self._mounts
        return observe_mounts(paths, self.storage_rules(), table)

    def _log_mounts(self, news: Mapping[str, MountNews], actions: Sequence[Action], busy: set[str]) -> None:
        """One line per path whose units changed (naming them), one per unit (with ``unit=``)."""
        stopping = {a.unit for a in actions if isinstance(a, Stop) and a.mounts}
        for path, changed in sorted(news.items()):
            state = self._mounts.get(path) or MountState(path, False)
            if changed.held:
                stopped = [n for n in changed.held if n in stopping]
                running = [n for n in changed.held if n not in stopping and n in self._current
                           and self._current[n].state in ACTIVE]
                waiting = [n for n in changed.held if n not in stopped and n not in running]
                if stopped:
                    log.warning("mount gone; stopping the units that require it", path=path, units=stopped,
                                on_remove=state.on_remove)
                if running:
                    log.warning("mount gone; the units that require it keep running", path=path,
                                units=running, on_remove=state.on_remove)
                if waiting:
                    log.info("units wait for their mount", path=path, units=waiting)
                for name in changed.held:
                    log.info("unit waits for its mount", unit=name, path=path,
                             running=name in running, stopping=name in stopped)
            if changed.released:
                log.info("mount is here; starting the units that require it", path=path,
                         units=changed.released)
                for name in changed.released:
                    log.info("unit's mounts are here; it may start", unit=name, path=path)
        restarts: dict[str, list[str]] = {}
        for action in actions:
            if isinstance(action, Restart) and action.unit not in busy:
                for path in action.mounts:
                    restarts.setdefault(path, []).append(action.unit)
        for path, names in sorted(restarts.items()):
            log.info("mount replaced; restarting the units that ran on the old one", path=path, units=names)

    def dependents(self, path: str) -> list[str]:
        """The units that require ``path`` (``io.corral.requires-mount``)."""
        return units_requiring(self.units, path)

    # ---- desired -----------------------------------------------------------------------------------
    def _load(self) -> None:
        generation = self.generation()
        if generation == self._generation:
            return
        self._generation = generation
        loaded = load_units(self.config(), unit_dirs=self.unit_dirs, source="config")
        if loaded.errors:  # the config store runs the same check, so this is unexpected: keep the old set
            self.load_errors = [str(e) for e in loaded.errors]
            for error in self.load_errors:
                log.error("units not loaded; keeping the units in force", error=error)
            return
        self.load_errors = []
        first = self._remembered is None
        if self._remembered is None:
            self._remembered = read_stops(self.stops_file) if self.stops_file is not None else set()
        units = {name: localize(unit, self.prefix) for name, unit in loaded.units.items()}
        policies: dict[str, UnitPolicy] = {}
        for name, unit in units.items():
            old, policy = self.units.get(name), self.policies.get(name)
            if policy is None:
                stopped = name in self._remembered and unit.restart.name == "unless-stopped"
                policy = UnitPolicy(unit.restart, clock=self.clock, stopped=stopped)
                if stopped:
                    log.info("unit stays stopped (stopped by the user before)", unit=name)
                if not first:
                    log.info("unit added", unit=name, image=unit.image)
            elif old != unit:
                if old is not None and replace(old, restart=unit.restart) == unit:
                    policy.restart = unit.restart  # only the policy changed: the container stays
                    log.info("unit restart policy changed", unit=name, restart=str(unit.restart))
                else:
                    policy = UnitPolicy(unit.restart, clock=self.clock, stopped=policy.stopped)
                    self._errors.pop(name, None)
                    self._create_failed.discard(name)
                    log.info("unit changed; recreating it", unit=name)
            policies[name] = policy
        for name in set(self.units) - set(units):
            log.info("unit removed", unit=name)
            self._errors.pop(name, None)
            self._missing_image.discard(name)
            self._create_failed.discard(name)
        self.units, self.policies = units, policies
        self.graph = UnitGraph.of(units)
        if self.logs is not None:
            self.logs.keep_only(set(units))
        self._save_stops()

    def _graph_for(self, desired: Mapping[str, Unit]) -> UnitGraph:
        graph = self.graph or UnitGraph.of(self.units)
        if len(desired) == len(graph.deps):
            return graph
        # A dockerd is away (the user's): order what can run among itself.
        deps = {n: frozenset(d for d in graph.deps[n] if d in desired) for n in desired}
        return UnitGraph(dict(desired), deps)

    # ---- observed ----------------------------------------------------------------------------------
    def _runtime(self, scope: Scope) -> Runtime | None:
        daemon = self.daemons.get(scope)
        if daemon is None or not daemon.up():
            return None
        epoch = daemon.epoch()
        if self._epochs.get(scope) != epoch:
            self._drop(scope)
            self._epochs[scope] = epoch
        runtime = self._runtimes.get(scope)
        if runtime is None:
            runtime = self._runtimes[scope] = self.runtime_factory(daemon.socket)
        return runtime

    def _log_runtime(self, name: str) -> Runtime | None:
        scope: Scope = "user" if name == "user" else "system"
        if self._runtime(scope) is None:
            return None
        runtime = self._log_runtimes.get(scope)
        if runtime is None:
            runtime = self._log_runtimes[scope] = self.runtime_factory(self.daemons[scope].socket)
        return runtime

    def _drop(self, scope: Scope) -> None:
        """Forget the clients of a dockerd that went away (closed in the background)."""
        for table in (self._runtimes, self._log_runtimes):
            runtime = table.pop(scope, None)
            if runtime is not None:
                spawn_task(runtime.close(), name=f"units:close:{scope}")
        self._images_stale = True

    def _wants(self, scope: Scope) -> bool:
        """Whether to watch ``scope``'s dockerd: always the system one; the user's when units run there,
        or when the unit that *is* the user dockerd is configured (its images are preloaded)."""
        if scope == "system":
            return True
        return any(u.scope == scope for u in self.units.values()) or any(
            c.scope == scope for c in self._current.values()) or USER_DOCKERD_UNIT in self.units

    async def _observe(self) -> list[ObservedContainer]:
        observed: list[ObservedContainer] = []
        reachable: set[Scope] = set()
        for scope in SCOPES:
            if not self._wants(scope):
                continue
            if scope != "system" and self.follow_events is not None:
                # From now on, not from when it first answers: its events source retries by itself, so
                # the daemon's coming up is seen even when no reconcile happens to look at that moment.
                self.follow_events(scope)
            runtime = self._runtime(scope)
            if runtime is None:
                continue
            try:
                listed = await runtime.list_summaries()
            except DockerUnavailable as exc:
                log.debug("dockerd not answering; units wait for it", scope=scope, error=str(exc))
                self._drop(scope)
                continue
            observed += [observed_from_summary(raw, scope) for raw in listed]
            reachable.add(scope)
            self._watch_images(scope, runtime)
        self._reachable = reachable
        return observed

    async def _refresh_images(self, desired: Mapping[str, Unit]) -> None:
        """Image ids of the units' images: all again when stale, else only the ones not known yet."""
        now = self.clock()
        stale = self._images_stale or now - self._images_at >= IMAGE_REFRESH
        wanted: dict[str, Scope] = {}
        for unit in desired.values():
            if wanted.get(unit.image) != "system":
                wanted[unit.image] = unit.scope
        todo = [(ref, scope) for ref, scope in wanted.items() if stale or ref not in self._image_ids]
        if stale:
            self._images_stale = False
            self._images_at = now
        if not todo:
            return
        results = await asyncio.gather(*(self._image_id(ref, scope) for ref, scope in todo))
        for (ref, _scope), image_id in zip(todo, results, strict=True):
            if image_id is None:
                self._image_ids.pop(ref, None)
            else:
                self._image_ids[ref] = image_id
        for name in sorted(self._missing_image):
            waiting = desired.get(name)
            policy = self.policies.get(name)
            if waiting is None or policy is None or waiting.image not in self._image_ids:
                continue
            self._missing_image.discard(name)
            if policy.next_start is not None and policy.next_start > now:
                policy.next_start = now  # the image it waited for is here: retry now, not at backoff's time
                log.info("image is here; starting the unit", unit=name, image=waiting.image)

    async def _image_id(self, ref: str, scope: Scope) -> str | None:
        runtime = self._runtime(scope)
        if runtime is None:
            return None
        try:
            found = await runtime.image_inspect(ref)
        except (DockerUnavailable, DockerAPIError) as exc:
            log.debug("image not inspected", image=ref, error=str(exc))
            return self._image_ids.get(ref)
        return None if found is None else str(found.get("Id") or "") or None

    def _watch_images(self, scope: Scope, runtime: Runtime) -> None:
        """Follow the dockerd's image events (one stream per dockerd start): a loaded image may be what a
        unit waits for, and a re-tagged one recreates its units."""
        epoch = self._epochs.get(scope, 0)
        current = self._image_watch.get(scope)
        if current is not None and current[0] == epoch and not current[1].done():
            return
        if self.clock() - self._image_watch_failed.get(scope, float("-inf")) < IMAGE_EVENT_RETRY:
            return
        if current is not None:
            current[1].cancel()
        task = spawn_task(self._image_events(scope, runtime), name=f"units:image-events:{scope}")
        self._image_watch[scope] = (epoch, task)

    async def _image_events(self, scope: Scope, runtime: Runtime) -> None:
        try:
            async with runtime.events(filters={"type": ["image"]}) as stream:
                async for raw in stream:
                    action = str(raw.get("Action") or raw.get("status") or "")
                    self._images_stale = True
                    self.bus.publish(ImagesChanged(daemon=scope, action=action, ref=str(raw.get("id") or "")))
        except (DockerUnavailable, DockerAPIError, RuntimeError) as exc:
            log.debug("image events ended", scope=scope, error=str(exc))
        self._image_watch_failed[scope] = self.clock()

    def _due(self, actions: list[Action], now: float) -> list[Action]:
        """plan creates a missing container whatever the policy says (creating is not starting); but a
        create that failed (no such image, a bad mount) is a failed start, retried on the policy's
        schedule: until then it is a Wait."""
        result: list[Action] = []
        for action in actions:
            if isinstance(action, Create | Recreate) and action.unit in self._create_failed:
                policy = self.policies.get(action.unit)
                due = policy.next_start if policy is not None else None
                if due is not None and due > now:
                    result.append(Wait(action.unit, "restart scheduled", due))
                    continue
            if isinstance(action, Start) and any(isinstance(w, Wait) and w.unit == action.unit
                                                 for w in result):
                continue
            result.append(action)
        return result

    # ---- acting ------------------------------------------------------------------------------------
    def _in_flight(self) -> set[str]:
        return {k for k, t in self._busy.items() if not t.done()}

    def _execute(self, actions: list[Action], busy: set[str]) -> None:
        """Each unit's actions run as a task of their own (removals each on their own): a unit's stop
        grace or a slow start never holds up the next reconcile, so a `die` elsewhere is acted on at
        once. A unit with a task still running is left alone (and so is its policy) until it ends; the
        task's end asks for a reconcile (the next wave may go, the outcome is observed)."""
        groups: dict[str, list[Action]] = {}
        for action in actions:
            groups.setdefault(_key(action), []).append(action)
        for key, group in groups.items():
            if key not in busy:
                self._busy[key] = spawn_task(self._background(key, group), name=f"units:{key}")

    async def _background(self, key: str, group: list[Action]) -> None:
        try:
            await self._run(group)
        finally:
            if self._busy.get(key) is asyncio.current_task():
                del self._busy[key]
            self.poke()

    async def _run(self, group: list[Action]) -> None:
        """One unit's actions, in order; a failure ends the group (reported to the unit's policy)."""
        for action in group:
            assert not isinstance(action, Wait)
            runtime = self._runtime(action.scope)
            if runtime is None:
                return
            try:
                await self._act(runtime, action)
            except DockerUnavailable as exc:
                log.warning("dockerd not answering; will retry", unit=action.unit, error=str(exc))
                self._drop(action.scope)
                return
            except DockerAPIError as exc:
                if isinstance(action, Remove | Stop):
                    log.warning("container not stopped or removed", unit=action.unit, error=exc.message)
                else:
                    if isinstance(action, Create | Recreate):
                        self._create_failed.add(action.unit)
                    self._start_failed(action.unit, exc)
                return

    async def _act(self, runtime: Runtime, action: Action) -> None:
        grace = max(0, int(self.grace()))
        if isinstance(action, Remove):
            log.info("removing container of a unit no longer wanted", unit=action.unit,
                     container=action.container_id[:12])
            await _stop_quietly(runtime, action.container_id, grace)
            await _remove_quietly(runtime, action.container_id)
        elif isinstance(action, Stop):
            why = {"mount_gone": list(action.mounts)} if action.mounts else {}
            log.info("stopping unit", unit=action.unit, container=action.container_id[:12], grace=grace,
                     **why)
            await _stop_quietly(runtime, action.container_id, grace)
            log.info("unit stopped", unit=action.unit, **why)
        elif isinstance(action, Restart):
            log.info("restarting unit: a mount it requires was replaced", unit=action.unit,
                     container=action.container_id[:12], mounts=list(action.mounts))
            await _stop_quietly(runtime, action.container_id, grace)
            await self._start(runtime, action.unit, action.scope)
        elif isinstance(action, Recreate):
            log.info("recreating unit", unit=action.unit, old=action.old_id[:12])
            await _stop_quietly(runtime, action.old_id, grace)
            await _remove_quietly(runtime, action.old_id)
            await self._create(runtime, action.unit, action.scope, action.body)
        elif isinstance(action, Create):
            await self._create(runtime, action.unit, action.scope, action.body)
        elif isinstance(action, Start):
            await self._start(runtime, action.unit, action.scope)

    async def _create(self, runtime: Runtime, name: str, scope: Scope, body: Mapping[str, Any]) -> None:
        container = await runtime.create(body, name=name)
        self._errors.pop(name, None)
        self._create_failed.discard(name)
        self._current[name] = ObservedContainer(container, name, dict(body.get("Labels") or {}), "created",
                                                scope=scope)
        log.info("container created", unit=name, container=container[:12], image=body.get("Image"))

    async def _start(self, runtime: Runtime, name: str, scope: Scope) -> None:
        before = self.wall()
        await runtime.start(name)
        now = self.clock()
        policy = self.policies.get(name)
        unit = self.units.get(name)
        if policy is not None:
            policy.on_started(now, mount_ids(unit, self._mounts) if unit and unit.requires_mounts else None)
        self._errors.pop(name, None)
        self._missing_image.discard(name)
        current = self._current.get(name)
        if current is not None:
            self._current[name] = replace(current, state="running")
            self._died.pop(current.id, None)
        log.info("unit started", unit=name, restarts=policy.restarts if policy else 0)
        if self.logs is not None and current is not None:
            self.logs.started(name, current.id, scope, before)

    def _start_failed(self, name: str, exc: DockerAPIError) -> None:
        policy = self.policies.get(name)
        if policy is None:
            return
        decision = policy.on_start_failed(self.clock())
        unit = self.units.get(name)
        self._errors[name] = exc.message
        if isinstance(exc, NotFound) and unit is not None and "image" in exc.message.lower():
            self._missing_image.add(name)
        log.warning("unit could not start; retrying", unit=name, error=exc.message, retry_in=decision.delay,
                    failures=policy.backoff.failures, state=decision.state)

    def _report_exit(self, name: str, decision: Decision) -> None:
        policy = self.policies[name]
        unit = self.units[name]
        code = policy.last_exit
        fields: dict[str, Any] = {"unit": name, "exit_code": code, "state": decision.state,
                                  "restarts": policy.restarts}
        if decision.restart:
            level = log.info if code == 0 else log.warning
            level("unit exited; restarting", restart_in=decision.delay, failures=policy.backoff.failures,
                  **fields)
        elif decision.state == STOPPED:
            log.info("unit exited (stopped by the user)", **fields)
        elif decision.state == WAITING:
            log.info("unit exited; waiting for its mount", mounts=list(policy.waiting_for), **fields)
        elif decision.state == FAILED:
            what = "oneshot failed" if unit.oneshot else "unit failed; not restarting"
            log.warning(what, restart=str(unit.restart), **fields)
        else:
            log.info("oneshot finished" if unit.oneshot else "unit exited; not restarting", **fields)
        if unit.reloadconfig and not decision.restart and self.on_reload is not None:
            log.info("reloading the config after the unit ran", unit=name)
            self.on_reload()

    def _follow_logs(self, busy: set[str]) -> None:
        if self.logs is None:
            return
        for name, c in self._current.items():
            if c.state == "running" and name not in busy:  # a unit being started: `_start` does it
                self.logs.running(name, c.id, c.scope)

    # ---- waking ------------------------------------------------------------------------------------
    def poke(self) -> None:
        """Reconcile again soon (a wave finished, a background action ended, a timer is due)."""
        if not self._stopping:
            self.bus.publish(TimerFired(name=NAME))

    def _schedule_wake(self, until: float | None) -> None:
        if until is not None and self._wake is not None and self._wake_at == until:
            return
        if self._wake is not None:
            self._wake.cancel()
            self._wake, self._wake_at = None, None
        if until is None or self._stopping:
            return
        delay = max(0.0, until - self.clock())
        self._wake = asyncio.get_running_loop().call_later(delay, self._wake_up)
        self._wake_at = until

    def _wake_up(self) -> None:
        self._wake, self._wake_at = None, None
        self.poke()

    # ---- the first wave ------------------------------------------------------------------------------
    def _settled(self, name: str) -> bool:
        policy = self.policies.get(name)
        unit = self.units.get(name)
        if policy is None or unit is None:
            return True
        if unit.createonly:
            return name in self._current or name in self._errors
        return policy.attempted or policy.finished or policy.stopped or policy.held

    def _check_first_wave(self) -> None:
        if self._first_wave.is_set() or self.graph is None:
            return
        waves = self.graph.waves()
        if not waves or all(self._settled(n) for n in waves[0]):
            self._first_wave.set()

    async def wait_first_wave(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._first_wave.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- every unit up ---------------------------------------------------------------------------------
    def not_up(self) -> dict[str, str]:
        """The units that are not up now, name -> state (see ``not_up``)."""
        return not_up(self.list_status(), UP_AFTER)

    async def wait_all_up(self, timeout: float | None = None) -> dict[str, str]:
        """Return {} once every unit is up, or the units that are not (name -> state) after ``timeout``
        seconds (None: no limit). Looked at again after each reconcile, and when time alone may bring a
        unit up (``up_in``; ``UP_RECHECK`` at most)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._reconciled.clear()
            statuses = self.list_status()
            missing = not_up(statuses, UP_AFTER)
            if not missing:
                return {}
            waits = [UP_RECHECK]
            soon = up_in(statuses, UP_AFTER)
            if soon is not None:
                waits.append(soon)
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return missing
                waits.append(left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconciled.wait(), min(waits))

    # ---- the user's commands -------------------------------------------------------------------------
    def _policy(self, name: str) -> UnitPolicy:
        policy = self.policies.get(name)
        if policy is None:
            raise KeyError(name)
        return policy

    async def down(self, name: str) -> dict[str, Any]:
        """A deliberate stop: the policy never restarts it until ``up`` (remembered for unless-stopped)."""
        self._policy(name).deliberately_stopped()
        self._save_stops()
        log.info("unit stopped by the user", unit=name)
        await self._settle(name)
        return self.unit_status(name)

    async def up(self, name: str) -> dict[str, Any]:
        """Forget a deliberate stop and the backoff; start it (when its dependencies allow)."""
        policy = self._policy(name)
        if policy.stopped or policy.state() != RUNNING:
            policy.resume()
            self._save_stops()
            log.info("unit started by the user", unit=name)
        await self._settle(name)
        return self.unit_status(name)

    async def restart(self, name: str) -> dict[str, Any]:
        self._policy(name).deliberately_stopped()
        log.info("unit restarted by the user", unit=name)
        await self._settle(name)
        self._policy(name).resume()
        self._save_stops()
        await self._settle(name)
        return self.unit_status(name)

    async def _settle(self, name: str, rounds: int = 5) -> None:
        """Reconcile now and wait for the unit's own work (a stop, a start) to be done and observed."""
        for _ in range(rounds):
            await self.reconcile(False)
            task = self._busy.get(name)
            if task is None or task.done():
                return
            await asyncio.gather(task, return_exceptions=True)

    def _save_stops(self) -> None:
        if self.stops_file is None:
            return
        keep = set(remembered_stops(self.policies))
        if self._remembered is not None and keep == self._remembered:
            return
        try:
            write_stops(self.stops_file, keep)
        except OSError as exc:
            log.error("unit stops not saved", file=str(self.stops_file), error=str(exc))
            return
        self._remembered = keep

    # ---- shutdown ------------------------------------------------------------------------------------
    async def stop_all(self, grace: float) -> None:
        """Stop every running unit, in reverse dependency order (user units first), each given ``grace``
        seconds after SIGTERM before SIGKILL; units of one wave stop in parallel."""
        self._stopping = True
        self._schedule_wake(None)
        busy = [t for t in self._busy.values() if not t.done()]
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
        started = time.monotonic()
        stopped = 0
        async with self._lock:
            for scope in ("user", "system"):
                runtime = self._runtime(scope)
                units = {n: u for n, u in self.units.items() if u.scope == scope}
                if runtime is None or not units:
                    continue
                try:
                    summaries = await runtime.list_summaries(all=False)
                    listed = [observed_from_summary(r, scope) for r in summaries]
                except (DockerUnavailable, DockerAPIError) as exc:
                    log.warning("units not stopped in order", scope=scope, error=str(exc))
                    continue
                running = {c.unit: c for c in listed if c.unit in units}
                for wave in UnitGraph.of(units).stop_waves():
                    now_running = [running[n] for n in wave if n in running]
                    if not now_running:
                        continue
                    log.info("stopping units", units=[c.unit for c in now_running], grace=grace)
                    await asyncio.gather(*(self._stop_one(runtime, c, grace) for c in now_running))
                    stopped += len(now_running)
        if stopped:
            log.info("units stopped", count=stopped, seconds=round(time.monotonic() - started, 3))
        await self.close()

    async def _stop_one(self, runtime: Runtime, c: ObservedContainer, grace: float) -> None:
        try:
            await runtime.stop(c.id, timeout=max(0, int(grace)))
        except NotFound:
            pass
        except (DockerUnavailable, DockerAPIError) as exc:
            log.warning("unit not stopped", unit=c.unit, error=str(exc))

    async def close(self) -> None:
        self._stopping = True
        self._schedule_wake(None)
        if self._tap is not None:
            self._tap.cancel()
            await asyncio.gather(self._tap, return_exceptions=True)
            self._tap = None
        for _epoch, task in self._image_watch.values():
            task.cancel()
        await asyncio.gather(*(t for _e, t in self._image_watch.values()), return_exceptions=True)
        if self.logs is not None:
            await self.logs.stop()
        for table in (self._runtimes, self._log_runtimes):
            for runtime in table.values():
                await runtime.close()
            table.clear()

    # ---- reporting -----------------------------------------------------------------------------------
    def unit_status(self, name: str) -> dict[str, Any]:
        unit = self.units.get(name)
        policy = self.policies.get(name)
        if unit is None or policy is None:
            raise KeyError(name)
        now = self.clock()
        status = policy.status(now)
        c = self._current.get(name)
        state = status.state
        if unit.createonly:
            state = CREATED if c is not None else PENDING
        uptime = None
        if policy.started_at is not None and status.state in (RUNNING, CRASH_LOOPING):
            uptime = round(max(0.0, now - policy.started_at), 3)
        next_in = None if status.next_start is None else round(max(0.0, status.next_start - now), 3)
        return {
            "name": name,
            "scope": unit.scope,
            "state": state,
            "restarts": status.restarts,
            "failures": status.failures,
            "uptime": uptime,
            "last_exit": status.last_exit,
            "next_start_in": next_in,
            "restart": str(unit.restart),
            "image": unit.image,
            "container": c.id[:12] if c is not None else None,
            "container_state": c.state if c is not None else None,
            "oneshot": unit.oneshot,
            "createonly": unit.createonly,
            "waiting": self._waiting.get(name),
            "error": self._errors.get(name),
        }

    def list_status(self) -> list[dict[str, Any]]:
        """Every configured unit, and every container of a unit no longer configured that is still there
        (state "removing", until a reconcile sees it gone)."""
        rows = {name: self.unit_status(name) for name in self.units}
        for name, c in self._leaving.items():
            if name not in rows:
                rows[name] = {"name": name, "scope": c.scope, "state": REMOVING, "restarts": 0,
                              "failures": 0, "uptime": None, "last_exit": None, "next_start_in": None,
                              "restart": None, "image": None, "container": c.id[:12],
                              "container_state": c.state, "oneshot": False, "createonly": False,
                              "waiting": None, "error": "no longer configured; container being removed"}
        return [rows[name] for name in sorted(rows)]

    async def inspect(self, name: str) -> dict[str, Any]:
        status = self.unit_status(name)
        unit = self.units[name]
        container: Any = None
        runtime = self._runtime(unit.scope)
        if runtime is not None:
            with contextlib.suppress(DockerUnavailable, DockerAPIError):
                found = await runtime.inspect(name)
                container = dict(found.raw) if found is not None else None
        return {
            **status,
            "after": sorted(self.graph.deps.get(name, ())) if self.graph is not None else [],
            "requires_mounts": [(self._mounts.get(p) or MountState(p, False)).to_dict()
                                for p in unit.requires_mounts],
            "source": unit.source,
            "create": create_request(unit, self._image_ids.get(unit.image)),
            "image_id": self._image_ids.get(unit.image),
            "inspect": container,
        }

    def status(self) -> dict[str, Any]:
        """The summary for `corral status`."""
        states: dict[str, int] = {}
        for name in self.units:
            state = self.unit_status(name)["state"]
            states[state] = states.get(state, 0) + 1
        return {
            "units": len(self.units),
            "states": states,
            "reachable": sorted(self._reachable),
            "reconciles": self.reconciles,
            "last_reconcile_seconds": self.last_seconds,
            "load_errors": list(self.load_errors),
        }


async def _stop_quietly(runtime: Runtime, container: str, grace: int) -> None:
    with contextlib.suppress(NotFound):
        await runtime.stop(container, timeout=grace)


async def _remove_quietly(runtime: Runtime, container: str) -> None:
    with contextlib.suppress(NotFound):
        await runtime.remove(container, force=True)
