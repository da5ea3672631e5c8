"""Mounts block devices by rule (``mounts:``), and unmounts them when they go away.

Level-triggered: any block uevent (or a config change, or a resync) marks it dirty; a reconcile
observes block devices (sysfs, with filesystem facts from udev's database or blkid), the mount table
(/proc/self/mountinfo), plans (``storage.plan``, pure) and applies the plan. What it
observes: after block uevents only, the devices they named (read again from sysfs; probed only if their
medium is new or a ``change`` uevent named them) plus the mount table, every other device as last seen;
at startup, on a resync and on a config change, every device. The handler keeps its own subscription
of the events for this (the runner only says "dirty"). The plan is applied:

- ``Unmount``: lazily (MNT_DETACH) when the device was removed or its medium changed, else a normal
  unmount (lazily only if busy); then the handler observes and plans again before mounting anything
  (a device's cached page contents may be stale until the old mount is gone);
- ``Fsck``: ``fsck -a -t TYPE DEV`` (exit 0 or 1 is clean; 2 is logged; worse fails the mount);
- ``Mount``: mount(2) with the rule's flags (``nodev,nosuid`` unless the rule says ``dev``/``suid``);
  a read-only device is mounted read-only (as mount(8) does);
- ``Adopt``/``Forget``: bookkeeping of the mounts the handler owns.

Every mount change is published as ``MountChanged(path, state, device)`` (the units handler reacts to
it) and written to the journal. A failed mount is not retried until its device's medium or the rules
change; neither is a mount someone unmounted by hand.

On request (the control socket: ``corral storage mount|unmount NAME``): ``request_unmount`` unmounts a
rule's mount and *suppresses* the rule until ``request_mount`` or the device is re-plugged (it leaves,
or its medium changes); ``request_mount`` lifts that (and a failed mount's hold), mounts a ``noauto``
rule too, and reconciles at once. Requests and reconciles take turns (one lock)."""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from storage.observe import BlockDevice, Observed, Observer, Prober
from storage.plan import Adopt, Forget, Fsck, Held, Known, Mount, Plan, Unmount, assign, plan
from storage.resolve import (
    DeviceSpec,
    find_devices,
    find_rule,
    parse_device_spec,
    resolve_path,
)
from storage.rules import MS_RDONLY, MountRule, StorageRules
from storage.sourced import SOURCED_KINDS, describe_source
from supervisor import mounts as sysmounts
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event
from supervisor.events.udev import BlockEvent, MountChanged
from supervisor.mountinfo import read_mountinfo
from supervisor.process import ProcessManager

from .sourced_mounts import SourcedMounts, with_root

log = structlog.get_logger("handlers.storage")

MAX_PASSES = 4
UNMOUNT_REQUESTED = "unmounted by request"


class StorageRequestError(Exception):
    """A ``mount``/``unmount``/``dev`` request cannot be done; the message says why, for a person."""


@dataclass(frozen=True)
class Suppressed:
    """A rule's mount unmounted on request: not mounted again until asked, or until ``device`` (with
    ``diskseq``) leaves or changes medium."""

    rule: str
    device: str
    diskseq: int | None
    major: int
    minor: int


@dataclass
class StorageStats:
    reconciles: int = 0
    passes: int = 0
    full_observations: int = 0
    partial_observations: int = 0
    mounts: int = 0
    unmounts: int = 0
    failures: int = 0
    fscks: int = 0
    last_plan: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


RulesSource = Callable[[], StorageRules]
"""The storage rules of the config in force (parsed once per generation by the config store)."""


def with_requested(rules: Sequence[MountRule], requested: set[str]) -> tuple[MountRule, ...]:
    """The rules as the plan sees them: a ``noauto`` rule mounted on request counts as automatic."""
    return tuple(replace(r, options=replace(r.options, auto=True)) if r.path in requested else r
                 for r in rules)


def replugged(suppressed: Mapping[str, Suppressed], devices: Sequence[BlockDevice]) -> dict[str, Suppressed]:
    """The unmounts on request to lift: their device left, or its medium changed (it was re-plugged)."""
    present = {(d.major, d.minor): d.diskseq for d in devices}
    return {path: s for path, s in suppressed.items()
            if (s.major, s.minor) not in present or present[(s.major, s.minor)] != s.diskseq}


