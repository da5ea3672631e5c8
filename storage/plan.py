"""The storage plan: desired (mount rules) x observed (devices, mounts) -> actions. Pure.

Matching precedence. A device goes to the one rule that matches it most specifically: the rule's
strongest criterion ranks ``device`` (an exact path) > ``uuid`` > ``label`` > ``serial`` > ``device``
glob > ``fstype``; then more criteria beat fewer; then the earlier rule wins. A rule that gets several
devices mounts the first by device name (and says so in a note). Devices that are mounted anywhere
already, or that no rule matches, are left alone: nothing else is ever mounted.

``known`` are the mounts the handler made (or found in place at a rule's path and adopted), with the
medium (diskseq) they were made from. A known mount whose device is gone, or whose medium changed, is
unmounted lazily (MNT_DETACH); one whose rule is gone or no longer matches is unmounted (lazily only if
busy). A known mount someone else unmounted is forgotten and held: not mounted again until the device
or the rules change (a deliberate unmount is honoured). ``held`` also keeps failed mounts from being
retried on every event. ``suppressed`` rule paths (``corral storage unmount``) are left alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from storage.observe import BlockDevice
from storage.rules import Match, MountRule, glob_match
from supervisor.mountinfo import MountEntry

RANK_DEVICE = 6
RANK_UUID = 5
RANK_LABEL = 4
RANK_SERIAL = 3
RANK_GLOB = 2
RANK_FSTYPE = 1


@dataclass(frozen=True)
class Known:
    path: str
    devname: str
    major: int
    minor: int
    diskseq: int | None
    rule: str
    fstype: str | None = None
    on_remove: str = "stop"


@dataclass(frozen=True)
class Fsck:
    rule: str
    device: str
    fstype: str


@dataclass(frozen=True)
class Mount:
    rule: str
    device: str
    path: str
    fstype: str
    flags: int
    data: str
    options: str
    major: int
    minor: int
    diskseq: int | None
    on_remove: str = "stop"
    fsck: bool = False


@dataclass(frozen=True)
class Unmount:
    rule: str
    path: str
    device: str
    reason: str
    lazy: bool
    on_remove: str = "stop"


@dataclass(frozen=True)
class Adopt:
    """A mount found at a rule's path from a device the rule matches: it becomes known."""

    known: Known


@dataclass(frozen=True)
class Forget:
    """A known mount that is no longer there (unmounted outside corral)."""

    path: str
    device: str
    diskseq: int | None
    rule: str
    reason: str = "unmounted outside corral"


Action = Fsck | Mount | Unmount | Adopt | Forget
Held = tuple[str, str, int | None]  # (path, devname, diskseq)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()

    @property
    def unmounts(self) -> tuple[Unmount, ...]:
        return tuple(a for a in self.actions if isinstance(a, Unmount))

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return tuple(a for a in self.actions if isinstance(a, Mount))


def match_rank(match: Match, dev: BlockDevice) -> tuple[int, int] | None:
    """(strongest criterion's rank, number of criteria) when every criterion holds, else None."""
    ranks = []
    if match.device is not None:
        if match.device_is_glob:
            names = (dev.devname, *dev.links)
            if not any(glob_match(match.device, name) for name in names):
                return None
            ranks.append(RANK_GLOB)
        else:
            if match.device != dev.devname and match.device not in dev.links:
                return None
            ranks.append(RANK_DEVICE)
    fs = dev.fs
    if match.uuid is not None:
        if fs is None or fs.uuid is None or fs.uuid.lower() != match.uuid.lower():
            return None
        ranks.append(RANK_UUID)
    if match.label is not None:
        if fs is None or fs.label != match.label:
            return None
        ranks.append(RANK_LABEL)
    if match.serial is not None:
        if dev.serial is None or not glob_match(match.serial, dev.serial):
            return None
        ranks.append(RANK_SERIAL)
    if match.fstype is not None:
        if fs is None or fs.type != match.fstype:
            return None
        ranks.append(RANK_FSTYPE)
    if not ranks:
        return None
    return (max(ranks), len(ranks))


