"""The units as configured: taken again when the config generation changes (the config store's units
check loaded them, off the loop, once per generation), each with its restart policy, their dependency
graph, and the deliberate stops of ``unless-stopped`` units.

- A unit whose definition changed gets a fresh ``UnitPolicy`` (so it is recreated and runs again); one
  whose ``restart`` alone changed keeps its policy (and its container), with the new spec.
- The deliberate stops (``units.stops``, ``/var/lib/corral/units-stopped.json``) are read before the
  units are first acted on (``read_stops``) and written whenever the set changes (``save_stops``); both
  in a thread, the loop never waits for the disk. A unit under ``unless-stopped`` that the user stopped
  stays stopped across supervisor restarts.

In ``corral sandbox`` the units' bind-mount sources below ``/var``, ``/run``, ``/home``, ``/root``,
``/srv``, ``/opt``, ``/mnt``, ``/media`` and ``/tmp`` are taken from under the sandbox's directory
(``localize``): the sandbox's dockerd shares the host's filesystem, and a unit must not write to the
host's ``/var/lib``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from supervisor.tasks import spawn_task
from units.graph import UnitGraph
from units.loader import Loaded
from units.model import Scope, Unit, Volume
from units.policy import UnitPolicy, remembered_stops
from units.stops import read_stops, write_stops

log = structlog.get_logger("units")

# In the sandbox, bind sources below these are taken from under its directory (see ``localize``).
SANDBOX_ROOTS = ("/var", "/run", "/home", "/root", "/srv", "/opt", "/mnt", "/media", "/tmp")


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


def with_etc_files(units: Mapping[str, Unit], root: Path | None) -> dict[str, Unit]:
    """A system unit with ``net: none`` gets its own hosts and resolv.conf below ``root``
    (``units.etc_files``: its container is created with ``NetworkDisabled``). (A unit joining its network,
    ``net: service:UNIT``, needs nothing: dockerd takes the paths of a container's binds on /etc/hosts
    and /etc/resolv.conf as its ``HostsPath`` and ``ResolvConfPath``, and gives a joiner those.) These keep
    dockerd's ``none`` network: a user unit (the user dockerd resolves a bind's source in its own
    container, where corral's files are not), and a unit with ``volumes_from`` (what it takes may bind
    /etc/hosts itself; dockerd lets a bind of the unit's own win over it). None: no unit (the old
    ``NetworkMode: none`` alone)."""
    if root is None:
        return dict(units)

    def own(unit: Unit) -> bool:
        return unit.scope == "system" and unit.network_mode == "none" and not unit.volumes_from

    return {name: replace(u, etc_dir=str(root / name)) if own(u) else u for name, u in units.items()}


@dataclass(frozen=True)
class Reloaded:
    """What a load changed: the units recreated (their definition changed) and the units removed. What
    the reconciler remembers about them (errors, failed creates) is forgotten."""

    changed: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()


class DesiredUnits:
    """The configured units (``units``), their policies (``policies``, by unit name), their dependency
    graph (``graph``) and the deliberate stops file."""

    def __init__(
        self,
        *,
        loaded: Callable[[], Loaded],
        stops_file: Path | None = None,
        prefix: Path | None = None,
        etc_root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.loaded = loaded  # the units of the config in force (loaded once per generation, off the loop)
        self.etc_root = etc_root  # where net: none units' hosts and resolv.conf go (``with_etc_files``)
        self.stops_file = stops_file
        self.prefix = prefix
        self.clock = clock
        self.units: dict[str, Unit] = {}
        self.policies: dict[str, UnitPolicy] = {}
        self.graph: UnitGraph | None = None
        self._seen: Loaded | None = None
        self._stops: set[str] | None = None  # the deliberate stops on disk, as far as known (None: not read)
        self._saving: asyncio.Task[None] | None = None  # the last write

    def load(self) -> Reloaded | None:
        """Take the units of a new config generation (loaded and checked by the config store). None:
        nothing changed (the same generation)."""
        loaded = self.loaded()
        if loaded is self._seen:
            return None
        self._seen = loaded
        first = self.graph is None
        units = with_etc_files({name: localize(unit, self.prefix) for name, unit in loaded.units.items()},
                               self.etc_root)
        policies: dict[str, UnitPolicy] = {}
        changed: set[str] = set()
        for name, unit in units.items():
            old, policy = self.units.get(name), self.policies.get(name)
            if policy is None:
                stopped = name in (self._stops or ()) and unit.restart.name == "unless-stopped"
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
                    changed.add(name)
                    log.info("unit changed; recreating it", unit=name)
            policies[name] = policy
            if unit.notes and (old is None or name in changed):
                for note in unit.notes:  # what corral decided for it, as RancherOS did: info, not a warning
                    log.info("unit runs as RancherOS ran it", unit=name, note=note)
        removed = set(self.units) - set(units)
        for name in removed:
            log.info("unit removed", unit=name)
        self.units, self.policies = units, policies
        self.graph = UnitGraph.of(units)
        self.save_stops()
        return Reloaded(frozenset(changed), frozenset(removed))

    async def read_stops(self) -> None:
        """Read the remembered stops (once, in a thread), before the units are first acted on: a unit
        under ``unless-stopped`` that the user stopped, and not touched since, stays stopped."""
        if self._stops is not None:
            return
        stops: set[str] = set()
        if self.stops_file is not None:
            stops = await asyncio.to_thread(read_stops, self.stops_file)
        self._stops = stops
        if self.graph is None:
            return  # not loaded yet: the load makes the policies with the stops
        for name, policy in self.policies.items():
            if name in stops and self.units[name].restart.name == "unless-stopped" and policy.fresh:
                policy.deliberately_stopped()
                log.info("unit stays stopped (stopped by the user before)", unit=name)
        self.save_stops()  # the stops of units no longer configured, or no longer unless-stopped, go

    def save_stops(self) -> asyncio.Task[None] | None:
        """Write the deliberate stops to remember (``remembered_stops``) when they changed: in a thread,
        one write after the other. Returns the write's task (None: nothing to write, or the file not
        read yet: ``read_stops`` saves)."""
        if self.stops_file is None or self._stops is None:
            return None
        keep = set(remembered_stops(self.policies))
        if keep == self._stops:
            return None
        before, self._stops = self._stops, keep
        write = self._write(self.stops_file, keep, before, self._saving)
        self._saving = spawn_task(write, name="units:stops")
        return self._saving

    async def _write(self, path: Path, keep: set[str], before: set[str],
                     previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await asyncio.to_thread(write_stops, path, keep)
        except OSError as exc:
            log.error("unit stops not saved", file=str(path), error=str(exc))
            if self._stops == keep:
                self._stops = before  # what the file still holds: the next change writes again

    async def saved(self) -> None:
        """Wait for the stops being written (at shutdown)."""
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)

    def policy(self, name: str) -> UnitPolicy:
        """The unit's policy; KeyError when no such unit is configured."""
        policy = self.policies.get(name)
        if policy is None:
            raise KeyError(name)
        return policy

    def in_reach(self, reachable: set[Scope]) -> dict[str, Unit]:
        """The units whose dockerd answered."""
        return {n: u for n, u in self.units.items() if u.scope in reachable}

    def graph_for(self, desired: Mapping[str, Unit]) -> UnitGraph:
        """The dependency graph among ``desired`` (``in_reach``): the whole graph when every unit is in
        reach, else the order among those that are (a dockerd is away: the user's)."""
        graph = self.graph or UnitGraph.of(self.units)
        if len(desired) == len(graph.deps):
            return graph
        deps = {n: frozenset(d for d in graph.deps[n] if d in desired) for n in desired}
        return UnitGraph(dict(desired), deps)
