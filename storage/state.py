"""The state partition (``corral.state``): a pure decision and the adapter that carries it out.

``decide_state`` looks at the devices there are and answers one of:

- ``Found``: a device ``dev`` accepts (``LABEL=CORRAL_STATE`` or ``LABEL=RANCHER_STATE`` by default,
  else the configured ``LABEL=``/``UUID=``/path): mount it;
- ``CheckZero``: an ``autoformat`` candidate carries no signature; read its first MiB before deciding;
- ``Format``: that first MiB is all zero: ``mkfs.ext4 -L CORRAL_STATE`` it. A device with anything on
  it (a filesystem, a partition table, any non-zero byte in its first MiB, or a failed probe) is
  never formatted;
- ``Wait``: nothing usable yet and ``wait`` seconds have not passed: wait for a block uevent;
- ``RunFromRAM``: nothing after waiting, not required: nothing persists this boot;
- ``Emergency``: nothing after waiting and ``required``: the reason says what was looked for and why
  each candidate was refused.

``prepare_state`` loops observe -> decide -> act until mounted, RAM or emergency. ``bind_persistent``
binds the persistent directories from the mounted state into place (the boot wiring calls it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from storage.observe import BlockDevice, Observer
from storage.plan import match_rank
from storage.rules import StateRule
from supervisor.bus import Bus
from supervisor.events.udev import BlockEvent, StateStorage
from supervisor.mounts import MS_BIND, MountSpec, mount, mount_raw
from supervisor.process import ProcessManager

log = structlog.get_logger("storage.state")

ZERO_CHECK_BYTES = 1 << 20
STATE_MOUNT = Path("/run/corral/state")
# var/lib/user-docker: the user dockerd's data root (units/defaults/docker.yml), its swarm membership too.
PERSISTENT_DIRS = ("var/lib/corral", "var/lib/system-docker", "var/lib/docker", "var/lib/user-docker",
                   "var/log", "home", "opt")


@dataclass(frozen=True)
class Found:
    device: BlockDevice
    fstype: str
    formatted: bool = False


@dataclass(frozen=True)
class CheckZero:
    device: str


@dataclass(frozen=True)
class Format:
    device: str
    label: str
    fstype: str = "ext4"


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class RunFromRAM:
    reason: str


@dataclass(frozen=True)
class Emergency:
    reason: str


StateDecision = Found | CheckZero | Format | Wait | RunFromRAM | Emergency


def _candidate(devices: Sequence[BlockDevice], path: str) -> BlockDevice | None:
    for dev in devices:
        if dev.devname == path or path in dev.links:
            return dev
    return None


def decide_state(rule: StateRule, devices: Sequence[BlockDevice], elapsed: float,
                 zeroed: Mapping[str, bool], formatted: str | None = None,
                 format_failed: Mapping[str, str] | None = None) -> StateDecision:
    """What to do about the state partition now. Pure: ``devices`` are observed block devices with
    filesystem facts, ``elapsed`` the seconds spent looking, ``zeroed`` the zero checks made so far
    (device -> first MiB all zero), ``formatted`` a device this boot formatted."""
    format_failed = format_failed or {}
    refused: list[str] = []
    if formatted is not None:
        dev = _candidate(devices, formatted)
        if dev is not None and dev.fstype is not None:
            return Found(dev, rule.fstype or dev.fstype, formatted=True)
    for ref in rule.dev:  # in order of preference
        matches = sorted((d for d in devices if match_rank(ref, d) is not None), key=lambda d: d.devname)
        for dev in matches:
            fstype = rule.fstype or dev.fstype
            if fstype is not None:
                return Found(dev, fstype)
            if dev.devname not in rule.autoformat:
                refused.append(f"{dev.devname} has no filesystem")
    for path in rule.autoformat:
        dev = _candidate(devices, path)
        if dev is None:
            refused.append(f"{path} absent")
            continue
        if path in format_failed:
            refused.append(f"{path}: mkfs failed ({format_failed[path]})")
            continue
        if dev.fs is None:
            refused.append(f"{path} could not be probed; not formatted")
            continue
        if not dev.fs.blank:
            what = f"a filesystem ({dev.fs.type})" if dev.fs.type else \
                f"a partition table ({dev.fs.pttype})" if dev.fs.pttype else "several signatures"
            refused.append(f"{path} has {what}; not formatted")
            continue
        checked = zeroed.get(dev.devname)
        if checked is None:
            return CheckZero(dev.devname)
        if checked:
            return Format(dev.devname, rule.label)
        refused.append(f"{path} has data in its first MiB; not formatted")
    if elapsed < rule.wait:
        return Wait(rule.wait - elapsed)
    wanted = rule.dev_text
    if rule.dev_text.upper() == f"LABEL={rule.label}".upper() and len(rule.dev) > 1:
        wanted += " (or " + " or ".join(f"LABEL={r.label}" for r in rule.dev[1:]) + ")"
    reason = f"state device {wanted} not found"
    if rule.wait:
        reason += f" after {rule.wait:g} s"
    if refused:
        reason += "; " + "; ".join(refused)
    if rule.required:
        return Emergency(f"corral.state is required: {reason}")
    return RunFromRAM(reason)


# ---- adapter ---------------------------------------------------------------------------------------------
def is_zeroed(device: str, length: int = ZERO_CHECK_BYTES) -> bool:
    """Whether the first ``length`` bytes of ``device`` are all zero (a short device counts as read).
    Blocking: run it in a thread."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        remaining = length
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                return False
            remaining -= len(chunk)
        return True
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StateResult:
    outcome: str  # found | formatted | ram | emergency
    device: str | None = None
    path: str | None = None
    fstype: str | None = None
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "device": self.device, "path": self.path, "fstype": self.fstype,
                "reason": self.reason, "seconds": round(self.seconds, 3)}