def assign(rules: Sequence[MountRule], devices: Iterable[BlockDevice]) -> dict[str, list[BlockDevice]]:
    """Each device to its best rule (see the module doc); per rule, devices sorted by name.

    Rules with an exact ``device``, a ``uuid`` or a ``label`` are looked up by that value (they cannot
    match any other device); only the others are tried on every device."""
    out: dict[str, list[BlockDevice]] = {r.key: [] for r in rules}
    by_device: dict[str, list[tuple[int, MountRule]]] = {}
    by_uuid: dict[str, list[tuple[int, MountRule]]] = {}
    by_label: dict[str, list[tuple[int, MountRule]]] = {}
    everywhere: list[tuple[int, MountRule]] = []
    for index, rule in enumerate(rules):
        m = rule.match
        if m.device is not None and not m.device_is_glob:
            by_device.setdefault(m.device, []).append((index, rule))
        elif m.uuid is not None:
            by_uuid.setdefault(m.uuid.lower(), []).append((index, rule))
        elif m.label is not None:
            by_label.setdefault(m.label, []).append((index, rule))
        else:
            everywhere.append((index, rule))
    for dev in devices:
        candidates = list(everywhere)
        for name in (dev.devname, *dev.links):
            candidates.extend(by_device.get(name, ()))
        fs = dev.fs
        if fs is not None:
            if fs.uuid is not None:
                candidates.extend(by_uuid.get(fs.uuid.lower(), ()))
            if fs.label is not None:
                candidates.extend(by_label.get(fs.label, ()))
        best: tuple[tuple[int, int, int], MountRule] | None = None
        for index, rule in candidates:
            rank = match_rank(rule.match, dev)
            if rank is None:
                continue
            score = (rank[0], rank[1], -index)
            if best is None or score > best[0]:
                best = (score, rule)
        if best is not None:
            out[best[1].key].append(dev)
    for devs in out.values():
        devs.sort(key=lambda d: (d.devname, d.minor))
    return out


def top_mounts(mounts: Iterable[MountEntry]) -> dict[str, MountEntry]:
    """The mount that is visible at each path (the last one mounted there)."""
    out: dict[str, MountEntry] = {}
    for m in mounts:
        out[m.target] = m
    return out


