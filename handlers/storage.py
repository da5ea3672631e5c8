"""Mounts block devices by rule (``mounts:``), and unmounts them when they go away.

Level-triggered: any block uevent (or a config change, or a resync) marks it dirty; a reconcile
observes block devices (sysfs, with filesystem facts from udev's database or blkid), the mount table
(/proc/self/mountinfo), plans (``supervisor.storage.plan``, pure) and applies the plan:

- ``Unmount``: lazily (MNT_DETACH) when the device was removed or its medium changed, else a normal
  unmount (lazily only if busy); then the handler observes and plans again before mounting anything
  (a device's cached page contents may be stale until the old mount is gone);
- ``Fsck``: ``fsck -a -t TYPE DEV`` (exit 0 or 1 is clean; 2 is logged; worse fails the mount);
- ``Mount``: mount(2) with the rule's flags (``nodev,nosuid`` unless the rule says ``dev``/``suid``);
  a read-only device is mounted read-only (as mount(8) does);
- ``Adopt``/``Forget``: bookkeeping of the mounts the handler owns.

Every mount change is published as ``MountChanged(path, state, device)`` (the units handler reacts to
it) and written to the journal. A failed mount is not retried until its device's medium or the rules
change; neither is a mount someone unmounted by hand."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from supervisor import mounts as sysmounts
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event
from supervisor.process import ProcessManager
from supervisor.sources.udev_events import BlockEvent, MountChanged
from supervisor.storage.observe import Observer, Prober
from supervisor.storage.plan import Adopt, Forget, Fsck, Held, Known, Mount, Plan, Unmount, plan
from supervisor.storage.rules import MS_RDONLY, MountRule, StorageRules, parse_storage

log = structlog.get_logger("handlers.storage")

MAX_PASSES = 4


def detach(path: str) -> None:
    """umount2(path, MNT_DETACH): the mount disappears now, the filesystem when its last user goes."""
    if sysmounts._libc.umount2(path.encode(), sysmounts.MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount -l {path}: {os.strerror(err)}")


@dataclass
class StorageStats:
    reconciles: int = 0
    passes: int = 0
    mounts: int = 0
    unmounts: int = 0
    failures: int = 0
    fscks: int = 0
    last_plan: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


RulesSource = Callable[[], Mapping[str, Any]]


class StorageHandler:
    name = "storage"
    kinds: tuple[type[Event], ...] = (BlockEvent, ConfigChanged)

    def __init__(self, processes: ProcessManager, bus: Bus, *, rules: Sequence[MountRule] = (),
                 config: RulesSource | None = None, observer: Observer | None = None,
                 fsck: Sequence[str] = ("fsck",), blkid: Sequence[str] = ("blkid",),
                 root: Path = Path("/")) -> None:
        """``rules`` are used as given; with ``config`` (a function returning the config in force) the
        rules are parsed from it at each config change (invalid rules: the last good ones stay).
        ``root`` is where rule paths live (the sandbox's directory; "/" on a real host)."""
        self.root = root
        self.processes = processes
        self.bus = bus
        self.config = config
        self.observer = observer or Observer(Prober(processes, blkid))
        self.fsck = tuple(fsck)
        self.rules: tuple[MountRule, ...] = tuple(rules)
        self.rule_errors: list[str] = []
        self.known: dict[str, Known] = {}
        self.held: dict[Held, str] = {}  # (path, device, diskseq) -> why
        self.stats = StorageStats()
        self._config_seen: object = None
        if config is not None:
            self._load_rules()

    # ---- rules ------------------------------------------------------------------------------------------
    def set_rules(self, rules: Sequence[MountRule]) -> None:
        rules = tuple(replace(r, path=str(self.root / r.path.lstrip("/"))) for r in rules)
        if rules != self.rules:
            self.rules = rules
            self.held.clear()

    def _load_rules(self) -> None:
        assert self.config is not None
        current = self.config()
        if current is self._config_seen:
            return
        self._config_seen = current
        parsed = parse_storage(current)
        if parsed.rules is None:
            self.rule_errors = [str(e) for e in parsed.errors]
            for error in self.rule_errors:
                log.error("storage rules rejected; keeping the last good ones", error=error)
            return
        self.rule_errors = []
        self.set_rules(parsed.rules.mounts)

    @classmethod
    def from_rules(cls, processes: ProcessManager, bus: Bus, rules: StorageRules,
                   **kwargs: Any) -> StorageHandler:
        return cls(processes, bus, rules=rules.mounts, **kwargs)

    # ---- reconcile --------------------------------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        self.stats.reconciles += 1
        if self.config is not None:
            self._load_rules()
        if full:
            self.observer.prober.clear()  # observe everything afresh
        if not self.rules and not self.known:
            return  # no rules, nothing of ours mounted: nothing to look at
        for _ in range(MAX_PASSES):
            self.stats.passes += 1
            observed = await self.observer.observe()
            the_plan = plan(self.rules, observed.devices, observed.mounts, self.known, self.held)
            self._note(the_plan)
            if not the_plan.actions:
                return
            unmounted = await self._apply_bookkeeping_and_unmounts(the_plan)
            if unmounted:
                continue  # observe again before mounting: see the module doc
            await self._apply_mounts(the_plan)
            if not any(isinstance(a, Mount | Fsck) for a in the_plan.actions):
                return
        # still not converged: the next event (or this poke) tries again
        log.debug("storage plan not converged after passes", passes=MAX_PASSES)

    def _note(self, the_plan: Plan) -> None:
        self.stats.last_plan = [_describe(a) for a in the_plan.actions]
        for note in the_plan.notes:
            if note not in self.stats.notes:
                log.warning("storage", note=note)
        self.stats.notes = list(the_plan.notes)

    async def _apply_bookkeeping_and_unmounts(self, the_plan: Plan) -> int:
        unmounted = 0
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
                unmounted += 1
        return unmounted

    async def _unmount(self, action: Unmount) -> None:
        started = time.monotonic()
        known = self.known.pop(action.path, None)
        try:
            if action.lazy:
                await asyncio.to_thread(detach, action.path)
            else:
                await asyncio.to_thread(sysmounts.umount, Path(action.path))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not mounted any more
                self.stats.failures += 1
                log.error("unmount failed", path=action.path, device=action.device, error=str(exc))
                if known is not None:
                    self.known[action.path] = known
                return
        took = time.monotonic() - started
        self.stats.unmounts += 1
        self.observer.prober.forget(action.device)
        if action.lazy:
            log.warning(f"{action.reason}; lazily unmounted", path=action.path, device=action.device,
                        rule=action.rule, seconds=round(took, 4))
        else:
            log.info(f"{action.reason}; unmounted", path=action.path, device=action.device, rule=action.rule,
                     seconds=round(took, 4))
        self.bus.publish(MountChanged(path=action.path, state="unmounted", device=action.device,
                                      fstype=known.fstype if known else None, rule=action.rule,
                                      reason=action.reason, on_remove=action.on_remove,
                                      seconds=round(took, 4)))

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
                    self._failed(action, str(exc2), time.monotonic() - started)
                    return
                log.warning("device is read-only; mounted read-only", device=action.device, path=action.path)
            else:
                self._failed(action, str(exc), time.monotonic() - started)
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

    def _failed(self, action: Mount, reason: str, took: float) -> None:
        self.stats.failures += 1
        self.held[(action.path, action.device, action.diskseq)] = reason
        log.error("mount failed; not retried until the device or the rules change", path=action.path,
                  device=action.device, rule=action.rule, error=reason)
        self.bus.publish(MountChanged(path=action.path, state="failed", device=action.device,
                                      fstype=action.fstype, rule=action.rule, reason=reason,
                                      on_remove=action.on_remove, seconds=round(took, 4)))

    # ---- reporting ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        s = self.stats
        probes = self.observer.prober.stats
        return {
            "rules": [{"key": r.key, "match": r.match.describe(), "path": r.path,
                       "fstype": r.fstype or "auto", "options": r.options.text, "fsck": r.fsck,
                       "on_remove": r.on_remove, "auto": r.auto} for r in self.rules],
            "rule_errors": list(self.rule_errors),
            "mounts": [{"path": k.path, "device": k.devname, "fstype": k.fstype, "rule": k.rule,
                        "diskseq": k.diskseq} for k in sorted(self.known.values(), key=lambda k: k.path)],
            "held": [{"path": p, "device": d, "diskseq": q, "reason": why}
                     for (p, d, q), why in self.held.items()],
            "notes": list(s.notes),
            "last_plan": list(s.last_plan),
            "counters": {"reconciles": s.reconciles, "passes": s.passes, "mounts": s.mounts,
                         "unmounts": s.unmounts, "failures": s.failures, "fscks": s.fscks,
                         "blkid_probes": probes.probes, "blkid_cached": probes.cached,
                         "blkid_failures": probes.failures},
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
