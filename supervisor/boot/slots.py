"""PID 1's side of an installed disk's A/B boot slots (docs/install.md, "Upgrade and rollback").

A boot from an installed disk has ``corral.slot=A|B`` on its kernel command line (osdisk/bootmenu.py).
After the storage phase (the journal writes to the state partition by then) PID 1 reads GRUB's
environment block and classifies the boot (osdisk/selection.py, pure):

* a **trial** (the first boot of a new version): it arms ``corral.upgrade.trial_timeout`` and takes
  over the kernel's softdog that PID 1 opened as its first act (supervisor/watchdog.py; opened here
  when that did not happen), petted from the loop: a hung loop reboots too. Ready with every
  system unit up -> marked good (``default_slot`` = this slot; the watchdog is closed). The limit passed
  first -> the reason is journalled and written to the block, and the machine reboots through the
  orderly shutdown (the next boot is the default slot). PID 1 exiting panics the kernel: ``panic=10``
  reboots it.
* a **fallback** after a failed trial (``trial_pending`` names the other slot): the failed boot's
  journal records are copied to ``/var/log/corral/rolled-back/`` on the state partition, ``corral
  status`` says ``upgrade to version V rolled back: <reason>`` (kept in ``/var/lib/corral/os/rollback.json``
  until a later upgrade is marked good), and the block forgets the trial.

The sandbox never arms a watchdog (it shares the host's kernel) and uses ``<dir>/osdisk/`` as its disk
(``esp/grub/grubenv``, ``slots/A``, ``slots/B``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from osdisk import bootdisk, selection
from osdisk.selection import BootKind, BootVerdict, TrialStep
from supervisor.atomic import remove_durably, write_atomic
from supervisor.boot.context import BootContext
from supervisor.journal import log_files
from supervisor.tasks import spawn_task
from supervisor.watchdog import MARGIN, MODULE, Watchdog, adopt

log = structlog.get_logger("supervisor.slots")

TRIAL_TIMEOUT = 900.0  # seconds; corral.upgrade.trial_timeout (TCG boots take 1-4 minutes to ready)
KEEP_MAX_BYTES = 16 << 20  # at most this much of the failed boot's journal is kept
REPORT = "os/rollback.json"  # under the state dir


def keep_boot_records(log_dir: Path, boot_id: str, dest: Path, limit: int = KEEP_MAX_BYTES) -> int:
    """Copy the journal records of boot ``boot_id`` (every journal file, oldest first) into ``dest``;
    returns how many. Blocking."""
    needle = f'"boot":"{boot_id}"'.encode()
    kept, size = 0, 0
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tmp.open("wb") as out:
        os.fchmod(out.fileno(), 0o640)
        for path in log_files(log_dir):
            try:
                with path.open("rb") as f:
                    for line in f:
                        if needle not in line or size + len(line) > limit:
                            continue
                        try:
                            if json.loads(line).get("boot") != boot_id:
                                continue
                        except ValueError:
                            continue
                        out.write(line)
                        kept, size = kept + 1, size + len(line)
            except OSError:
                continue
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)
    return kept


class BootSlots:
    """What this boot is to the installed disk, and the trial's clock; ``status()`` for corral status."""

    def __init__(self, ctx: BootContext, cmdline: str, reboot: Callable[[str], None], started: float,
                 location: bootdisk.Location | None = None, watchdog: Watchdog | None = None) -> None:
        """``started``: when PID 1 started, on time.monotonic()'s clock (the trial's limit runs from it);
        ``reboot``: the supervisor's request (its orderly shutdown); ``watchdog``: by default the one
        PID 1 opened as its first act on a trial's boot (supervisor/watchdog.py), else a closed one."""
        self.ctx = ctx
        self.slot = selection.slot_of_cmdline(cmdline)
        self.location = location or (bootdisk.Location.directories(ctx.paths.prefix / "osdisk")
                                     if ctx.sandbox else bootdisk.Location())
        self.reboot = reboot
        self.verdict = BootVerdict(BootKind.NOT_INSTALLED)
        self.trial: str = ""  # "", "pending", "good", "expired", "cancelled" (os rollback)
        self.report: dict[str, Any] | None = None
        self.watchdog = watchdog if watchdog is not None else adopt()
        self._clock: asyncio.Task[None] | None = None
        self._started = started
        self.not_up: Callable[[], Mapping[str, str]] = dict  # the system units not up (set once they run)

    @classmethod
    async def for_boot(cls, ctx: BootContext, cmdline: str | None, reboot: Callable[[str], None],
                       started: float, not_up: Callable[[], Mapping[str, str]]) -> BootSlots:
        """For PID 1: ``cmdline`` None is read from the paths' cmdline file; ``started`` is when PID 1
        started (time.time()); ``not_up`` names the system units not up (for a trial's reason)."""
        if cmdline is None:
            cmdline = await asyncio.to_thread(_read_cmdline, ctx.paths.cmdline_file)
        slots = cls(ctx, cmdline, reboot, time.monotonic() - (time.time() - started))
        slots.not_up = not_up
        return slots

    @property
    def report_path(self) -> Path:
        return self.ctx.paths.state_dir / REPORT

    async def start(self) -> None:
        self.report = await asyncio.to_thread(_read_report, self.report_path)
        if self.slot is not None:
            try:
                env = await asyncio.to_thread(bootdisk.read_env, self.location)
            except bootdisk.BootDiskError as exc:
                # an early watchdog keeps its deadline: the machine goes back to the default slot
                self.ctx.degrade("slots", f"booted from slot {self.slot}; its boot selection cannot be "
                                          f"read: {exc}")
                return
            self.verdict = selection.classify(self.slot, selection.BootEnv.of(env))
        verdict = self.verdict
        if verdict.kind is BootKind.TRIAL:
            await self._start_trial()
            return
        if self.watchdog.is_open:  # the trial marker on a boot that is not a trial (the block says so)
            log.warning("this boot is no trial: its watchdog closed", boot=verdict.kind.value)
            self.watchdog.disarm()
        if verdict.kind is BootKind.ROLLED_BACK:
            await self._report_rollback(verdict)

    def limit(self) -> float:
        value = (self.ctx.setting("upgrade", {}) or {}).get("trial_timeout", TRIAL_TIMEOUT)
        return float(value)

    async def _start_trial(self) -> None:
        limit = self.limit()
        self.trial = "pending"
        log.info(f"trial boot of version {self.verdict.version or '?'} on slot {self.slot}: it becomes the "
                 f"default once ready, or is rolled back after {limit:g} s", slot=self.slot, limit=limit)
        await self._update(selection.trial_started(self.ctx.journal.boot_id))
        if not self.ctx.sandbox:
            await self.watchdog.arm(self._modprobe)
        self._clock = spawn_task(self._expire(limit), name="trial clock")
        self.ctx.stops.add("trial watchdog", self._stop)

    async def _modprobe(self) -> str:
        status, _, err = await self.ctx.processes.run(["modprobe", MODULE, f"soft_margin={MARGIN}"],
                                                      name="modprobe softdog", timeout=30)
        return "" if status.returncode == 0 else err.decode(errors="replace").strip()[:200]

    async def _stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
        # the watchdog stays open through the shutdown: a shutdown that hangs reboots all the same

    async def _expire(self, limit: float) -> None:
        while True:
            elapsed = time.monotonic() - self._started
            if selection.trial_step(False, elapsed, limit) is TrialStep.EXPIRED:
                break
            await asyncio.sleep(max(limit - elapsed, 0.05))
        if self.trial != "pending":
            return
        self.trial = "expired"
        reason = f"not ready within {limit:g} s (corral.upgrade.trial_timeout)"
        not_up = self.not_up()
        if not_up:
            reason += "; system units not up: " + ", ".join(sorted(not_up))
        log.error(f"upgrade to version {self.verdict.version or '?'} failed its trial: {reason}; rebooting "
                  f"to slot {selection.other(self.slot or 'A')}", slot=self.slot, reason=reason)
        await self._update(selection.give_up(reason))
        self.reboot("reboot")

    def on_ready(self) -> None:
        """The boot said ready (every system unit up): a trial within its limit is marked good."""
        if self.verdict.kind is not BootKind.TRIAL or self.trial != "pending":
            return
        elapsed = time.monotonic() - self._started
        if selection.trial_step(True, elapsed, self.limit()) is not TrialStep.GOOD:
            return
        self.trial = "good"
        if self._clock is not None:
            self._clock.cancel()
        spawn_task(self._commit(), name="trial good")

    def cancel_trial(self) -> bool:
        """``os rollback`` during a trial: it is neither marked good nor timed any more. True when a
        trial was pending (the caller then clears it from the block with the rollback)."""
        if self.verdict.kind is not BootKind.TRIAL or self.trial != "pending":
            return False
        self.trial = "cancelled"
        if self._clock is not None:
            self._clock.cancel()
        self.watchdog.disarm()
        log.info("trial cancelled by os rollback", slot=self.slot)
        return True

    async def _commit(self) -> None:
        slot = self.slot or "A"
        if not await self._update(selection.mark_good(slot)):
            return
        self.watchdog.disarm()
        self.report = None
        await asyncio.to_thread(remove_durably, self.report_path)
        log.info(f"upgrade to version {self.verdict.version or '?'} committed: slot {slot} is the default",
                 slot=slot)

    async def _report_rollback(self, verdict: BootVerdict) -> None:
        version = verdict.version or "?"
        kept = None
        if verdict.failed_boot:
            name = f"{_safe(version)}-{_safe(verdict.failed_boot)}.jsonl"
            dest = self.ctx.paths.log_dir / "rolled-back" / name
            try:
                count = await asyncio.to_thread(keep_boot_records, self.ctx.paths.log_dir,
                                                verdict.failed_boot, dest)
                kept = {"path": str(dest), "records": count}
            except OSError as exc:
                log.warning("the failed boot's journal could not be kept", error=str(exc))
        self.report = {"version": version, "slot": verdict.failed_slot, "reason": verdict.reason,
                       "boot": verdict.failed_boot or None, "journal": kept,
                       "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "message": f"upgrade to version {version} rolled back: {verdict.reason}"}
        await asyncio.to_thread(_write_report, self.report_path, self.report)
        log.error(self.report["message"], slot=verdict.failed_slot, booted=self.slot, journal=kept)
        await self._update(selection.reported())

    async def _update(self, changes: selection.Changes) -> bool:
        try:
            await asyncio.to_thread(bootdisk.update_env, self.location, changes)
            return True
        except bootdisk.BootDiskError as exc:
            log.error("the boot selection could not be written", error=str(exc), changes=sorted(changes))
            self.ctx.degrade("slots", f"the boot selection could not be written: {exc}")
            return False

    def status(self) -> dict[str, Any]:
        trial = self.verdict.kind is BootKind.TRIAL
        return {"slot": self.slot, "boot": self.verdict.kind.value, "trial": self.trial or None,
                "trial_version": (self.verdict.version or None) if trial else None,
                "rolled_back": self.report}


def _read_cmdline(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:65536]
    except OSError:
        return ""


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_+" else "_" for c in text)[:64] or "_"


def _read_report(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes()[:65536])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_report(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(report) + "\n").encode(), 0o644)
