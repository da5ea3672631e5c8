"""Required mounts (``io.corral.requires-mount``) as plain data: which of them are there, which units
wait for them, which run on a mount that has since been replaced.

A unit that requires PATH may run only while PATH is mounted: for the path of a storage rule
(``mounts:``), while the storage handler has mounted it there; for any other path, while anything is
mounted there (``/proc/self/mountinfo``). The units reconciler builds the view with
``observe_mounts`` (pure: it reads the mount table and asks the storage handler), calls
``sync_mounts`` after ``units.plan.sync_policies`` (it holds and releases the units' restart policies)
and passes the view to ``units.plan.plan``, which stops, waits or restarts. ``units_requiring`` gives a
path's dependents to ``corral storage status``. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.mountinfo import MountEntry
from units.model import Unit
from units.policy import UnitPolicy

ON_REMOVE_STOP = "stop"
ON_REMOVE_IGNORE = "ignore"


@dataclass(frozen=True)
class RuleMount:
    """A storage rule's path as the storage handler reports it: ``mounted`` by the handler (from
    ``device``, whose ``diskseq`` tells one medium from the next), and the rule's ``on_remove``."""

    path: str
    mounted: bool
    on_remove: str = ON_REMOVE_STOP
    device: str | None = None
    diskseq: int | None = None


@dataclass(frozen=True)
class MountState:
    """One required path. ``ident`` names the mount that is there (it changes when something else is
    mounted: a new mount, another device or medium); ``on_remove`` is what its units do when it goes."""

    path: str
    mounted: bool
    ident: str | None = None
    on_remove: str = ON_REMOVE_STOP
    rule: bool = False  # the path of a storage rule

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "mounted": self.mounted, "on_remove": self.on_remove, "rule": self.rule}


def _absent(path: str) -> MountState:
    return MountState(path, False)


def required_paths(units: Iterable[Unit]) -> set[str]:
    return {path for unit in units for path in unit.requires_mounts}


def observe_mounts(paths: Iterable[str], rules: Mapping[str, RuleMount],
                   table: Sequence[MountEntry]) -> dict[str, MountState]:
    """The state of each path: ``rules`` are the storage rules' paths (a rule's path counts as mounted
    only while the storage handler says it mounted it and it is in the table), ``table`` the mount
    table (the last entry for a mount point is the one on top)."""
    top: dict[str, MountEntry] = {}
    for line in table:
        top[line.target] = line
    states: dict[str, MountState] = {}
    for path in paths:
        entry = top.get(path)
        rule = rules.get(path)
        where = None if entry is None else f"{entry.mount_id}:{entry.major}:{entry.minor}"
        if rule is None:
            states[path] = MountState(path, where is not None, where)
        elif rule.mounted and where is not None:
            ident = f"{where}:{rule.device}:{rule.diskseq}"
            states[path] = MountState(path, True, ident, rule.on_remove, rule=True)
        else:
            states[path] = MountState(path, False, None, rule.on_remove, rule=True)
    return states


def missing_mounts(unit: Unit, mounts: Mapping[str, MountState]) -> tuple[str, ...]:
    """The unit's required paths that are not mounted (in the unit's order: sorted)."""
    return tuple(p for p in unit.requires_mounts if not mounts.get(p, _absent(p)).mounted)


def stopping_mounts(missing: Sequence[str], mounts: Mapping[str, MountState]) -> tuple[str, ...]:
    """Of the missing paths, those whose units must stop (``on_remove: stop``; a path never seen: stop)."""
    return tuple(p for p in missing if mounts.get(p, _absent(p)).on_remove != ON_REMOVE_IGNORE)


def mount_ids(unit: Unit, mounts: Mapping[str, MountState]) -> dict[str, str]:
    """The identities of the unit's required mounts that are there (what it is started on)."""
    found = {p: mounts[p].ident for p in unit.requires_mounts if p in mounts and mounts[p].mounted}
    return {p: ident for p, ident in found.items() if ident is not None}


def stale_mounts(unit: Unit, started_on: Mapping[str, str] | None,
                 mounts: Mapping[str, MountState]) -> tuple[str, ...]:
    """Required paths mounted now by another mount than the one the unit was started on (None: not
    known; nothing is stale)."""
    if started_on is None:
        return ()
    now = mount_ids(unit, mounts)
    return tuple(p for p in unit.requires_mounts if p in now and started_on.get(p) != now[p])


def units_requiring(units: Mapping[str, Unit], path: str) -> list[str]:
    """The names of the units that require ``path``, sorted."""
    return sorted(name for name, unit in units.items() if path in unit.requires_mounts)


@dataclass
class MountNews:
    """What ``sync_mounts`` changed for the units that require ``path``: for the journal."""

    path: str
    held: list[str] = field(default_factory=list)  # now wait for it (were not waiting for it before)
    released: list[str] = field(default_factory=list)  # may run again: it (and their other mounts) is back


def sync_mounts(desired: Mapping[str, Unit], policies: Mapping[str, UnitPolicy],
                mounts: Mapping[str, MountState]) -> dict[str, MountNews]:
    """Bring the policies up to date with the mounts, after ``sync_policies`` and before ``plan``:

    - a unit with a required mount missing is held (``UnitPolicy.hold``): it waits, and is never
      (re)started by its policy until its mounts are all there;
    - a held unit whose mounts are all there is released (``UnitPolicy.release``): started as at boot;
    - a running unit whose mounts at start are not known (adopted when the supervisor started) is taken
      to run on the current ones.

    Returns the changes by path. (Changes the policies; no I/O.)"""
    news: dict[str, MountNews] = {}

    def note(path: str) -> MountNews:
        return news.setdefault(path, MountNews(path))

    for name, unit in desired.items():
        policy = policies.get(name)
        if policy is None or not unit.requires_mounts:
            continue
        if policy.started_at is not None and policy.started_on is None:
            policy.started_on = mount_ids(unit, mounts)
        missing = missing_mounts(unit, mounts)
        if missing:
            if missing != policy.waiting_for:
                for path in missing:
                    if path not in policy.waiting_for:
                        note(path).held.append(name)
                policy.hold(missing)
        elif policy.held:
            for path in policy.waiting_for:
                note(path).released.append(name)
            policy.release()
    return news


def annotate_dependents(storage_status: Mapping[str, Any], units: Mapping[str, Unit]) -> None:
    """Add ``dependents`` (the units that require its path) to each mount and rule of a
    ``storage.status`` reply (``{"storage": {"mounts": [...], "rules": [...]}}``), in place."""
    storage = storage_status.get("storage")
    if not isinstance(storage, Mapping):
        return
    for key in ("mounts", "rules"):
        for entry in storage.get(key) or ():
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entry["dependents"] = units_requiring(units, entry["path"])