def plan(rules: Sequence[MountRule], devices: Sequence[BlockDevice], mounts: Sequence[MountEntry],
         known: Mapping[str, Known], held: Iterable[Held] = (), suppressed: Iterable[str] = ()) -> Plan:
    """``suppressed``: rule paths unmounted on request: nothing is mounted (or adopted) there, and the
    devices their rules match stay theirs (they are not mounted by another rule either)."""
    held_set = set(held)
    suppressed_paths = set(suppressed)
    active = [r for r in rules if r.auto and r.kind == "device"]  # binds and NFS: storage.sourced
    at_path: dict[str, list[MountRule]] = {}
    for r in active:
        at_path.setdefault(r.path, []).append(r)
    present = {d.devno: d for d in devices}
    visible = top_mounts(mounts)
    actions: list[Action] = []
    notes: list[str] = []
    settled: set[str] = set()  # rule paths that are mounted and stay so
    busy_paths: set[str] = set()  # rule paths being unmounted in this plan: mount them next time

    # 1. what is known: still there, still wanted, still the same medium?
    for path, k in sorted(known.items()):
        m = visible.get(path)
        if m is None or m.devno != (k.major, k.minor):
            actions.append(Forget(path, k.devname, k.diskseq, k.rule))
            held_set.add((path, k.devname, k.diskseq))  # honoured from this plan on
            continue
        dev = present.get((k.major, k.minor))
        here = at_path.get(path, [])
        rule = next((r for r in here if r.key == k.rule), here[0] if here else None)
        if dev is None:
            reason, lazy = "device removed", True
        elif k.diskseq is not None and dev.diskseq is not None and dev.diskseq != k.diskseq:
            reason, lazy = "medium changed", True
        elif rule is None:
            reason, lazy = "rule removed", False
        elif dev.fs is not None and match_rank(rule.match, dev) is None:
            reason, lazy = "rule no longer matches the device", False
        else:
            settled.add(path)
            continue
        actions.append(Unmount(k.rule, path, k.devname, reason, lazy=lazy, on_remove=k.on_remove))
        busy_paths.add(path)
    # A device is used by one group of rules: those that name it alike (RancherOS mounted one
    # [/dev/vdb, PATH] entry per path); a device mounted anywhere else is left alone.
    in_use: dict[tuple[int, int], Match] = {}
    for p in settled:
        here = at_path.get(p, [])
        k = known[p]
        rule = next((r for r in here if r.key == k.rule), here[0])
        in_use[(k.major, k.minor)] = rule.match
    foreign = {m.devno for m in mounts if m.target not in settled}
    leads: dict[Match, MountRule] = {}
    for r in active:
        leads.setdefault(r.match, r)

    # 2. each rule: satisfied, adoptable, occupied, or to be mounted
    assignment = assign(list(leads.values()), devices)
    taken: dict[str, str] = {}  # path -> the rule mounting there in this plan
    for rule in active:
        devs = assignment[leads[rule.match].key]
        if rule.path in settled or rule.path in busy_paths or rule.path in suppressed_paths:
            continue
        if rule.path in taken:
            if devs:
                notes.append(f"{rule.key}: {rule.path} gets {taken[rule.path]}'s device; "
                             f"{devs[0].devname} is not mounted there")
            continue
        m = visible.get(rule.path)
        if m is not None and m.major != 0:
            dev = present.get(m.devno)
            if dev is not None and dev in devs:
                actions.append(Adopt(Known(rule.path, dev.devname, dev.major, dev.minor, dev.diskseq,
                                           rule.key, m.fstype, rule.on_remove)))
                in_use[dev.devno] = rule.match
                taken[rule.path] = rule.key
                continue
        if m is not None:
            if devs:
                notes.append(f"{rule.key}: {rule.path} is occupied by {m.source} ({m.fstype}); not mounting")
            continue
        candidates = []
        for dev in devs:
            if in_use.get(dev.devno, rule.match) != rule.match:
                continue
            if dev.devno in foreign and dev.devno not in in_use:
                continue
            if (rule.path, dev.devname, dev.diskseq) in held_set:
                continue
            if rule.fstype is None and dev.fstype is None:
                if rule.match.device == dev.devname and dev.fs is not None:  # named, probed: say so
                    what = "a partition table" if dev.fs.pttype else "no filesystem"
                    notes.append(f"{rule.key}: {dev.devname} has {what}: not mounted (name a partition, "
                                 f"such as {dev.devname}1)" if dev.fs.pttype else
                                 f"{rule.key}: {dev.devname} has {what}: not mounted")
                continue  # nothing mountable on it (a partition table, or no filesystem)
            candidates.append(dev)
        if not candidates:
            continue
        dev = candidates[0]
        if len(candidates) > 1:
            names = ", ".join(d.devname for d in candidates)
            notes.append(f"{rule.key}: {len(candidates)} devices match ({names}); mounting {dev.devname}")
        fstype = rule.fstype or dev.fstype
        assert fstype is not None
        in_use[dev.devno] = rule.match
        taken[rule.path] = rule.key
        if rule.fsck and not any(isinstance(a, Fsck) and a.device == dev.devname for a in actions):
            actions.append(Fsck(rule.key, dev.devname, fstype))
        actions.append(Mount(rule.key, dev.devname, rule.path, fstype, rule.options.flags, rule.options.data,
                             rule.options.text, dev.major, dev.minor, dev.diskseq, rule.on_remove, rule.fsck))
    # parents before children (a rule under another rule's path)
    ordered: list[Action] = [a for a in actions if not isinstance(a, Fsck | Mount)]
    mounts_first = sorted((a for a in actions if isinstance(a, Mount)), key=lambda a: a.path.count("/"))
    for mount in mounts_first:
        ordered.extend(a for a in actions if isinstance(a, Fsck) and a.device == mount.device
                       and a not in ordered)
        ordered.append(mount)
    return Plan(tuple(ordered), tuple(notes))
