"""Carries out ``storage.sourced``'s plan: bind mounts (mount(2) MS_BIND, then a remount with the rule's
flags) and NFS mounts (``mount.nfs SOURCE PATH -o OPTIONS``, spawned through the process module with a
timeout). Part of the storage handler: its reconcile calls ``apply`` with the mount table it read.

An NFS mount runs in a task of its own, so a server that does not answer never holds up the storage
handler's loop, the boot or anything else. A failed try is retried after the one Backoff (``attempts``
tries in all); then the rule has given up, with the last error, until ``corral storage mount`` asks again
or the rules change. Every try, failure and give-up is a journal line; ``status`` lists each rule's state.
The handler is asked to reconcile again (``poke``) when a try ends or a retry is due."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from storage.rules import MountRule
from storage.sourced import (
    Attach,
    Attempt,
    Detach,
    Lost,
    Rekey,
    SourcedKnown,
    nfs_argv,
    plan_sourced,
    sourced_rules,
)
from supervisor import mounts as sysmounts
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events.udev import MountChanged
from supervisor.mountinfo import MountEntry, read_mountinfo
from supervisor.process import ProcessManager
from supervisor.tasks import spawn_task

log = structlog.get_logger("handlers.storage")

MS_REMOUNT = 32
NFS_ATTEMPTS = 5
NFS_TIMEOUT = 90.0  # one mount.nfs run (its own retries for a foreground mount last 2 minutes)


def nfs_backoff() -> Backoff:
    """A rule's retries: after 5 s, then 10, 20, 40 (never reset: the rule succeeds or gives up)."""
    return Backoff(first=5.0, initial=10.0, cap=120.0, reset_after=float("inf"))


@dataclass(frozen=True)
class Tried:
    ok: bool
    error: str = ""
    mount_id: int = 0
    seconds: float = 0.0


