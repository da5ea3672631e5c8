"""Mounts whose source is not a block device: ``mounts:`` list entries of kind ``bind`` and ``nfs``. Pure:
rules x the mount table x what was tried -> actions.

- a rule with nothing mounted at its path, not held, not being tried, whose retry is due -> ``Attach``;
- a retry not due yet -> ``wake_at``, the earliest due time (the handler reconciles again then);
- a rule that failed ``max_attempts`` times has given up: it is not tried again until ``corral storage
  mount`` asks or the rules change (the attempts are the caller's: ``Attempt``);
- a mount it made that is still there stays; one that is gone (unmounted by hand) -> ``Lost``: held, not
  mounted again until the rules change or a request, as a block device's mount unmounted by hand;
- a mount it made whose rule is gone -> ``Detach`` (lazily: a gone NFS server must not block anything),
  unless a rule of another key asks for the same (the list changed before it) -> ``Rekey``;
- something else mounted at the path already -> a note; nothing is mounted over it.

Several rules may share a path (list entries, as fstab lines): the first in order that is mounted, or
being tried, has it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from storage.rules import MountRule
from supervisor.mountinfo import MountEntry

SOURCED_KINDS = ("bind", "nfs")


@dataclass(frozen=True)
class SourcedKnown:
    """A bind or NFS mount the handler made: ``mount_id`` is the mount table's id of it."""

    path: str
    rule: str
    kind: str
    source: str
    fstype: str
    mount_id: int


@dataclass(frozen=True)
class Attempt:
    """What was tried for a rule: ``failures`` in a row, when the next try is due, the last error."""

    failures: int = 0
    next_at: float = 0.0
    error: str = ""
    gave_up: bool = False


@dataclass(frozen=True)
class Attach:
    rule: MountRule
    attempt: int  # 1 for the first try


@dataclass(frozen=True)
class Detach:
    known: SourcedKnown
    reason: str


@dataclass(frozen=True)
class Rekey:
    """A mount whose rule moved in the list (mounts[2] is mounts[1] now): the same mount, the new key."""

    known: SourcedKnown
    rule: MountRule


@dataclass(frozen=True)
class Lost:
    known: SourcedKnown
    reason: str = "unmounted outside corral"


SourcedAction = Attach | Detach | Lost | Rekey


@dataclass(frozen=True)
class SourcedPlan:
    actions: tuple[SourcedAction, ...]
    notes: tuple[str, ...] = ()
    wake_at: float | None = None


def sourced_rules(rules: Iterable[MountRule]) -> tuple[MountRule, ...]:
    return tuple(r for r in rules if r.kind in SOURCED_KINDS)


def plan_sourced(rules: Sequence[MountRule], mounts: Sequence[MountEntry], known: Mapping[str, SourcedKnown],
                 attempts: Mapping[str, Attempt], *, busy: Iterable[str] = (), held: Iterable[str] = (),
                 now: float) -> SourcedPlan:
    """``rules``: every mount rule (those of other kinds are left out here); ``known`` and ``attempts`` by
    rule key; ``busy``: rule keys being tried now; ``held``: rule keys not to mount again (lost)."""
    wanted = [r for r in sourced_rules(rules) if r.auto]
    by_key = {r.key: r for r in wanted}
    ids = {m.mount_id for m in mounts}
    visible: dict[str, MountEntry] = {}
    for entry in mounts:
        visible[entry.target] = entry
    busy_keys, held_keys = set(busy), set(held)
    actions: list[SourcedAction] = []
    notes: list[str] = []
    taken: dict[str, str] = {}  # path -> rule key that has it
    for key, k in sorted(known.items()):
        rule = by_key.get(key)
        if k.mount_id not in ids:
            actions.append(Lost(k))
            continue
        if rule is None:
            moved = next((r for r in wanted if r.key not in known and (r.kind, r.source, r.path) ==
                          (k.kind, k.source, k.path)), None)
            if moved is not None and moved.key not in taken.values():
                actions.append(Rekey(k, moved))
                taken[k.path] = moved.key
                continue
        if rule is None or rule.path != k.path or rule.source != k.source:
            actions.append(Detach(k, "rule removed" if rule is None else "rule changed"))
            continue
        taken[k.path] = key
    for key in sorted(busy_keys):
        rule = by_key.get(key)
        if rule is not None:
            taken.setdefault(rule.path, key)
    wake_at: float | None = None
    for rule in wanted:
        if rule.key in held_keys or rule.key in busy_keys:
            continue
        if rule.path in taken:
            if taken[rule.path] != rule.key:
                notes.append(f"{rule.key}: {rule.path} has {taken[rule.path]}'s mount; "
                             f"{rule.source} is not mounted there")
            continue
        m = visible.get(rule.path)
        if m is not None and rule.key not in known:
            notes.append(f"{rule.key}: {rule.path} is occupied by {m.source} ({m.fstype}); not mounting")
            continue
        tried = attempts.get(rule.key, Attempt())
        if tried.gave_up:
            continue
        if tried.next_at > now:
            wake_at = tried.next_at if wake_at is None else min(wake_at, tried.next_at)
            taken[rule.path] = rule.key  # a later rule at this path waits for this one's retries
            continue
        taken[rule.path] = rule.key
        actions.append(Attach(rule, tried.failures + 1))
    return SourcedPlan(tuple(actions), tuple(notes), wake_at)


def nfs_argv(rule: MountRule, helper: str = "mount.nfs") -> list[str]:
    """``mount.nfs SOURCE PATH -o OPTIONS`` (``mount.nfs4`` for nfs4): mount.nfs takes its first two
    arguments as the export and the mount point whatever they look like (it reads its options from the
    third on), and the options are one value of ``-o``, checked by the parser (``storage.rules``)."""
    program = helper + "4" if rule.fstype == "nfs4" and not helper.endswith("4") else helper
    argv = [program, rule.source, rule.path]
    if rule.options.data:
        argv += ["-o", rule.options.data]
    return argv


def describe_source(rule: MountRule) -> str:
    """What a rule mounts, for status and the journal."""
    if rule.kind == "bind":
        return f"{rule.source} ({rule.fstype})"
    if rule.kind == "nfs":
        return f"{rule.source} ({rule.fstype})"
    return rule.match.describe()
