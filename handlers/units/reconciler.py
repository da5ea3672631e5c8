"""The units reconciler: keeps the containers of both dockerds what the config's units say they should be.

A ``Reconciler`` for ``handlers.runner.HandlerRunner`` (name ``containers``). Every event (a container's
``die``, a config change, the system dockerd coming back, an image loaded, a mount come or gone, its own
timer) only marks it dirty; a reconcile then:

1. reloads the units when the config generation changed (``desired``: a unit whose definition changed
   gets a fresh ``UnitPolicy``, so it is recreated and runs again);
2. observes: the units' containers of each dockerd (``observe``, with the exits the ``die`` events
   told of first: ``exits``), the paths units require (``required_mounts``), the units' image ids
   (``image_ids``), the image archives still loading at boot (``units.preloads``: ``PreloadDone``);
3. decides: ``units.plan.sync_policies`` (exits reach the restart policies: ``restarts``), the mounts
   hold or release the policies (``units.mounts.sync_mounts``), then ``units.plan.plan``;
4. acts (``acting``): each unit's actions in a task of their own, so a unit's grace period never holds
   up another unit's restart; a restart not due yet becomes a timer (``wake``). After a wave it looks
   again at once, for the dependents.

A ``die`` is also acted on without waiting for a reconcile (``acting.Actions.restart_at_once``): a crash
is restarted within milliseconds; sooner when the kernel tells first (each running unit's container init
is watched through a pidfd, ``inits``; ``acting.Actions.init_gone``). What the reconciler reports
(``corral units list``, the first wave, every unit up) is ``status``; the user's commands are
``commands``. This class composes those parts and is what the supervisor holds (``Supervisor.units``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from handlers.units.acting import Actions, stop_in_order
from handlers.units.commands import UnitCommands
from handlers.units.desired import DesiredUnits
from handlers.units.dockerds import Daemon, Dockerds
from handlers.units.exits import ExitTap
from handlers.units.image_ids import ImageIds, ImagesChanged
from handlers.units.observe import ContainerView
from handlers.units.required_mounts import RequiredMounts
from handlers.units.restarts import Restarts
from handlers.units.status import UnitsStatus
from handlers.units.wake import Wake
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event, TimerFired
from supervisor.events.docker import ContainerEvent, DockerdState
from supervisor.events.udev import MountChanged
from units.etc_files import EtcFiles
from units.graph import UnitGraph
from units.loader import Loaded
from units.logs import UnitLogs
from units.model import Scope, Unit
from units.mounts import RuleMount, sync_mounts
from units.plan import Wait, plan
from units.preloads import PreloadDone, Preloads
from units.runtime import LineSink, Runtime

log = structlog.get_logger("units")

NAME = "containers"
PROMPTED = ("create", "start")
"""The container events a unit's own action causes (``UnitsReconciler.wanted``)."""