def rule_to_unmount(name: str, rules: Sequence[MountRule], known: Mapping[str, Known],
                    root: Path) -> MountRule:
    """The rule a request to unmount ``name`` means: by its key or path, or by a device it has mounted."""
    rule = find_rule(name, rules, str(root))
    if rule is not None:
        return rule
    try:
        spec = parse_device_spec(name)
    except ValueError:
        spec = None
    for k in known.values():
        if spec is not None and spec.kind == "path" and spec.value == k.devname:
            return next(r for r in rules if r.path == k.path)
    raise StorageRequestError(f"{name!r} is neither a mounts: rule (its key or path) nor a device "
                              "a rule has mounted")


def mounted_or_why(rule: MountRule, known: Mapping[str, Known], held: Mapping[Held, str],
                   notes: Sequence[str]) -> dict[str, object]:
    """What a request to mount ``rule`` answers: the mount, or StorageRequestError saying why not."""
    k = known.get(rule.path)
    if k is not None:
        return {"rule": rule.key, "path": rule.path, "state": "mounted", "device": k.devname,
                "fstype": k.fstype}
    for (path, device, _), why in held.items():
        if path == rule.path:
            raise StorageRequestError(f"{rule.key}: mounting {device} at {rule.path} failed: {why}")
    for note in notes:
        if note.startswith(f"{rule.key}:"):
            raise StorageRequestError(note)
    raise StorageRequestError(f"{rule.key}: no device to mount at {rule.path} ({rule.match.describe()} "
                              "matches none that is not mounted already); it is mounted when one appears")


