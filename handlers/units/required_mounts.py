"""The paths units require (``io.corral.requires-mount``) as the units reconciler sees them.

A ``MountChanged`` from the storage handler only marks the reconciler dirty; each reconcile then
observes the required paths (the mount table, and the storage handler's own view of its rules' paths:
``storage_rule_mounts``), holds or releases the units' policies (``units.mounts.sync_mounts``) and lets
``units.plan.plan`` stop, start or restart them. The journal gets one line per path naming its units
(``mount gone; stopping the units that require it``, ``mount is here; starting the units that require
it``...) and one line per unit (with ``unit=``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from supervisor.mountinfo import read_mountinfo
from units.model import Unit
from units.mounts import MountNews, MountState, RuleMount, mount_ids, observe_mounts, required_paths
from units.plan import ACTIVE, Action, ObservedContainer, Restart, Stop

log = structlog.get_logger("units")


def storage_rule_mounts(storage: Any) -> dict[str, RuleMount]:
    """The storage handler's view of its rules' paths (``handlers.storage.StorageHandler``: its
    ``rules`` and the mounts it made, ``known``), for ``units.mounts.observe_mounts``. None: {}."""
    if storage is None:
        return {}
    known: Mapping[str, Any] = getattr(storage, "known", {}) or {}
    # bind and NFS mounts (``handlers.sourced_mounts``): by rule key; their "device" is the source
    sourced = {k.path: k for k in (getattr(getattr(storage, "sourced", None), "known", {}) or {}).values()}
    view: dict[str, RuleMount] = {}
    for rule in getattr(storage, "rules", ()) or ():
        if rule.path in view and view[rule.path].mounted:
            continue  # several rules for one path (list entries): the one that mounted it
        k = known.get(rule.path)
        made = sourced.get(rule.path)
        if k is None and made is not None:
            view[rule.path] = RuleMount(rule.path, True, getattr(rule, "on_remove", "stop"), made.source)
            continue
        view[rule.path] = RuleMount(rule.path, k is not None, getattr(rule, "on_remove", "stop"),
                                    getattr(k, "devname", None), getattr(k, "diskseq", None))
    for path, k in known.items():  # mounted by a rule that is gone (unmounted at its next reconcile)
        view.setdefault(path, RuleMount(path, True, getattr(k, "on_remove", "stop"),
                                        getattr(k, "devname", None), getattr(k, "diskseq", None)))
    return view


class RequiredMounts:
    """The state of every path a unit requires (``state``, path -> ``MountState``), as last observed."""

    def __init__(self, mountinfo: Path = Path("/proc/self/mountinfo"),
                 storage_rules: Callable[[], Mapping[str, RuleMount]] = dict) -> None:
        self.mountinfo = mountinfo
        self.storage_rules = storage_rules  # the storage handler's rules' paths (see storage_rule_mounts)
        self.state: dict[str, MountState] = {}

    async def observe(self, units: Iterable[Unit]) -> None:
        """Look at the paths ``units`` require (nothing read when none requires one). A mount table that
        cannot be read keeps the last state."""
        paths = required_paths(units)
        if not paths:
            self.state = {}
            return
        try:
            table = await asyncio.to_thread(read_mountinfo, self.mountinfo)
        except OSError as exc:
            log.error("mount table not read; units that require mounts keep their state",
                      file=str(self.mountinfo), error=str(exc))
            return
        self.state = observe_mounts(paths, self.storage_rules(), table)

    def of(self, unit: Unit) -> list[MountState]:
        """The state of each path ``unit`` requires (a path not seen: not mounted)."""
        return [self.state.get(p) or MountState(p, False) for p in unit.requires_mounts]

    def ids(self, unit: Unit | None) -> dict[str, str] | None:
        """The identities of the mounts ``unit`` requires, to remember what it started on (None: it
        requires none)."""
        return mount_ids(unit, self.state) if unit is not None and unit.requires_mounts else None

    def log(self, news: Mapping[str, MountNews], actions: Sequence[Action], busy: set[str],
            current: Mapping[str, ObservedContainer]) -> None:
        """One line per path whose units changed (naming them), one per unit (with ``unit=``)."""
        stopping = {a.unit for a in actions if isinstance(a, Stop) and a.mounts}
        for path, changed in sorted(news.items()):
            state = self.state.get(path) or MountState(path, False)
            if changed.held:
                stopped = [n for n in changed.held if n in stopping]
                running = [n for n in changed.held if n not in stopping and n in current
                           and current[n].state in ACTIVE]
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
