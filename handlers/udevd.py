"""udevd as a process PID 1 supervises (``corral.udev``).

With ``corral.udev: true`` and systemd-udevd in the image, the devices boot phase starts udevd through
the ProcessKeeper (handlers/processes.py: restarts with the one Backoff), waits (at most
``ready_timeout`` seconds) until its control socket answers, runs ``udevadm trigger --action=add`` and
``udevadm settle`` (coldplug: udevd's database then holds every device's ``ID_FS_*``), and only then is
the udev source opened, on udevd's ``udev`` group. When udevd dies the source goes back to the
kernel's events (reopen + resync: nothing is missed, handlers probe with blkid meanwhile); when it is
back and ready (``udevadm trigger --action=change`` + settle refresh what it missed), the source
switches to udevd's events again. A missing binary gives one warning, a ``degraded`` reason and
kernel events. ``Udevd`` is also a reconciler (handler ``udevd``, woken by ``ConfigChanged``): turning
``corral.udev`` on or off, or changing its arguments, is applied live.

udevd runs in the foreground (no ``--daemon``), without ``--debug``, with ``--resolve-names=never``
(no user database lookups) and few workers; its log goes to stderr, which is read into the journal
(``unit=udevd``). Its environment is minimal: nothing of PID 1's (no NOTIFY_SOCKET) reaches it.

The sandbox shares the host's kernel and devices, so there udevd runs only with
``corral.udev.rules_dir`` (tests): see handlers/udevd_isolation.py. udevd kills the processes of
its cgroup when it was started by PID 1 *and* systemd runs (``/run/systemd/system``): that directory
must not exist, and corral refuses to start udevd if it does."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from handlers.processes import ProcessKeeper, ProcessSpec
from supervisor.events import ConfigChanged, Event
from supervisor.process import Child, ProcessManager
from supervisor.tasks import spawn_task

if TYPE_CHECKING:
    from supervisor.sources.udev import UdevSource

log = structlog.get_logger("handlers.udevd")

NAME = "udevd"
UDEVD_PATHS = ("/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd", "/sbin/udevd")
UDEV_RUN = Path("/run/udev")
SYSTEMD_RUNNING = Path("/run/systemd/system")
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLL = 0.02  # seconds between looks at the control socket


# ---- config ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UdevdConfig:
    """``corral.udev``: a boolean, or a map (a map turns it on unless ``enabled: false``)."""

    enabled: bool = False
    path: str | None = None  # None: the first of UDEVD_PATHS that exists
    children_max: int = 4
    args: tuple[str, ...] = ()  # more udevd arguments
    trigger: tuple[str, ...] = ()  # more `udevadm trigger` arguments (match options: limit the coldplug)
    ready_timeout: float = 5.0
    settle_timeout: int = 30
    rules_dir: str | None = None  # the sandbox only: see handlers/udevd_isolation.py


def parse_udevd_config(value: Any) -> UdevdConfig:
    """The config value (already checked against the schema) as UdevdConfig; None/absent is off."""
    if value is None or value is False:
        return UdevdConfig()
    if value is True:
        return UdevdConfig(enabled=True)
    if not isinstance(value, Mapping):
        raise ValueError(f"corral.udev: expected a boolean or a map, got {type(value).__name__}")
    defaults = UdevdConfig()
    return UdevdConfig(
        enabled=bool(value.get("enabled", True)),
        path=str(value["path"]) if value.get("path") else None,
        children_max=int(value.get("children_max", defaults.children_max)),
        args=tuple(str(a) for a in value.get("args") or ()),
        trigger=tuple(str(a) for a in value.get("trigger") or ()),
        ready_timeout=float(value.get("ready_timeout", defaults.ready_timeout)),
        settle_timeout=int(value.get("settle_timeout", defaults.settle_timeout)),
        rules_dir=str(value["rules_dir"]) if value.get("rules_dir") else None,
    )


# ---- pure decisions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preflight:
    """Whether to start udevd: ``state`` is ``start``, ``off``, ``missing`` or ``refused``."""

    state: str
    reason: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def start(self) -> bool:
        return self.state == "start"


def preflight(cfg: UdevdConfig, *, binary: str | None, sandbox: bool, systemd_running: bool) -> Preflight:
    if not cfg.enabled:
        return Preflight("off")
    if binary is None:
        what = cfg.path or "systemd-udevd"
        return Preflight("missing", f"corral.udev: {what} not found in the image; following the kernel's "
                                    "uevents (no ID_FS_* from udevd: filesystems are probed with blkid)")
    if systemd_running:
        return Preflight("refused", f"corral.udev: {SYSTEMD_RUNNING} exists (systemd runs here), and udevd "
                                    "would kill every process of its cgroup; not starting it")
    if sandbox and cfg.rules_dir is None:
        return Preflight("refused", "corral.udev: the sandbox shares the host's kernel and devices, so it "
                                    "runs udevd only with corral.udev.rules_dir (see docs/storage.md)")
    warnings: tuple[str, ...] = ()
    if not sandbox and cfg.rules_dir is not None:
        warnings = ("corral.udev.rules_dir is for the sandbox only; ignored",)
    return Preflight("start", warnings=warnings)


def find_binary(cfg: UdevdConfig, exists: Callable[[str], bool] = os.path.exists) -> str | None:
    if cfg.path is not None:
        return cfg.path if exists(cfg.path) else None
    return next((p for p in UDEVD_PATHS if exists(p)), None)


def udevd_argv(binary: str, cfg: UdevdConfig) -> tuple[str, ...]:
    return (binary, "--resolve-names=never", f"--children-max={cfg.children_max}", *cfg.args)


def udevd_env(path_env: str | None) -> tuple[tuple[str, str], ...]:
    """Only what udevd needs: its log on stderr (read into the journal), no colours, PATH for RUN+=."""
    return (("PATH", path_env or DEFAULT_PATH_ENV), ("SYSTEMD_LOG_TARGET", "console"),
            ("SYSTEMD_LOG_COLOR", "0"), ("SYSTEMD_LOG_LEVEL", "info"))


def trigger_argv(udevadm: str, cfg: UdevdConfig, first: bool) -> tuple[str, ...]:
    """Coldplug at the first start (``add``: every rule runs); after a restart ``change`` refreshes what
    udevd missed while it was down without replaying add-only rules."""
    return (udevadm, "trigger", f"--action={'add' if first else 'change'}", *cfg.trigger)


def settle_argv(udevadm: str, cfg: UdevdConfig) -> tuple[str, ...]:
    return (udevadm, "settle", f"--timeout={cfg.settle_timeout}")


def wanted_source(state: str) -> str:
    """The udev source follows udevd's events only while udevd runs and is ready."""
    return "udev" if state == "running" else "kernel"


