"""Carrying out what ``units.plan`` decided, and the fast restart path.

Removals and stops (and recreations, which stop a container) run in the background, so a unit's grace
period never holds up another unit's restart; each unit's actions run as a task of their own (removals
each on their own), and a unit with a task in flight is left alone (and so is its policy) until it ends;
the task's end asks for a reconcile (the next wave may go, the outcome is observed). Outcomes reach the
unit's policy (``on_started``; a failure through ``Restarts.start_failed``), the container view and the
unit's log follower.

The fast path (``restart_at_once``): a ``die`` reaches the bus ~20 ms after the exit; when the unit's
policy says restart now (``units.plan.decide_exit``: the first restart is immediate), the start call
goes out at once and queues behind dockerd's own handling of the exit, without waiting for a reconcile.
Docker's own policy waits 100 ms before its first restart (bench/restart_latency.py compares the two).
Sooner still, the kernel tells: each running unit's container init is watched through a pidfd
(``handlers.units.inits``); when it is gone (``init_gone``, within a millisecond of the exit) the unit's
task waits for dockerd to have taken the exit (dockerd still shows the container running, and a start now
would be answered "already started"): its ``die`` or the answer to ``POST /containers/ID/wait``, whichever
comes first, both with the exit code; then the same decision and the same start as on a ``die``. The
``die`` is not acted on twice: it is the one awaited, or finds the unit busy or started after it.

A unit in replace mode (``io.corral.restart-mode: replace``) has a spare container, created beforehand
(``CreateSpare``); its restart starts the spare (``units.plan.restart_action``: ``Replace``), which dockerd
does not hold, so when the decision needs no exit code (``units.plan.code_free``) it goes out at the
pidfd itself, without waiting for dockerd; the old container's exit code, its removal and the name are
taken care of after the spare's start (``_replace``).

At shutdown (``stop_in_order``) units stop in reverse dependency order, user units first, the units of
one wave in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

import structlog

from handlers.units.desired import DesiredUnits
from handlers.units.dockerds import Dockerds
from handlers.units.exits import ExitTap
from handlers.units.inits import InitWatch
from handlers.units.observe import ContainerView, observed_from_summary
from handlers.units.required_mounts import RequiredMounts
from handlers.units.restarts import Restarts
from supervisor.events.docker import ContainerEvent
from supervisor.tasks import spawn_task
from units.etc_files import EtcFiles
from units.graph import UnitGraph
from units.logs import UnitLogs
from units.model import SCOPES, Scope, Unit
from units.plan import (
    ACTIVE,
    Action,
    Create,
    CreateSpare,
    ObservedContainer,
    Recreate,
    Remove,
    Rename,
    Replace,
    Restart,
    Start,
    Stop,
    Wait,
    code_free,
    restart_action,
)
from units.runtime import ContainerState, DockerAPIError, DockerUnavailable, NotFound, Runtime

log = structlog.get_logger("units")

ARM_GRACE = 2.0  # seconds the inits' watches being set up are given to end at shutdown
EXIT_WAIT = 10.0  # seconds an init gone waits for dockerd to show its container stopped (then: the reconcile)


def _key(action: Action) -> str:
    return f"remove:{action.container_id}" if isinstance(action, Remove) else action.unit


class Actions:
    """The actions in flight (``busy``: a task by unit name, or ``remove:<container id>``)."""

    def __init__(
        self,
        desired: DesiredUnits,
        dockerds: Dockerds,
        containers: ContainerView,
        mounts: RequiredMounts,
        restarts: Restarts,
        exits: ExitTap,
        *,
        logs: UnitLogs | None,
        grace: Callable[[], float],
        poke: Callable[[], None],
        clock: Callable[[], float],
        wall: Callable[[], float],
        etc: EtcFiles | None = None,
    ) -> None:
        self.desired = desired
        self.dockerds = dockerds
        self.containers = containers
        self.mounts = mounts
        self.restarts = restarts
        self.exits = exits
        self.logs = logs
        self.grace = grace  # seconds a stop waits after SIGTERM before SIGKILL
        self.poke = poke  # ask for a reconcile
        self.clock = clock
        self.wall = wall
        self.etc = etc or EtcFiles()  # a net: none unit's hosts and resolv.conf, before its create/start
        self.busy: dict[str, asyncio.Task[None]] = {}
        self.inits = InitWatch(self.init_gone)
        self._arming: dict[str, asyncio.Task[None]] = {}
        self._inspecting: set[asyncio.Task[ContainerState | None]] = set()  # the watches' inspects
        # container id -> (what told it, its exit code), for an init gone (``_reap``)
        self._exits_awaited: dict[str, asyncio.Future[tuple[str, int | None]]] = {}
        self.spawned = 0  # tasks spawned so far (``spawned_since``)
        self._spawned_at: dict[str, int] = {}  # key -> the ``spawned`` count of its last task

    def in_flight(self) -> set[str]:
        return {k for k, t in self.busy.items() if not t.done()}

    def spawned_since(self, count: int) -> set[str]:
        """The keys whose task was spawned after ``spawned`` was ``count``: their task may have begun
        and ended between two looks at ``in_flight`` (a restart on the fast path during a listing).
        Forgets the older ones (one reconcile at a time asks, with the count from its start)."""
        self._spawned_at = {k: n for k, n in self._spawned_at.items() if n > count}
        return set(self._spawned_at)

    def running(self, key: str) -> asyncio.Task[None] | None:
        """The unit's task, while it runs."""
        task = self.busy.get(key)
        return task if task is not None and not task.done() else None

    def execute(self, actions: list[Action], busy: set[str]) -> None:
        """Each unit's actions run as a task of their own (removals each on their own): a unit's stop
        grace or a slow start never holds up the next reconcile, so a `die` elsewhere is acted on at
        once. Units in ``busy`` (a task in flight during the reconcile) are left alone."""
        groups: dict[str, list[Action]] = {}
        for action in actions:
            groups.setdefault(_key(action), []).append(action)
        for key, group in groups.items():
            if key not in busy:
                self._spawn(key, group)

    def restart_at_once(self, event: ContainerEvent) -> None:
        """The restart path, without waiting for a reconcile: a unit's container that corral started
        died; its policy decides (``Restarts.exited``) and, for a restart without delay, the start call
        goes out at once. Anything else (a delay, giving up, a unit being changed) is left to the
        reconcile the event triggers; so are oneshots, createonly units, units with a task in flight,
        and a die from before corral last started the unit (the events source, reconnected, infers
        what happened while it was away, or dockerd replays it: the unit may be running again)."""
        told = self._exits_awaited.pop(event.container_id, None)
        if told is not None and not told.done():
            told.set_result(("die", event.exit_code))  # its init's exit is being handled (``init_gone``)
            return
        name = event.unit
        if name is None or event.daemon not in SCOPES:
            return
        scope: Scope = "user" if event.daemon == "user" else "system"
        unit, current = self.desired.units.get(name), self.containers.current.get(name)
        if (unit is None or name not in self.desired.policies or current is None
                or current.id != event.container_id or unit.scope != scope or unit.oneshot or unit.createonly
                or self.running(name) is not None):
            return
        if event.time_nano < self.containers.last_start.get(name, 0.0) * 1e9:
            return  # it died before corral last started it: a die inferred or replayed after a reconnect
        decision = self.restarts.exited(name, replace(current, state="exited", exit_code=event.exit_code),
                                        via="die")
        if decision is not None and decision.at_once:
            self._spawn(name, [restart_action(unit, current, self.containers.spares.get(name))])

    def init_gone(self, name: str, container_id: str, scope: Scope) -> None:
        """The unit's container init exited (its pidfd, ``handlers.units.inits``): the same path as a
        ``die``, a few tens of milliseconds before it (see ``restart_at_once`` for what is left alone)."""
        unit, current = self.desired.units.get(name), self.containers.current.get(name)
        if (unit is None or name not in self.desired.policies or current is None
                or current.id != container_id or unit.scope != scope or unit.oneshot or unit.createonly
                or self.running(name) is not None):
            return
        runtime = self.dockerds.runtime(scope)
        if runtime is None:
            return
        log.info("container init gone", unit=name, container=container_id[:12])
        spare = self.containers.spares.get(name)
        policy = self.desired.policies[name]
        if unit.replace and spare is not None and code_free(policy):
            # Nothing to wait for: the spare is not the container dockerd is still cleaning up, and the
            # decision does not need the exit code (``_replace`` records it once dockerd has it).
            self.exits.gone(container_id)
            decision = self.restarts.exited(name, replace(current, state="exited", exit_code=None),
                                            via="pidfd")
            if decision is not None and decision.at_once:
                self._spawn(name, [restart_action(unit, current, spare)])
            return
        told: asyncio.Future[tuple[str, int | None]] = asyncio.get_running_loop().create_future()
        self._exits_awaited[container_id] = told
        self._spawn_task(name, self._reap(runtime, name, current, scope, told))

    async def _reap(self, runtime: Runtime, name: str, container: ObservedContainer, scope: Scope,
                    told: asyncio.Future[tuple[str, int | None]]) -> None:
        """Wait until dockerd has taken the exit (a start sent before it has would find the container
        still running), then decide and restart as on a ``die``. Whichever tells first: dockerd's ``die``
        (sent while dockerd still holds the container for its clean-up: a start sent then waits in
        dockerd and begins the moment the clean-up ends) or ``POST /containers/ID/wait`` (answered once
        the clean-up ended; the one that counts when the event stream lags). Both carry the exit code.
        A dockerd that tells neither leaves it to the reconcile."""
        async def wait() -> None:
            told_by: tuple[str, int | None]
            try:
                told_by = "wait", await runtime.wait(container.id, timeout=EXIT_WAIT)
            except (DockerUnavailable, DockerAPIError) as exc:
                log.debug("container init gone; dockerd did not say so", unit=name, error=str(exc))
                told_by = "nothing", None
            if not told.done():
                told.set_result(told_by)

        # Not cancelled once the die told: dockerd logs a wait cut off as an error (a broken pipe). It ends
        # on its own as soon as the clean-up does.
        spawn_task(wait(), name=f"units:{name}:wait")
        try:
            told_by, code = await told
        finally:
            self._exits_awaited.pop(container.id, None)
        if told_by == "nothing":
            return
        decision = self.restarts.exited(name, replace(container, state="exited", exit_code=code),
                                        via=f"pidfd+{told_by}")
        unit = self.desired.units.get(name)
        if decision is not None and decision.at_once and unit is not None:
            await self._run([restart_action(unit, container, self.containers.spares.get(name))])

    def _spawn(self, key: str, group: list[Action]) -> None:
        self._spawn_task(key, self._run(group))

    def _spawn_task(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        self.spawned += 1
        self._spawned_at[key] = self.spawned
        self.busy[key] = spawn_task(self._background(key, work), name=f"units:{key}")

    async def _background(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        finally:
            if self.busy.get(key) is asyncio.current_task():
                del self.busy[key]
            self.poke()

    async def _run(self, group: list[Action]) -> None:
        """One unit's actions, in order; a failure ends the group (reported to the unit's policy)."""
        for action in group:
            assert not isinstance(action, Wait)
            runtime = self.dockerds.runtime(action.scope)
            if runtime is None:
                return
            try:
                await self._act(runtime, action)
                self.restarts.answered(action.unit)
            except DockerUnavailable as exc:
                # The client stays: other units' calls are on it (dropping it failed them all, issue 14),
                # and a dockerd that restarted gets a new one anyway (its epoch).
                self.restarts.not_answered(action.unit, exc)
                return
            except DockerAPIError as exc:
                if isinstance(action, Remove | Stop | Rename):
                    log.warning("container not stopped, removed or renamed", unit=action.unit,
                                error=exc.message)
                elif isinstance(action, CreateSpare):
                    log.warning("spare container not created", unit=action.unit, error=exc.message)
                else:
                    self.restarts.start_failed(action.unit, exc, create=isinstance(action, Create | Recreate))
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
        elif isinstance(action, Replace):
            await self._replace(runtime, action)
        elif isinstance(action, CreateSpare):
            name = f"{action.unit}.spare-{secrets.token_hex(4)}"
            await self.etc.ensure(self.desired.units.get(action.unit))
            container = await runtime.create(action.body, name=name)
            self.containers.spare_created(action.unit, container, name, action.body.get("Labels") or {},
                                          action.scope)
            log.info("spare container created", unit=action.unit, container=container[:12])
        elif isinstance(action, Rename):
            await runtime.rename(action.container_id, action.unit)
            self.containers.renamed(action.unit, action.container_id)

    async def _replace(self, runtime: Runtime, action: Replace) -> None:
        """Start the spare in place of the container that exited; then, off the restart's path, take the
        old one's exit code (once dockerd has cleaned it up), remove it with its anonymous volumes and give
        the spare the unit's name. (The next reconcile creates the next spare.)"""
        spare = self.containers.spares.get(action.unit)
        if spare is None or spare.id != action.spare_id:
            spare = ObservedContainer(action.spare_id, action.spare_id, {}, "created", scope=action.scope)
        log.info("replacing the unit's container by its spare", unit=action.unit, old=action.old_id[:12],
                 spare=action.spare_id[:12])
        await self._start(runtime, action.unit, action.scope, spare)
        code: int | None = None
        with contextlib.suppress(DockerUnavailable, DockerAPIError):
            code = await runtime.wait(action.old_id, timeout=EXIT_WAIT)
        policy = self.desired.policies.get(action.unit)
        if policy is not None and policy.last_exit is None:
            policy.last_exit = code
        try:  # (a reconcile meanwhile may be removing it too: an extra container of the unit)
            await _remove_quietly(runtime, action.old_id, volumes=True)
            await runtime.rename(action.spare_id, action.unit)
            self.containers.renamed(action.unit, action.spare_id)
        except DockerAPIError as exc:  # not a failed start: the reconcile removes or renames it later
            log.info("replaced container not removed or renamed yet", unit=action.unit, error=exc.message)
        log.info("unit replaced", unit=action.unit, old=action.old_id[:12], exit_code=code,
                 container=action.spare_id[:12])

    async def _create(self, runtime: Runtime, name: str, scope: Scope, body: Mapping[str, Any]) -> None:
        await self.etc.ensure(self.desired.units.get(name), fresh=True)
        container = await runtime.create(body, name=name)
        self.restarts.created(name)
        self.containers.created(name, container, body.get("Labels") or {}, scope)
        log.info("container created", unit=name, container=container[:12], image=body.get("Image"))

    async def _start(self, runtime: Runtime, name: str, scope: Scope,
                     spare: ObservedContainer | None = None) -> None:
        """Start the unit's container (``spare``: that spare, in place of it)."""
        await self.etc.ensure(self.desired.units.get(name))  # (no I/O once written)
        before = self.wall()
        await runtime.start(spare.id if spare is not None else self._target(name))
        now = self.clock()
        policy = self.desired.policies.get(name)
        if policy is not None:
            policy.on_started(now, self.mounts.ids(self.desired.units.get(name)))
        self.restarts.started(name)
        current = self.containers.started(name, before, spare)
        if current is not None:
            self.exits.forget(current.id, before)
        log.info("unit started", unit=name, restarts=policy.restarts if policy else 0)
        if self.logs is not None and current is not None:
            self.logs.started(name, current.id, scope, before)
        await self._watch_init(runtime, name, scope)

    def _target(self, name: str) -> str:
        """What to call the unit's container in a request: its name, or its id while it does not have the
        name (a spare started in place of the unit's container, not renamed yet)."""
        current = self.containers.current.get(name)
        return current.id if current is not None and current.name not in ("", name) else name

    async def _watch_init(self, runtime: Runtime, name: str, scope: Scope) -> None:
        """Watch the unit's container init (``handlers.units.inits``); one that cannot be is restarted
        on the ``die`` event."""
        unit = self.desired.units.get(name)
        if unit is None or unit.oneshot or unit.createonly:
            return
        # shielded: a start cancelled at shutdown must not cut its inspect off (dockerd logs the broken
        # pipe as an error); ``cancel`` gives the inspects in flight ARM_GRACE to end
        inspect = spawn_task(_inspect_quietly(runtime, self._target(name)), name=f"units:{name}:init-inspect")
        self._inspecting.add(inspect)
        inspect.add_done_callback(self._inspecting.discard)
        state = await asyncio.shield(inspect)
        if state is not None and state.running and state.unit == name:
            await self.inits.arm(name, state.id, scope, state.pid)

    def watch_inits(self, busy: set[str]) -> None:
        """Watch the init of every running unit container not watched yet (one corral did not start: it
        was running when PID 1 came up, or the user started it). Units in ``busy`` are being started:
        ``_start`` does."""
        self.inits.keep_only(set(self.desired.units))
        for name, c in self.containers.current.items():
            if (c.state not in ACTIVE or name in busy or name in self._arming
                    or not self.inits.wants(name, c.id)):
                continue
            runtime = self.dockerds.runtime(c.scope)
            if runtime is not None:
                self._arming[name] = spawn_task(self._arm(runtime, name, c.scope), name=f"units:{name}:init")

    async def _arm(self, runtime: Runtime, name: str, scope: Scope) -> None:
        try:
            await self._watch_init(runtime, name, scope)
        finally:
            self._arming.pop(name, None)

    def follow_logs(self, busy: set[str]) -> None:
        """Follow the output of every running unit's container (a unit being started: ``_start`` does)."""
        if self.logs is None:
            return
        for name, c in self.containers.current.items():
            if c.state == "running" and name not in busy:
                self.logs.running(name, c.id, c.scope)

    async def cancel(self) -> None:
        """Cancel every action in flight (at shutdown) and wait for them to end."""
        self.inits.close()
        arming = [t for t in self._arming.values() if not t.done()]
        inspecting = [t for t in self._inspecting if not t.done()]
        if arming or inspecting:  # an inspect each: let them end (one cut off makes dockerd log a broken
            await asyncio.wait([*arming, *inspecting], timeout=ARM_GRACE)  # pipe as an error)
            for task in inspecting:
                task.cancel()
        busy = [t for t in [*self.busy.values(), *arming] if not t.done()]
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)


async def stop_in_order(dockerds: Dockerds, units: Mapping[str, Unit], grace: float) -> None:
    """Stop every running unit, in reverse dependency order (user units first), each given ``grace``
    seconds after SIGTERM before SIGKILL; units of one wave stop in parallel."""
    started = time.monotonic()
    stopped = 0
    for scope in ("user", "system"):
        mine = {n: u for n, u in units.items() if u.scope == scope}
        runtime = dockerds.runtime(scope) if mine else None  # a dockerd without units is not asked
        if runtime is None:
            continue
        try:
            summaries = await runtime.list_summaries(all=False)
            listed = [observed_from_summary(r, scope) for r in summaries]
        except (DockerUnavailable, DockerAPIError) as exc:
            log.warning("units not stopped in order", scope=scope, error=str(exc))
            continue
        running = {c.unit: c for c in listed if c.unit in mine}
        for wave in UnitGraph.of(mine).stop_waves():
            now_running = [running[n] for n in wave if n in running]
            if not now_running:
                continue
            log.info("stopping units", units=[c.unit for c in now_running], grace=grace)
            await asyncio.gather(*(_stop_one(runtime, c, grace) for c in now_running))
            stopped += len(now_running)
    if stopped:
        log.info("units stopped", count=stopped, seconds=round(time.monotonic() - started, 3))


async def _stop_one(runtime: Runtime, c: ObservedContainer, grace: float) -> None:
    try:
        await runtime.stop(c.id, timeout=max(0, int(grace)))
    except NotFound:
        pass
    except (DockerUnavailable, DockerAPIError) as exc:
        log.warning("unit not stopped", unit=c.unit, error=str(exc))


async def _stop_quietly(runtime: Runtime, container: str, grace: int) -> None:
    with contextlib.suppress(NotFound):
        await runtime.stop(container, timeout=grace)


async def _remove_quietly(runtime: Runtime, container: str, *, volumes: bool = False) -> None:
    with contextlib.suppress(NotFound):
        await runtime.remove(container, force=True, volumes=volumes)


async def _inspect_quietly(runtime: Runtime, name: str) -> ContainerState | None:
    """The unit's container, or None when there is none or dockerd cannot say (the ``die`` event then
    restarts it, as before the watch)."""
    try:
        return await runtime.inspect(name)
    except (DockerUnavailable, DockerAPIError):
        return None