class StorageHandler:
    name = "storage"
    kinds: tuple[type[Event], ...] = (BlockEvent, ConfigChanged)
    config_keys: tuple[str, ...] | None = ("mounts", "corral.state")

    def __init__(self, processes: ProcessManager, bus: Bus, *, rules: Sequence[MountRule] = (),
                 config: RulesSource | None = None, observer: Observer | None = None,
                 fsck: Sequence[str] = ("fsck",), blkid: Sequence[str] = ("blkid",),
                 root: Path = Path("/"), sourced: SourcedMounts | None = None) -> None:
        """``rules`` are used as given; with ``config`` (a function returning the storage rules of the
        config in force) they follow it at each config change. ``root`` is where rule paths live (the
        sandbox's directory; "/" on a real host). ``sourced`` carries out the bind and NFS rules."""
        self.sourced = sourced or SourcedMounts(processes, bus)
        self.root = root
        self.processes = processes
        self.bus = bus
        self.config = config
        self.observer = observer or Observer(Prober(processes, blkid))
        self.fsck = tuple(fsck)
        self.rules: tuple[MountRule, ...] = tuple(rules)
        self.sourced.set_rules(self.rules)
        self.known: dict[str, Known] = {}
        self.held: dict[Held, str] = {}  # (path, device, diskseq) -> why
        self.suppressed: dict[str, Suppressed] = {}  # rule path -> the mount unmounted on request
        self.requested: set[str] = set()  # noauto rule paths mounted on request
        self.stats = StorageStats()
        self._config_seen: object = None
        self._lock = asyncio.Lock()
        self._events = bus.subscribe("storage:devices", *self.kinds, maxsize=4096)
        self._stale = True  # the next reconcile observes everything
        if config is not None:
            self._load_rules()

    # ---- rules ------------------------------------------------------------------------------------------
    def set_rules(self, rules: Sequence[MountRule]) -> None:
        rules = tuple(with_root(replace(r, path=str(self.root / r.path.lstrip("/"))), self.root)
                      for r in rules)
        self.sourced.set_rules(rules)
        if rules != self.rules:
            self.rules = rules
            self.held.clear()
            paths = {r.path for r in rules}
            self.suppressed = {p: s for p, s in self.suppressed.items() if p in paths}
            self.requested &= paths

    def _load_rules(self) -> None:
        assert self.config is not None
        current = self.config()
        if current is not self._config_seen:  # a new generation's rules (the same object otherwise)
            self._config_seen = current
            self.set_rules(current.mounts)

    @classmethod
    def from_rules(cls, processes: ProcessManager, bus: Bus, rules: StorageRules,
                   **kwargs: Any) -> StorageHandler:
        return cls(processes, bus, rules=rules.mounts, **kwargs)

    # ---- reconcile --------------------------------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        async with self._lock:
            await self._reconcile(full)

    def _drain(self) -> tuple[set[str], set[str], bool]:
        """The kernel names the pending block uevents named, the devnames ``change`` uevents named (their
        contents may have changed: probe again), and whether anything asks for a full observation (a
        resync, a config change, a uevent without a device)."""
        names: set[str] = set()
        changed: set[str] = set()
        everything = False
        while (event := self._events.get_nowait()) is not None:
            if isinstance(event, BlockEvent) and (event.devpath or event.devname):
                names.add((event.devpath or event.devname or "").rsplit("/", 1)[-1])
                if event.action == "change" and not event.coldplug and event.devname:
                    changed.add(event.devname)
            else:
                everything = True
        return names, changed, everything

    async def _reconcile(self, full: bool) -> None:
        self.stats.reconciles += 1
        names, changed, everything = self._drain()
        if self.config is not None and (full or everything):
            self._load_rules()  # rules change only with the config
        if not self.rules and not self.known and not self.sourced.known:
            self._stale = True  # events were not looked at: look at everything next time
            return  # no rules, nothing of ours mounted: nothing to look at
        full = full or everything or self._stale
        self._stale = False
        if full:
            self.observer.prober.forget_unproven()
        for devname in changed:
            self.observer.prober.forget(devname)
        await self._converge(full, names)
        await self.sourced.apply(await asyncio.to_thread(read_mountinfo))

    async def _converge(self, full: bool, names: set[str]) -> None:
        for _ in range(MAX_PASSES):
            self.stats.passes += 1
            observed = await self._observe(full, names)
            full = False  # another pass only re-reads what this one changed
            the_plan = plan(with_requested(self.rules, self.requested), observed.devices, observed.mounts,
                            self.known, self.held, self.suppressed)
            self._note(the_plan)
            if not the_plan.actions:
                return
            unmounted = await self._apply_bookkeeping_and_unmounts(the_plan)
            if unmounted:
                names = set(unmounted)
                continue  # observe again before mounting: see the module doc
            await self._apply_mounts(the_plan)
            return  # what it mounted is known; a mount that failed is held
        # still not converged: the next event (or this poke) tries again
        log.debug("storage plan not converged after passes", passes=MAX_PASSES)

    async def _observe(self, full: bool, names: set[str]) -> Observed:
        if full or not self.observer.complete:
            self.stats.full_observations += 1
            observed = await self.observer.observe()
        else:
            self.stats.partial_observations += 1
            observed = await self.observer.observe_named(names)
        for path, s in replugged(self.suppressed, observed.devices).items():
            del self.suppressed[path]
            log.info("device re-plugged; the rule mounts again", path=path, device=s.device, rule=s.rule)
        return observed

    def _note(self, the_plan: Plan) -> None:
        self.stats.last_plan = [_describe(a) for a in the_plan.actions]
        for note in the_plan.notes:
            if note not in self.stats.notes:
                log.warning("storage", note=note)
        self.stats.notes = list(the_plan.notes)

    async def _apply_bookkeeping_and_unmounts(self, the_plan: Plan) -> list[str]:
        """Applies Adopt, Forget and Unmount; returns the kernel names of the devices unmounted."""
        unmounted: list[str] = []
        for action in the_plan.actions:
            if isinstance(action, Adopt):
                k = action.known
                self.known[k.path] = k
                log.info("mount adopted", path=k.path, device=k.devname, rule=k.rule)
            elif isinstance(action, Forget):
                self.known.pop(action.path, None)
                self.held[(action.path, action.device, action.diskseq)] = action.reason
                log.warning("mount gone", path=action.path, device=action.device, reason=action.reason)
                self.bus.publish(MountChanged(path=action.path, state="unmounted", device=action.device,
                                              rule=action.rule, reason=action.reason))
            elif isinstance(action, Unmount):
                await self._unmount(action)
                unmounted.append(action.device.rsplit("/", 1)[-1])
        return unmounted

    async def _unmount(self, action: Unmount, lazy_if_busy: bool = True) -> OSError | None:
        """Unmounts (see the module doc); returns the error when the mount is still there."""
        started = time.monotonic()
        known = self.known.pop(action.path, None)
        try:
            if action.lazy:
                await asyncio.to_thread(sysmounts.detach, action.path)
            else:
                await asyncio.to_thread(sysmounts.umount, Path(action.path), lazy_if_busy)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted any more
                self.stats.failures += 1
                log.error("unmount failed", path=action.path, device=action.device, error=str(exc))
                if known is not None:
                    self.known[action.path] = known
                return exc
        took = time.monotonic() - started
        self.stats.unmounts += 1
        self.observer.prober.forget(action.device)
        if action.reason == UNMOUNT_REQUESTED:
            log.info(UNMOUNT_REQUESTED, path=action.path, device=action.device, rule=action.rule,
                     seconds=round(took, 4))
        elif action.lazy:
            log.warning(f"{action.reason}; lazily unmounted", path=action.path, device=action.device,
                        rule=action.rule, seconds=round(took, 4))
        else:
            log.info(f"{action.reason}; unmounted", path=action.path, device=action.device, rule=action.rule,
                     seconds=round(took, 4))
        self.bus.publish(MountChanged(path=action.path, state="unmounted", device=action.device,
                                      fstype=known.fstype if known else None, rule=action.rule,
                                      reason=action.reason, on_remove=action.on_remove,
                                      seconds=round(took, 4)))
        return None

    async def _apply_mounts(self, the_plan: Plan) -> None:
        fsck_failed: set[str] = set()
        for action in the_plan.actions:
            if isinstance(action, Fsck):
                ok, why = await self._fsck(action)
                if not ok:
                    fsck_failed.add(action.device)
                    mount = next(m for m in the_plan.mounts if m.device == action.device)
                    self._failed(mount, why, 0.0)
            elif isinstance(action, Mount) and action.device not in fsck_failed:
                await self._mount(action)

    async def _fsck(self, action: Fsck) -> tuple[bool, str]:
        self.stats.fscks += 1
        argv = [*self.fsck, "-a", "-t", action.fstype, action.device]
        try:
            status, out, err = await self.processes.run(argv, name="fsck", timeout=600)
        except (OSError, TimeoutError) as exc:
            return False, f"fsck failed: {exc!r}"
        code = status.returncode
        text = (err or out).decode(errors="replace").strip()[:300]
        if code in (0, 1):
            log.info("fsck done", device=action.device, status=code, corrected=code == 1)
            return True, ""
        if code == 2:
            log.warning("fsck suggests a reboot; mounting anyway", device=action.device)
            return True, ""
        return False, f"fsck exit {code}: {text}"

    async def _mount(self, action: Mount) -> None:
        started = time.monotonic()
        flags = action.flags
        spec = sysmounts.MountSpec(action.device, action.path, action.fstype, flags, action.data)
        try:
            await asyncio.to_thread(sysmounts.mount, spec, Path(action.path))
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES) and not flags & MS_RDONLY:
                spec = replace(spec, flags=flags | MS_RDONLY)
                try:
                    await asyncio.to_thread(sysmounts.mount, spec, Path(action.path))
                except OSError as exc2:
                    await self._mount_failed(action, str(exc2), time.monotonic() - started)
                    return
                log.warning("device is read-only; mounted read-only", device=action.device, path=action.path,
                            error=os.strerror(exc.errno or 0))
            else:
                await self._mount_failed(action, str(exc), time.monotonic() - started)
                return
        took = time.monotonic() - started
        self.known[action.path] = Known(action.path, action.device, action.major, action.minor,
                                        action.diskseq, action.rule, action.fstype, action.on_remove)
        self.stats.mounts += 1
        log.info("mounted", path=action.path, device=action.device, fstype=action.fstype,
                 options=action.options, rule=action.rule, seconds=round(took, 4))
        self.bus.publish(MountChanged(path=action.path, state="mounted", device=action.device,
                                      fstype=action.fstype, rule=action.rule, on_remove=action.on_remove,
                                      seconds=round(took, 4)))

    async def _mount_failed(self, action: Mount, reason: str, took: float) -> None:
        """A mount that failed because the medium changed under it (between probe and mount) is not a
        failure of the new medium: the change's uevent brings another look."""
        seen = [d for d in self.observer.devices.values() if d.devname == action.device]
        moved = await asyncio.to_thread(self.observer.medium_moved_on, seen) if seen else set()
        if moved:
            log.info("medium changed while it was being mounted; looking again", path=action.path,
                     device=action.device, error=reason)
            return
        self._failed(action, reason, took)

    def _failed(self, action: Mount, reason: str, took: float) -> None:
        self.stats.failures += 1
        self.held[(action.path, action.device, action.diskseq)] = reason
        log.error("mount failed; not retried until the device or the rules change", path=action.path,
                  device=action.device, rule=action.rule, error=reason)
        self.bus.publish(MountChanged(path=action.path, state="failed", device=action.device,
                                      fstype=action.fstype, rule=action.rule, reason=reason,
                                      on_remove=action.on_remove, seconds=round(took, 4)))

    # ---- requests (the control socket) --------------------------------------------------------------
    async def request_mount(self, name: str) -> dict[str, object]:
        """Mount a rule (named by key or path, or by a device it matches) now: lifts an unmount on request
        and a failed mount's hold, and mounts a ``noauto`` rule too. StorageRequestError when it is not
        mounted afterwards, saying why."""
        async with self._lock:
            rule = await self._rule_to_mount(name)
            if rule.kind in SOURCED_KINDS:
                answer, why = await self.sourced.mount_now(rule)
                if why is not None:
                    raise StorageRequestError(why)
                return answer
            if self.suppressed.pop(rule.path, None) is not None:
                log.info("mount requested; the unmount on request is lifted", path=rule.path, rule=rule.key)
            for key in [k for k in self.held if k[0] == rule.path]:
                del self.held[key]
            if not rule.auto:
                self.requested.add(rule.path)
            full = self._stale or not self.observer.complete
            self._stale = False
            await self._converge(full, set())
            return mounted_or_why(rule, self.known, self.held, self.stats.notes)

    async def request_unmount(self, name: str) -> dict[str, object]:
        """Unmount a rule's mount (named by the rule's key or path, or by its device) and keep it unmounted
        until ``request_mount`` or until the device is re-plugged. Never lazily: a busy mount stays, and
        StorageRequestError says so."""
        async with self._lock:
            await self._current()
            rule = rule_to_unmount(name, self.rules, self.known, self.root)
            if rule.kind in SOURCED_KINDS:
                why = await self.sourced.unmount(rule, UNMOUNT_REQUESTED)
                if why is not None:
                    raise StorageRequestError(why)
                return {"rule": rule.key, "path": rule.path, "state": "unmounted", "device": rule.source}
            k = self.known.get(rule.path)
            if k is None:
                if rule.path in self.suppressed:
                    s = self.suppressed[rule.path]
                    return {"rule": rule.key, "path": rule.path, "state": "unmounted", "device": s.device}
                raise StorageRequestError(f"{rule.key}: nothing is mounted at {rule.path}")
            error = await self._unmount(Unmount(k.rule, k.path, k.devname, UNMOUNT_REQUESTED, lazy=False,
                                                on_remove=k.on_remove), lazy_if_busy=False)
            if error is not None:
                why = error.strerror or str(error)
                raise StorageRequestError(f"{rule.key}: cannot unmount {rule.path}: {why}")
            self.suppressed[rule.path] = Suppressed(rule.key, k.devname, k.diskseq, k.major, k.minor)
            self.requested.discard(rule.path)
            return {"rule": rule.key, "path": rule.path, "state": "unmounted", "device": k.devname}

    async def resolve_device(self, text: str) -> dict[str, object]:
        """``LABEL=``/``UUID=``/``PARTUUID=``/``PARTLABEL=`` or a path -> the devices it names (by name).
        StorageRequestError when none."""
        try:
            spec = parse_device_spec(text)
        except ValueError as exc:
            raise StorageRequestError(str(exc)) from None
        async with self._lock:
            devices, devno = await self._devices_of(spec)
        if not devices:
            if devno is not None:
                raise StorageRequestError(f"{spec} is a block device ({devno[0]}:{devno[1]}) with no medium")
            raise StorageRequestError(f"no device has {spec}")
        return {"spec": str(spec), "devices": [d.to_dict() for d in devices]}

    async def _current(self) -> Observed:
        """The devices and mounts now (every device the first time and after ignored events)."""
        full = self._stale or not self.observer.complete
        self._stale = False
        return await self._observe(full, set())

    async def _devices_of(self, spec: DeviceSpec) -> tuple[list[BlockDevice], tuple[int, int] | None]:
        devno = None
        if spec.kind == "path":
            try:
                devno = await asyncio.to_thread(resolve_path, spec.value)
            except ValueError as exc:
                raise StorageRequestError(str(exc)) from None
        observed = await self._current()
        return find_devices(spec, observed.devices, devno), devno

    async def _rule_to_mount(self, name: str) -> MountRule:
        rule = find_rule(name, self.rules, str(self.root))
        if rule is not None:
            return rule
        devices = await self._named_devices(name)
        for key, devs in assign(self.rules, devices).items():
            if devs:
                return next(r for r in self.rules if r.key == key)
        names = ", ".join(d.devname for d in devices)
        raise StorageRequestError(f"no mounts: rule matches {names}; corral mounts devices only by rule")

    async def _named_devices(self, name: str) -> list[BlockDevice]:
        try:
            spec = parse_device_spec(name)
        except ValueError:
            spec = None
        if spec is None or (spec.kind == "path" and not name.startswith("/") and "[" in name):
            raise StorageRequestError(f"{name!r} is neither a mounts: rule (its key or path) nor a device")
        try:
            devices, _ = await self._devices_of(spec)
        except StorageRequestError:
            devices = []
        if not devices:
            raise StorageRequestError(f"{name!r} is neither a mounts: rule (its key or path) nor a device")
        return devices

    # ---- reporting ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        s = self.stats
        probes = self.observer.prober.stats
        return {
            "rules": [{"key": r.key, "match": describe_source(r), "path": r.path,
                       "fstype": r.fstype or "auto", "options": r.options.text, "fsck": r.fsck,
                       "on_remove": r.on_remove, "auto": r.auto} for r in self.rules],
            "mounts": [{"path": k.path, "device": k.devname, "fstype": k.fstype, "rule": k.rule,
                        "diskseq": k.diskseq} for k in sorted(self.known.values(), key=lambda k: k.path)],
            "held": [{"path": p, "device": d, "diskseq": q, "reason": why}
                     for (p, d, q), why in self.held.items()],
            "suppressed": [{"path": p, "rule": x.rule, "device": x.device, "diskseq": x.diskseq,
                            "reason": UNMOUNT_REQUESTED} for p, x in sorted(self.suppressed.items())],
            "requested": sorted(self.requested),
            "sourced": self.sourced.status(),  # bind and NFS rules: mounted, mounting, retrying, failed
            "notes": list(s.notes),
            "last_plan": list(s.last_plan),
            "counters": {"reconciles": s.reconciles, "passes": s.passes,
                         "full_observations": s.full_observations,
                         "partial_observations": s.partial_observations, "mounts": s.mounts,
                         "unmounts": s.unmounts, "failures": s.failures, "fscks": s.fscks,
                         "blkid_probes": probes.probes, "blkid_cached": probes.cached,
                         "blkid_failures": probes.failures},
            "probed": list(probes.recent),  # the last devices probed (not from udev's database)
        }


def _describe(action: object) -> str:
    if isinstance(action, Mount):
        return f"mount {action.device} {action.path} ({action.fstype}, {action.options})"
    if isinstance(action, Unmount):
        return f"unmount {action.path} ({action.reason}{', lazily' if action.lazy else ''})"
    if isinstance(action, Fsck):
        return f"fsck {action.device}"
    if isinstance(action, Adopt):
        return f"adopt {action.known.path} ({action.known.devname})"
    if isinstance(action, Forget):
        return f"forget {action.path} ({action.reason})"
    return repr(action)