class SourcedMounts:
    def __init__(self, processes: ProcessManager, bus: Bus, *, mount_nfs: str = "mount.nfs",
                 attempts: int = NFS_ATTEMPTS, timeout: float = NFS_TIMEOUT,
                 backoff: Callable[[], Backoff] = nfs_backoff,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.processes = processes
        self.bus = bus
        self.mount_nfs = mount_nfs
        self.max_attempts = attempts
        self.timeout = timeout
        self.make_backoff = backoff
        self.clock = clock
        self.poke: Callable[[], None] | None = None  # the storage handler's "reconcile again"
        self.rules: tuple[MountRule, ...] = ()
        self.known: dict[str, SourcedKnown] = {}  # rule key -> mount
        self.attempts: dict[str, Attempt] = {}
        self.backoffs: dict[str, Backoff] = {}
        self.held: dict[str, str] = {}  # rule key -> why
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.notes: tuple[str, ...] = ()
        self._timer: asyncio.TimerHandle | None = None

    def set_rules(self, rules: Sequence[MountRule]) -> None:
        """A rule that changed starts over: its attempts and hold are dropped."""
        new = {r.key: r for r in sourced_rules(rules)}
        old = {r.key: r for r in self.rules}
        for key in set(old) | set(new):
            if old.get(key) != new.get(key):
                self.attempts.pop(key, None)
                self.backoffs.pop(key, None)
                self.held.pop(key, None)
        self.rules = tuple(new.values())

    def request(self, rule: MountRule) -> None:
        """``corral storage mount``: try again now (after a give-up, a hold or a wait)."""
        self.attempts.pop(rule.key, None)
        self.backoffs.pop(rule.key, None)
        self.held.pop(rule.key, None)

    async def apply(self, mounts: Sequence[MountEntry]) -> None:
        now = self.clock()
        the_plan = plan_sourced(self.rules, mounts, self.known, self.attempts, busy=self.tasks,
                                held=self.held, now=now)
        for note in the_plan.notes:
            if note not in self.notes:
                log.warning("storage", note=note)
        self.notes = the_plan.notes
        for action in the_plan.actions:
            if isinstance(action, Lost):
                k = action.known
                del self.known[k.rule]
                self.held[k.rule] = action.reason
                log.warning("mount gone", path=k.path, device=k.source, rule=k.rule, reason=action.reason)
                self.bus.publish(MountChanged(path=k.path, state="unmounted", device=k.source,
                                              fstype=k.fstype, rule=k.rule, reason=action.reason))
            elif isinstance(action, Detach):
                await self._detach(action.known, action.reason)
            elif isinstance(action, Rekey):
                del self.known[action.known.rule]
                self.known[action.rule.key] = replace(action.known, rule=action.rule.key)
            elif isinstance(action, Attach):
                self.tasks[action.rule.key] = spawn_task(self._attach(action.rule, action.attempt),
                                                         name=f"storage:mount:{action.rule.key}")
        self._wake_at(the_plan.wake_at)

    async def mount_now(self, rule: MountRule) -> tuple[dict[str, object], str | None]:
        """``corral storage mount`` of a bind or NFS rule: tried again now; a bind is waited for, an NFS try
        goes on in the background (``mounting``; ``corral storage status`` tells the rest). The answer,
        and why it failed (None: it did not)."""
        self.request(rule)
        await self.apply(await asyncio.to_thread(read_mountinfo))
        task = self.tasks.get(rule.key)
        if task is not None and rule.kind == "bind":
            await asyncio.shield(task)
        state = next(s for s in self.status() if s["rule"] == rule.key)
        answer: dict[str, object] = {"rule": rule.key, "path": rule.path, "state": state["state"],
                                     "device": rule.source, "fstype": rule.fstype}
        if state["state"] in ("failed", "retrying"):
            return answer, f"{rule.key}: mounting {rule.source} at {rule.path} failed: {state.get('error')}"
        for note in self.notes:
            if state["state"] == "waiting" and note.startswith(f"{rule.key}:"):
                return answer, note
        return answer, None

    async def unmount(self, rule: MountRule, reason: str) -> str | None:
        """Unmount a rule's mount on request (never lazily) and hold it until ``request``; the reason it
        cannot, or None."""
        k = self.known.get(rule.key)
        if k is None:
            if self.held.get(rule.key) == reason:
                return None
            return f"{rule.key}: nothing is mounted at {rule.path}"
        try:
            await asyncio.to_thread(sysmounts.umount, Path(k.path), False)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                return f"{rule.key}: cannot unmount {rule.path}: {exc.strerror or exc}"
        del self.known[rule.key]
        self.held[rule.key] = reason
        log.info(reason, path=k.path, device=k.source, rule=k.rule)
        self.bus.publish(MountChanged(path=k.path, state="unmounted", device=k.source, fstype=k.fstype,
                                      rule=k.rule, reason=reason))
        return None

    async def stop(self) -> None:
        self._wake_at(None)
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()

    # ---- effects -----------------------------------------------------------------------------------------
    async def _attach(self, rule: MountRule, attempt: int) -> None:
        log.info("mounting", path=rule.path, source=rule.source, fstype=rule.fstype, rule=rule.key,
                 attempt=attempt, of=self.max_attempts)
        try:
            if rule.kind == "bind":
                tried = await asyncio.to_thread(bind_mount, rule)
            else:
                tried = await self._nfs(rule)
        finally:
            self.tasks.pop(rule.key, None)
        if tried.ok:
            self.known[rule.key] = SourcedKnown(rule.path, rule.key, rule.kind, rule.source,
                                                rule.fstype or rule.kind, tried.mount_id)
            self.attempts.pop(rule.key, None)
            self.backoffs.pop(rule.key, None)
            log.info("mounted", path=rule.path, device=rule.source, fstype=rule.fstype,
                     options=rule.options.text, rule=rule.key, seconds=round(tried.seconds, 4))
            self.bus.publish(MountChanged(path=rule.path, state="mounted", device=rule.source,
                                          fstype=rule.fstype, rule=rule.key, on_remove=rule.on_remove,
                                          seconds=round(tried.seconds, 4)))
        else:
            self._failed(rule, attempt, tried)
        if self.poke is not None:
            self.poke()

    def _failed(self, rule: MountRule, attempt: int, tried: Tried) -> None:
        backoff = self.backoffs.setdefault(rule.key, self.make_backoff())
        delay = backoff.next_delay()
        gave_up = attempt >= self.max_attempts
        self.attempts[rule.key] = Attempt(attempt, self.clock() + delay, tried.error, gave_up)
        if gave_up:
            log.error(f"mount failed; gave up after {attempt} attempts (corral storage mount {rule.key} "
                      "tries again)", path=rule.path, device=rule.source, fstype=rule.fstype, rule=rule.key,
                      error=tried.error)
        else:
            log.warning("mount failed; retrying", path=rule.path, device=rule.source, fstype=rule.fstype,
                        rule=rule.key, error=tried.error, attempt=attempt, of=self.max_attempts,
                        retry_in=delay)
        self.bus.publish(MountChanged(path=rule.path, state="failed", device=rule.source, fstype=rule.fstype,
                                      rule=rule.key, reason=tried.error, on_remove=rule.on_remove,
                                      seconds=round(tried.seconds, 4)))

    async def _nfs(self, rule: MountRule) -> Tried:
        started = time.monotonic()
        argv = nfs_argv(rule, self.mount_nfs)
        program = Path(argv[0]).name
        try:
            await asyncio.to_thread(Path(rule.path).mkdir, parents=True, exist_ok=True)
            status, out, err = await self.processes.run(argv, name="mount.nfs", timeout=self.timeout)
        except TimeoutError:
            return Tried(False, f"{program} did not finish in {self.timeout:g} s", seconds=self.timeout)
        except OSError as exc:
            return Tried(False, f"{argv[0]}: {exc.strerror or exc}", seconds=time.monotonic() - started)
        took = time.monotonic() - started
        if status.returncode != 0:
            text = " ".join((err or out).decode(errors="replace").split())[:300]
            return Tried(False, f"{program} exit {status.returncode}: {text}", seconds=took)
        mount_id = await asyncio.to_thread(top_mount_id, rule.path)
        return Tried(True, mount_id=mount_id, seconds=took)

    async def _detach(self, k: SourcedKnown, reason: str) -> None:
        try:
            await asyncio.to_thread(sysmounts.detach, k.path)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                log.error("unmount failed", path=k.path, device=k.source, rule=k.rule, error=str(exc))
                return
        del self.known[k.rule]
        log.info(f"{reason}; lazily unmounted", path=k.path, device=k.source, rule=k.rule)
        self.bus.publish(MountChanged(path=k.path, state="unmounted", device=k.source, fstype=k.fstype,
                                      rule=k.rule, reason=reason))

    def _wake_at(self, until: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if until is None or self.poke is None:
            return
        self._timer = asyncio.get_running_loop().call_later(max(0.0, until - self.clock()), self.poke)

    # ---- reporting -----------------------------------------------------------------------------------------
    def status(self) -> list[dict[str, object]]:
        now = self.clock()
        out: list[dict[str, object]] = []
        for rule in self.rules:
            tried = self.attempts.get(rule.key)
            entry: dict[str, object] = {"rule": rule.key, "kind": rule.kind, "source": rule.source,
                                        "path": rule.path, "fstype": rule.fstype,
                                        "options": rule.options.text}
            if rule.key in self.known:
                entry["state"] = "mounted"
            elif rule.key in self.tasks:
                entry["state"] = "mounting"
            elif rule.key in self.held:
                entry["state"], entry["reason"] = "unmounted", self.held[rule.key]
            elif tried is not None and tried.gave_up:
                entry["state"] = "failed"
            elif tried is not None:
                entry["state"] = "retrying"
                entry["retry_in"] = round(max(0.0, tried.next_at - now), 1)
            elif not rule.auto:
                entry["state"] = "noauto"
            else:
                entry["state"] = "waiting"
            if tried is not None:
                entry["attempts"] = tried.failures
                entry["error"] = tried.error
            out.append(entry)
        return out


def bind_mount(rule: MountRule) -> Tried:
    """mount(2) MS_BIND (MS_REC for rbind) of the source onto the rule's path (made as the source is: a
    directory, or an empty file for a file), then MS_REMOUNT|MS_BIND with the rule's flags; a remount
    that fails undoes the bind."""
    started = time.monotonic()
    source, target = Path(rule.source), Path(rule.path)
    try:
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.touch(mode=0o600)
        else:
            return Tried(False, f"{rule.source} does not exist", seconds=time.monotonic() - started)
        flags = sysmounts.MS_BIND | (sysmounts.MS_REC if rule.fstype == "rbind" else 0)
        sysmounts.mount_raw(source, target, None, flags)
    except OSError as exc:
        return Tried(False, f"bind {rule.source}: {exc.strerror or exc}", seconds=time.monotonic() - started)
    try:
        sysmounts.mount_raw("none", target, None, MS_REMOUNT | sysmounts.MS_BIND | rule.options.flags)
    except OSError as exc:
        with contextlib.suppress(OSError):
            sysmounts.detach(str(target))
        return Tried(False, f"remount {rule.path} ({rule.options.text}): {exc.strerror or exc}",
                     seconds=time.monotonic() - started)
    return Tried(True, mount_id=top_mount_id(rule.path), seconds=time.monotonic() - started)


def top_mount_id(path: str) -> int:
    """The id of the mount visible at ``path`` now (0: none)."""
    found = 0
    for m in read_mountinfo():
        if m.target == path:
            found = m.mount_id
    return found


def with_root(rule: MountRule, root: Path) -> MountRule:
    """A bind rule's source under ``root`` too (the sandbox's directory; "/" on a real host)."""
    if rule.kind != "bind":
        return rule
    return replace(rule, source=str(root / rule.source.lstrip("/")))