def control_answers(path: Path) -> bool:
    """Something listens on udevd's control socket (a stale socket file refuses the connection)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
    try:
        sock.connect(str(path))
        return True
    except BlockingIOError:
        return True  # its backlog is full: it listens
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    finally:
        sock.close()


# ---- the runner ------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    started: int = 0
    ready: int = 0
    triggers: int = 0
    trigger_failures: int = 0
    last_ready_seconds: float | None = None
    last_exit: str | None = None
    history: list[str] = field(default_factory=list)


IDLE = ("off", "missing", "refused", "stopped")  # states in which no udevd of ours is wanted


class Udevd:
    """Starts udevd through the ProcessKeeper and steers the udev source by udevd's state:
    ``off`` | ``missing`` | ``refused`` | ``starting`` | ``running`` | ``unready`` | ``restarting`` |
    ``stopped``. As a reconciler it follows ``corral.udev`` (read with ``config``) when the config
    changes."""

    name = NAME
    kinds: tuple[type[Event], ...] = (ConfigChanged,)
    config_keys: tuple[str, ...] | None = ("corral.udev",)

    def __init__(self, processes: ProcessManager, keeper: ProcessKeeper, cfg: UdevdConfig, *,
                 sandbox: bool = False, run_dir: Path = UDEV_RUN, udevadm: str | None = None,
                 degrade: Callable[[str, str], None] | None = None,
                 clear: Callable[[str], None] | None = None,
                 config: Callable[[], Any] | None = None,
                 exists: Callable[[str], bool] = os.path.exists) -> None:
        self.processes = processes
        self.keeper = keeper
        self.cfg = cfg
        self.sandbox = sandbox
        self.run_dir = run_dir
        self.udevadm = udevadm  # found on PATH (off the loop) when it is first needed
        self._degrade = degrade or (lambda key, reason: None)
        self._clear = clear or (lambda key: None)
        self._config = config
        self._exists = exists
        self.binary: str | None = None  # found (off the loop) when udevd is started
        self._fenced = False
        self._listening = False
        self.state = "off"
        self.reason = ""
        self.source: UdevSource | None = None
        self.stats = _Stats()
        self._child: Child | None = None
        self._first = True
        self._settled = asyncio.Event()

    # ---- life cycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start udevd and wait until it is ready and coldplugged (bounded). Never raises for udevd's own
        failures: they are states, a warning and a degraded reason; the source then follows the kernel."""
        systemd_running = await asyncio.to_thread(SYSTEMD_RUNNING.exists)
        self.binary = await asyncio.to_thread(find_binary, self.cfg, self._exists)
        check = preflight(self.cfg, binary=self.binary, sandbox=self.sandbox, systemd_running=systemd_running)
        for warning in check.warnings:
            log.warning("config warning", unit=NAME, warning=warning)
        if not check.start:
            self._set(check.state, check.reason)
            if check.state != "off":
                log.warning("udevd not started; following the kernel's uevents", unit=NAME,
                            reason=check.reason)
                self._degrade(NAME, check.reason)
            return
        assert self.binary is not None
        if self.sandbox and self.cfg.rules_dir is not None and not self._fenced:
            from handlers.udevd_isolation import IsolationError, isolate

            try:
                await asyncio.to_thread(isolate, Path(self.cfg.rules_dir))
            except (IsolationError, OSError) as exc:
                reason = f"corral.udev: cannot fence udevd off the host: {exc}"
                self._set("refused", reason)
                log.error("udevd not started", unit=NAME, reason=reason)
                self._degrade(NAME, reason)
                return
            self._fenced = True  # once: a second overlay on /dev would stack on the first
        self._set("starting", "")
        self._clear(NAME)
        self._settled.clear()
        if not self._listening:
            self.keeper.listen(self._on_process)
            self._listening = True
        self.keeper.want(self._spec(self.binary))
        self.keeper.kick()
        budget = self.cfg.ready_timeout + self.cfg.settle_timeout + 5.0
        try:
            await asyncio.wait_for(self._settled.wait(), budget)
        except TimeoutError:
            log.error("udevd not ready at boot; carrying on with the kernel's uevents", unit=NAME,
                      waited=budget, state=self.state)

    def _spec(self, binary: str) -> ProcessSpec:
        return ProcessSpec(NAME, udevd_argv(binary, self.cfg), env=udevd_env(os.environ.get("PATH")),
                           log_output=True)

    async def reconcile(self, full: bool) -> None:
        """The config changed (or a resync): apply ``corral.udev`` if it differs from what runs."""
        if self._config is None:
            return
        cfg = parse_udevd_config(self._config())
        if cfg == self.cfg:
            return
        log.info("corral.udev changed", unit=NAME, enabled=cfg.enabled)
        self.cfg = cfg
        self.binary = await asyncio.to_thread(find_binary, cfg, self._exists)
        if not cfg.enabled or self.binary is None:
            if NAME in self.keeper.desired:
                self.keeper.drop(NAME)  # its "stopped" steers the source back to the kernel
                self.keeper.kick()
            self._set("off" if not cfg.enabled else "missing", "")
            if cfg.enabled:
                await self.start()  # says why, once
            else:
                self._clear(NAME)
            return
        if self.state in IDLE:
            await self.start()
        else:
            self.keeper.want(self._spec(self.binary))  # a changed spec: the keeper stops and restarts it
            self.keeper.kick()

    def attach(self, source: UdevSource | None) -> None:
        """The udev source (created after udevd started): it follows udevd's state from now on."""
        if source is None:
            return
        self.source = source
        source.udevd_status = self.status
        if self.state in ("off", "missing", "refused"):
            return  # not ours to steer
        self._steer(f"udevd is {self.state}")

    async def stop(self, grace: float) -> None:
        self.keeper.drop(NAME)
        child, self._child = self._child, None
        self._set("stopped", "")
        if child is not None and child.running:
            status = await child.stop(grace)
            log.info("udevd stopped", unit=NAME, status=status.describe())

    # ---- reactions -----------------------------------------------------------------------------------
    def _on_process(self, what: str, name: str, child: Child) -> None:
        if name != NAME:
            return
        if what == "started":
            self._child = child
            self.stats.started += 1
            self._set("starting", "")
            spawn_task(self._came_up(child), name="udevd:ready")
        elif what == "exited":
            if child is self._child:
                self._child = None
            status = child.status
            self.stats.last_exit = status.describe() if status else "?"
            self._set("restarting", f"exited ({self.stats.last_exit})")
            log.warning("udevd exited; following the kernel's uevents until it is back", unit=NAME,
                        status=self.stats.last_exit)
            self._steer("udevd exited")
        elif what == "stopped":  # no longer wanted (corral.udev off), or restarted with new arguments
            if child is self._child:
                self._child = None
            if NAME not in self.keeper.desired:
                if self.state not in IDLE:
                    self._set("off", "")
            else:
                self._set("restarting", "its arguments changed")
            log.info("udevd stopped; following the kernel's uevents", unit=NAME)
            self._steer("udevd stopped")

    async def _came_up(self, child: Child) -> None:
        started = time.monotonic()
        ready = await self._wait_control(child)
        if not ready:
            if child.running:
                reason = f"udevd's control socket did not answer within {self.cfg.ready_timeout:g} s"
                self._set("unready", reason)
                log.error("udevd not ready; stopping it to start it again", unit=NAME, reason=reason)
                self._degrade(NAME, reason)
                child.send_signal(signal.SIGTERM)  # the keeper starts it again after its backoff
            self._settled.set()
            return
        first, self._first = self._first, False
        if self.udevadm is None:
            self.udevadm = await asyncio.to_thread(shutil.which, "udevadm") or "udevadm"
        await self._udevadm(trigger_argv(self.udevadm, self.cfg, first), "trigger")
        await self._udevadm(settle_argv(self.udevadm, self.cfg), "settle")
        if child is not self._child or not child.running:
            return  # it died meanwhile: the exit already steered the source to the kernel
        self.stats.ready += 1
        self.stats.last_ready_seconds = round(time.monotonic() - started, 4)
        self._set("running", "")
        self._clear(NAME)
        log.info("udevd ready", unit=NAME, pid=child.pid, seconds=self.stats.last_ready_seconds,
                 coldplug="add" if first else "change")
        if self.source is not None:
            await self.source.use("udev", "udevd ready")
        self._settled.set()

    async def _wait_control(self, child: Child) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.ready_timeout
        control = self.run_dir / "control"
        while child.running and loop.time() < deadline:
            if control_answers(control):
                return True
            await asyncio.sleep(POLL)
        return False

    async def _udevadm(self, argv: tuple[str, ...], what: str) -> None:
        timeout = self.cfg.settle_timeout + 10.0
        try:
            status, _, err = await self.processes.run(argv, name=f"udevadm-{what}", timeout=timeout,
                                                      env=dict(udevd_env(os.environ.get("PATH"))))
        except (OSError, TimeoutError) as exc:
            self.stats.trigger_failures += 1
            log.error(f"udevadm {what} failed", unit=NAME, error=repr(exc))
            return
        if what == "trigger":
            self.stats.triggers += 1
        if status.returncode != 0:
            self.stats.trigger_failures += 1
            log.warning(f"udevadm {what} failed", unit=NAME, status=status.describe(),
                        stderr=err.decode(errors="replace")[:300])

    def _steer(self, reason: str) -> None:
        if self.source is not None and (self.source.requested is not None or self.state not in IDLE):
            spawn_task(self.source.use(wanted_source(self.state), reason), name="udevd:steer")

    def _set(self, state: str, reason: str) -> None:
        if state != self.state:
            self.stats.history = [*self.stats.history[-9:], state]
        self.state, self.reason = state, reason

    # ---- reporting -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        child = self._child
        s = self.stats
        return {
            "state": self.state, "reason": self.reason or None, "path": self.binary,
            "pid": child.pid if child is not None and child.running else None,
            "restarts": self.keeper.restarts.get(NAME, 0), "starts": s.started, "ready": s.ready,
            "last_ready_seconds": s.last_ready_seconds, "last_exit": s.last_exit,
            "triggers": s.triggers, "trigger_failures": s.trigger_failures,
            "source": self.source.source if self.source is not None else None,
        }


def off_status() -> dict[str, Any]:
    return {"state": "off"}