class UnitsReconciler:
    name = NAME
    kinds: tuple[type[Event], ...] = (ContainerEvent, ConfigChanged, DockerdState, TimerFired, ImagesChanged,
                                      MountChanged, PreloadDone)
    config_keys: tuple[str, ...] | None = ("corral.services", "corral.services_include", "corral.environment",
                                           "corral.network")  # (its proxies are units' environment)

    def __init__(
        self,
        bus: Bus,
        daemons: Mapping[Scope, Daemon],
        *,
        loaded: Callable[[], Loaded],
        journal: LineSink | None = None,
        stops_file: Path | None = None,
        grace: Callable[[], float] = lambda: 10.0,
        prefix: Path | None = None,
        etc_root: Path | None = None,
        host_resolv: Path = Path("/etc/resolv.conf"),
        on_reload: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        runtime_factory: Callable[[Path], Runtime] = Runtime,
        follow_events: Callable[[Scope], None] | None = None,
        storage_rules: Callable[[], Mapping[str, RuleMount]] = dict,
        mountinfo: Path = Path("/proc/self/mountinfo"),
        preloads: Preloads | None = None,
    ) -> None:
        self.clock = clock
        self.preloads = preloads  # the image archives still loading at boot: their units wait
        self.desired = DesiredUnits(loaded=loaded, stops_file=stops_file, prefix=prefix, etc_root=etc_root,
                                    clock=clock)
        self.dockerds = Dockerds(daemons, runtime_factory)
        self.images = ImageIds(bus, self.dockerds, clock)
        self.containers = ContainerView(self.dockerds, self.images, follow_events)
        self.mounts = RequiredMounts(mountinfo, storage_rules)
        self.restarts = Restarts(self.desired, clock=clock, on_reload=on_reload)
        self.exits = ExitTap(bus, NAME, self._on_die)
        self.wake = Wake(bus, NAME, clock)
        self.logs = UnitLogs(journal, self.dockerds.log_runtime, wall=wall) if journal is not None else None
        self.actions = Actions(self.desired, self.dockerds, self.containers, self.mounts, self.restarts,
                               self.exits, logs=self.logs, grace=grace, poke=self.wake.poke, clock=clock,
                               wall=wall, etc=EtcFiles(host_resolv))
        self.report = UnitsStatus(self.desired, self.containers, self.restarts, clock)
        self.commands = UnitCommands(self.desired, self.report, reconcile=self.reconcile,
                                     running=self.actions.running, dockerds=self.dockerds,
                                     images=self.images, mounts=self.mounts)
        self.reconciles = 0
        self.last_seconds: float | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    @property
    def units(self) -> dict[str, Unit]:
        """The configured units, by name."""
        return self.desired.units

    @property
    def graph(self) -> UnitGraph | None:
        return self.desired.graph

    def load(self) -> None:
        """Load the units when the config changed (the `units` boot phase does, before the first
        reconcile)."""
        reloaded = self.desired.load()
        if reloaded is None:
            return
        self.restarts.forget(reloaded)
        if self.logs is not None:
            self.logs.keep_only(set(self.desired.units))

    def start_tap(self) -> None:
        """Follow ``die`` events at once (see ``handlers.units.exits``)."""
        self.exits.start()

    def wanted(self, event: Event) -> bool:
        """Whether ``event`` needs a reconcile (``handlers.runner.wakes``): not the ``create`` or ``start``
        of a unit's container while the unit's action is in flight (those of its own create and start).
        A reconcile then would leave the unit alone, and the action's end asks for one. In a wave of N
        units this saves up to two reconciles per unit, each a listing of every unit's container that
        dockerd answers while it starts them (4-5 ms of its CPU per listing of 50, docs/benchmarks.md).
        Every other event (a ``die``, a ``destroy``) still wakes it."""
        if isinstance(event, ContainerEvent) and event.unit is not None and event.action in PROMPTED:
            return event.unit not in self.actions.in_flight()
        return True

    def _on_die(self, event: ContainerEvent) -> None:
        if not self._stopping:
            self.actions.restart_at_once(event)

    # ---- the runner's entry point ---------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        if self._stopping:
            return
        async with self._lock:
            started = time.monotonic()
            try:
                await self._reconcile(full)
            finally:
                self.report.reconciled()
            self.reconciles += 1
            self.last_seconds = round(time.monotonic() - started, 6)

    async def _reconcile(self, full: bool) -> None:
        await self.desired.read_stops()  # once, before the units are first acted on
        self.load()
        if full:
            self.images.mark_stale()
        # A unit whose action was in flight at any moment of the listing is left alone this time: a start
        # that ends while the listing is on its way would otherwise meet a listing from before it (the
        # container still `created`, or dead) and be taken for an exit. So is one whose action began
        # meanwhile (a restart on the fast path can begin and end within one listing). Its task's end
        # asks for another reconcile.
        in_flight, spawned = self.actions.in_flight(), self.actions.spawned
        observed = self.exits.with_exits(await self.containers.observe(self.desired.units))
        if "system" not in self.containers.reachable:
            # Nothing to do until it answers: its `up` comes with a resync, but one that is up and did not
            # answer this listing (swamped) is looked at again after a while.
            retry = self.dockerds.retry_in("system")
            if retry is not None:
                self.wake.at(self.clock() + retry)
            return
        await self.mounts.observe(self.desired.units.values())
        desired = self.desired.in_reach(self.containers.reachable)
        graph = self.desired.graph_for(desired)
        if await self.images.refresh(desired):
            self.restarts.images_arrived(desired, self.images.ids)
        now = self.clock()
        self.containers.keep(self.desired.units, desired, observed)
        busy = in_flight | self.actions.in_flight() | self.actions.spawned_since(spawned)
        idle = {n: u for n, u in desired.items() if n not in busy}
        self.restarts.sync(idle, observed, now)
        news = sync_mounts(idle, self.desired.policies, self.mounts.state)
        preloading = self.preloads.waits(desired, self.images.ids) if self.preloads is not None else {}
        actions = self.restarts.due(plan(desired, observed, self.desired.policies, image_ids=self.images.ids,
                                         now=now, graph=graph, mounts=self.mounts.state,
                                         preloading=preloading), now)
        self.mounts.log(news, actions, busy, self.containers.current)
        self.report.waiting = {a.unit: a.reason for a in actions if isinstance(a, Wait)}
        self.actions.follow_logs(busy)
        self.actions.watch_inits(busy)
        self.report.check_first_wave()
        self.actions.execute([a for a in actions if not isinstance(a, Wait)], busy)
        dues = [a.until for a in actions if isinstance(a, Wait) and a.until is not None]
        self.wake.at(min(dues) if dues else None)
        self.report.check_first_wave()

    # ---- shutdown ------------------------------------------------------------------------------------
    async def stop_all(self, grace: float) -> None:
        """Stop every running unit, in reverse dependency order (user units first), each given ``grace``
        seconds after SIGTERM before SIGKILL; units of one wave stop in parallel."""
        self._stopping = True
        self.wake.close()
        await self.actions.cancel()
        async with self._lock:
            await stop_in_order(self.dockerds, self.desired.units, grace)
        await self.close()

    async def close(self) -> None:
        self._stopping = True
        self.wake.close()
        self.actions.inits.close()
        await self.exits.close()
        await self.images.close()
        if self.logs is not None:
            await self.logs.stop()
        await self.dockerds.close()
        await self.desired.saved()

    # ---- what the supervisor, its boot phase and its control commands use ------------------------------
    def status(self) -> dict[str, Any]:
        """The summary for `corral status`."""
        return {
            "units": len(self.desired.units),
            "states": self.report.states(),
            "reachable": sorted(self.containers.reachable),
            "reconciles": self.reconciles,
            "last_reconcile_seconds": self.last_seconds,
            "inits_watched": len(self.actions.inits.watched),
            "inits_gone": self.actions.inits.fired,
        }

    def unit_status(self, name: str) -> dict[str, Any]:
        return self.report.unit_status(name)

    def list_status(self) -> list[dict[str, Any]]:
        return self.report.list_status()

    def not_up(self) -> dict[str, str]:
        return self.report.not_up()

    async def wait_all_up(self, timeout: float | None = None) -> dict[str, str]:
        return await self.report.wait_all_up(timeout)

    async def wait_first_wave(self, timeout: float) -> bool:
        return await self.report.wait_first_wave(timeout)

    async def inspect(self, name: str) -> dict[str, Any]:
        return await self.commands.inspect(name)

    async def up(self, name: str) -> dict[str, Any]:
        return await self.commands.up(name)

    async def down(self, name: str) -> dict[str, Any]:
        return await self.commands.down(name)

    async def restart(self, name: str) -> dict[str, Any]:
        return await self.commands.restart(name)