async def prepare_state(rule: StateRule, observer: Observer, processes: ProcessManager, bus: Bus,
                        target: Path = STATE_MOUNT, *, mkfs: Sequence[str] = ("mkfs.ext4",),
                        clock: Callable[[], float] = time.monotonic,
                        zero_check: Callable[[str], bool] = is_zeroed) -> StateResult:
    """Find (or make) the state partition and mount it at ``target``, waiting up to ``rule.wait``
    seconds for block uevents (the udev source must be running). Publishes ``StateStorage``."""
    sub = bus.subscribe("storage:state", BlockEvent, maxsize=64)
    started = clock()
    zeroed: dict[str, bool] = {}
    format_failed: dict[str, str] = {}
    formatted: str | None = None
    try:
        while True:
            observed = await observer.observe()
            decision = decide_state(rule, observed.devices, clock() - started, zeroed, formatted,
                                    format_failed)
            if isinstance(decision, CheckZero):
                try:
                    zeroed[decision.device] = await asyncio.to_thread(zero_check, decision.device)
                except OSError as exc:
                    log.warning("cannot read autoformat candidate", device=decision.device, error=str(exc))
                    zeroed[decision.device] = False
                continue
            if isinstance(decision, Format):
                log.info("formatting the state partition", device=decision.device, label=decision.label)
                argv = [*mkfs, "-q", "-F", "-L", decision.label, decision.device]
                try:
                    status, _, err = await processes.run(argv, name="mkfs")
                    code, text = status.returncode, err.decode(errors="replace").strip()[:300]
                except OSError as exc:
                    code, text = -1, str(exc)
                if code != 0:
                    format_failed[decision.device] = text or f"exit {code}"
                    log.error("mkfs failed", device=decision.device, error=format_failed[decision.device])
                else:
                    formatted = decision.device
                observer.prober.forget(decision.device)
                continue
            if isinstance(decision, Wait):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.get(), decision.seconds)
                continue
            if isinstance(decision, Found):
                dev = decision.device
                outcome = "formatted" if decision.formatted else "found"
                spec = MountSpec(dev.devname, str(target), decision.fstype, 0)
                try:
                    await asyncio.to_thread(mount, spec, target)
                except OSError as exc:
                    result = StateResult("emergency" if rule.required else "ram", dev.devname, None,
                                         decision.fstype, f"cannot mount {dev.devname}: {exc}",
                                         clock() - started)
                    break
                result = StateResult(outcome, dev.devname, str(target), decision.fstype, "",
                                     clock() - started)
                break
            if isinstance(decision, RunFromRAM):
                result = StateResult("ram", reason=decision.reason, seconds=clock() - started)
                break
            result = StateResult("emergency", reason=decision.reason, seconds=clock() - started)
            break
    finally:
        sub.close()
    if result.outcome in ("found", "formatted"):
        log.info("state partition", **result.to_dict())
    elif result.outcome == "ram":
        log.warning("state partition", **result.to_dict())
    else:
        log.error("state partition", **result.to_dict())
    bus.publish(StateStorage(outcome=result.outcome, device=result.device, path=result.path,
                             reason=result.reason, seconds=round(result.seconds, 3)))
    return result


def bind_persistent(state_root: Path, root: Path = Path("/"),
                    dirs: Sequence[str] = PERSISTENT_DIRS) -> list[Path]:
    """Bind ``state_root/<dir>`` onto ``root/<dir>`` for each persistent directory. A directory new on
    the state partition is first seeded with what ``root/<dir>`` held (config written before the
    state was mounted survives). Returns the targets bound, in order (unmount them in reverse).
    Blocking: run it in a thread."""
    bound: list[Path] = []
    for rel in dirs:
        src = state_root / rel
        dst = root / rel
        new = not src.exists()
        src.mkdir(parents=True, exist_ok=True)
        dst.mkdir(parents=True, exist_ok=True)
        if new and any(dst.iterdir()):
            shutil.copytree(dst, src, symlinks=True, dirs_exist_ok=True)
        mount_raw(src, dst, None, MS_BIND)
        bound.append(dst)
        log.info("persistent directory bound", target=str(dst), source=str(src))
    return bound
