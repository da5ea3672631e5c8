"""The system dockerd: PID 1 starts Debian's ``/usr/sbin/dockerd``, waits until it answers, keeps it
running, and kills and restarts it when it stops answering.

It is one of PID 1's own children, spawned through ``supervisor.process`` (the one reaper), with state
apart from any other dockerd's (a user dockerd later):

=============== ==================================== =============================================
what            real host                            sandbox (prefix DIR)
=============== ==================================== =============================================
API socket      /run/system-docker.sock              DIR/run/system-docker.sock (reachable from the host)
data root       /var/lib/system-docker               DIR/var/lib/system-docker
exec root       /run/system-docker                   /run/system-docker (the sandbox's private /run)
pidfile         /run/system-docker.pid               /run/system-docker.pid
config file     /run/corral/system-docker.json       DIR/run/corral/system-docker.json
bridge          corral-sys0, 172.18.42.1/24          corral-sys0, 198.19.42.1/24 (in the sandbox's netns)
cgroup parent   /system-docker                       /corral-sandbox-<hash of DIR>
=============== ==================================== =============================================

The exec root holds containerd's sockets, whose paths must stay under 108 bytes: that is why it is not
below DIR in the sandbox (whose /run is private; see ``MountTable.isolate_run_and_sys``).

The supervision loop: prepare (directories, config file, bridge), spawn, poll ``/_ping`` (each ping under
a timeout, polls spaced by a small Backoff) until it answers (within ``start_timeout``: 60 s, doubled after
each start in a row that ran out of it), then publish ``DockerdState(up)`` and a
``Resync`` (every unit is observed again) and call ``on_up`` callbacks; then wait for whichever comes
first, the process exiting or the watchdog (``units.runtime.watch_liveness``: ``/_ping`` every 2 s under
a 3 s timeout, 2 misses) giving up on it. A dockerd that does not answer is SIGKILLed (SIGKILL ends a
SIGSTOPped process too); ``DockerdState(down)`` is published and dockerd started again after the one
Backoff's delay (``restart_backoff``): a dockerd that was healthy for ``HEALTHY_AFTER`` seconds (it
answered ``/_ping`` and kept answering the watchdog) is restarted at once, one that dies during its own
start waits longer each time (``healthy_for``). Its stdout and stderr go to the journal
(``unit=system-docker``) at the levels ``supervisor.journal.lines`` reads in them (logrus's own; gRPC's
chatter at debug)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from supervisor import prefetch
from supervisor.atomic import write_atomic
from supervisor.backoff import Backoff, start_polls
from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.events.docker import DockerdState
from supervisor.journal.lines import log_line
from supervisor.paths import Paths
from supervisor.process import PIPE, Child, ProcessManager
from supervisor.tasks import spawn_task

if TYPE_CHECKING:  # units.runtime imports aiodocker (seconds under TCG): imported where it is used, after
    from units.runtime import LineSink, Runtime  # the spawn (see Supervisor._system_docker_start)

log = structlog.get_logger("units.system_dockerd")

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER_CLI = Path("/usr/bin/docker")  # Debian's client, matching the daemon (not /usr/local/bin/docker)
UNIT = "system-docker"
DAEMON = "system"
BRIDGE = "corral-sys0"
HOST_BRIDGE_CIDR = "172.18.42.1/24"
SANDBOX_BRIDGE_CIDR = "198.19.42.1/24"  # the tests' range (docs/testing.md); only inside the sandbox's netns
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSED_ENV = ("DOCKER_RAMDISK",)
# Seconds of health (answering /_ping) after which dockerd's restart backoff starts over: Docker's own
# restart policy and the units' use 10 s of running too. Time spent starting does not count.
HEALTHY_AFTER = 10.0  # from the kernel command line (init's environment), e.g. on an initramfs


def restart_backoff() -> Backoff:
    """The one Backoff, as dockerd's restarts use it: at once, then 0.5 s doubling to 30 s; a dockerd
    healthy for ``HEALTHY_AFTER`` seconds before it went down starts the sequence over (``ran_for`` is
    ``healthy_for``, not the time since the spawn: one that keeps dying while it starts keeps waiting
    longer)."""
    return Backoff(initial=0.5, cap=30.0, reset_after=HEALTHY_AFTER)


# A dockerd that does not answer within its start-up timeout is killed and started again; each start in a
# row that ran out of time doubles the next one's timeout (to this cap), so a dockerd that is only slow (a
# loaded machine, a large data root to replay) is given the time it needs instead of being killed at the
# same point of its start-up for ever. An answer starts the sequence over.
START_TIMEOUT_CAP = 600.0


def start_timeout(base: float, slow_starts: int) -> float:
    """The start-up timeout after ``slow_starts`` starts in a row that ran out of time."""
    return min(base * 2.0 ** min(slow_starts, 16), max(base, START_TIMEOUT_CAP))


def healthy_for(ready_at: float | None, down_at: float) -> float:
    """How long dockerd was healthy: from answering its first ``/_ping`` (``ready_at``; None: it never
    did) until it went down (exited, or the watchdog gave up on it)."""
    return 0.0 if ready_at is None else max(0.0, down_at - ready_at)


def system_socket(paths: Paths) -> Path:
    """Where the system dockerd's API socket is (``/run/system-docker.sock`` under the prefix)."""
    return paths.under("/run/system-docker.sock")


@dataclass(frozen=True)
class Watchdog:
    """``/_ping`` every ``interval`` seconds under ``timeout``; ``misses`` in a row mean frozen."""

    interval: float = 2.0
    timeout: float = 3.0
    misses: int = 2

    @property
    def worst_case(self) -> float:
        return self.interval + self.misses * self.timeout


@dataclass(frozen=True)
class DockerdLayout:
    """Every path and option of one dockerd; ``argv`` is its command line."""

    socket: Path
    data_root: Path
    exec_root: Path
    pidfile: Path
    config_file: Path
    cgroup_parent: str
    bridge: str | None = BRIDGE  # None: --bridge none
    bridge_cidr: str | None = HOST_BRIDGE_CIDR
    dns: str | None = None
    iptables: bool = True
    shutdown_timeout: int = 5
    binary: Path = DOCKERD
    extra_args: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # more of its environment (corral.network's proxies)

    @classmethod
    def system(cls, paths: Paths, sandbox: bool) -> DockerdLayout:
        if sandbox:
            digest = hashlib.sha256(os.fsencode(paths.prefix)).hexdigest()[:12]
            gateway = str(ipaddress.ip_interface(SANDBOX_BRIDGE_CIDR).ip)
            return cls(
                socket=system_socket(paths),
                data_root=paths.under("/var/lib/system-docker"),
                exec_root=Path("/run/system-docker"),
                pidfile=Path("/run/system-docker.pid"),
                config_file=paths.run_dir / "system-docker.json",
                cgroup_parent=f"/corral-sandbox-{digest}",
                bridge_cidr=SANDBOX_BRIDGE_CIDR,
                dns=gateway,  # containers get no resolver from outside the sandbox
            )
        return cls(
            socket=system_socket(paths),
            data_root=paths.under("/var/lib/system-docker"),
            exec_root=paths.under("/run/system-docker"),
            pidfile=paths.under("/run/system-docker.pid"),
            config_file=paths.run_dir / "system-docker.json",
            cgroup_parent="/system-docker",
        )

    def argv(self) -> list[str]:
        args = [
            os.fspath(self.binary),
            "--config-file", os.fspath(self.config_file),  # not /etc/docker/daemon.json: that is the user's
            "--host", f"unix://{self.socket}",
            "--group", "root",  # the socket is root's only (0660 root:root)
            "--data-root", os.fspath(self.data_root),
            "--exec-root", os.fspath(self.exec_root),
            "--pidfile", os.fspath(self.pidfile),
            "--bridge", self.bridge or "none",
            "--cgroup-parent", self.cgroup_parent,
            "--shutdown-timeout", str(self.shutdown_timeout),
            f"--iptables={'true' if self.iptables else 'false'}",
            # Containers (the OS's services, the user's dockerd among them) outlive a dockerd crash or a
            # watchdog kill; without it, the restarted dockerd stops them all first (10 s each).
            "--live-restore",
        ]  # fmt: skip
        if self.dns:
            args += ["--dns", self.dns]
        return args + list(self.extra_args)

    def env(self, root_fstype: str | None = None) -> dict[str, str]:
        """dockerd's environment. On an initramfs root (``rootfs``) runc cannot pivot_root out of it:
        ``DOCKER_RAMDISK=true`` makes it move-mount and chroot instead. ``root_fstype`` is read from
        /proc/self/mountinfo when not given."""
        env = {"PATH": PATH_ENV, "HOME": "/root", "LANG": "C.UTF-8"}
        env.update({k: v for k in PASSED_ENV if (v := os.environ.get(k))})
        env.update(self.environment)
        fstype = root_fstype if root_fstype is not None else _root_fstype()
        if fstype in RAMDISK_FSTYPES:
            env.setdefault("DOCKER_RAMDISK", "true")
        return env


RAMDISK_FSTYPES = ("rootfs", "ramfs")


def root_fstype_of(mountinfo: str) -> str | None:
    """The filesystem type of the mount at / that is in force (the last one listed), from mountinfo text."""
    fstype = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/" and " - " in line:
            fstype = line.split(" - ", 1)[1].split()[0]
    return fstype


def _root_fstype() -> str | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return root_fstype_of(f.read())
    except OSError:
        return None


# ---- the supervisor of one dockerd --------------------------------------------------------------
@dataclass
class _Stats:
    state: str = "stopped"  # starting | up | down | stopped
    starts: int = 0
    pid: int | None = None
    start_seconds: float | None = None  # how long the last start took to answer /_ping
    up_since: float | None = None
    ready_at: float | None = None  # monotonic time the running dockerd first answered /_ping
    last_down: str | None = None
    watchdog_kills: int = 0


class SystemDockerd:
    """Keeps one dockerd running and answering. ``start()`` once; ``await wait_ready()``; ``stop()``."""

    def __init__(self, processes: ProcessManager, bus: Bus, layout: DockerdLayout, *,
                 journal: LineSink | None = None, backoff: Backoff | None = None,
                 watchdog: Watchdog | None = None, ready_timeout: float = 60.0, daemon: str = DAEMON,
                 unit: str = UNIT) -> None:
        self.processes = processes
        self.bus = bus
        self.layout = layout
        self.journal = journal
        self.backoff = backoff or restart_backoff()
        self.watchdog = watchdog or Watchdog()
        self.ready_timeout = ready_timeout  # the first start's; see start_timeout
        self._slow_starts = 0  # starts in a row that did not answer within their timeout
        self.daemon = daemon
        self.unit = unit
        self.on_up: list[Callable[[], None]] = []  # called after each (re)start that answers /_ping
        self.stats = _Stats()
        self.child: Child | None = None
        self._ready = asyncio.Event()
        self._tried = asyncio.Event()  # the first start got as far as the spawn, or failed before it
        self.spawn_error: str | None = None  # why the first start failed before its spawn (prepare)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self.stats.state = "starting"
            self._task = spawn_task(self._supervise(), name=f"dockerd:{self.daemon}")

    async def wait_ready(self, timeout: float) -> bool:
        """True once dockerd answers /_ping (at once when it does already); False after ``timeout``."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def wait_spawned(self, timeout: float) -> bool:
        """True once dockerd's first start has spawned it (at once when it has); False when that start
        failed before the spawn (``spawn_error`` says why: it is tried again) or after ``timeout``."""
        try:
            await asyncio.wait_for(self._tried.wait(), timeout)
        except TimeoutError:
            return self.stats.starts > 0
        return self.stats.starts > 0

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop supervising; stop the containers still running (with --live-restore dockerd leaves them
        running when it exits), each given ``grace`` seconds; SIGTERM dockerd, SIGKILL after ``grace``
        seconds more; then kill what is left in its cgroups and remove them."""
        self._stopping = True
        was_ready = self._ready.is_set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._ready.clear()
        child = self.child
        if child is not None and child.running:
            if was_ready:
                await self._stop_containers(grace)
            log.info("stopping dockerd", unit=self.unit, pid=child.pid)
            status = await child.stop(grace + self.layout.shutdown_timeout)
            log.info("dockerd stopped", unit=self.unit, status=status.describe())
        self.stats.state = "stopped"
        await asyncio.to_thread(remove_cgroups, self.layout.cgroup_parent)

    async def _stop_containers(self, grace: float) -> None:
        """Stop every running container at once (SIGTERM, SIGKILL after ``grace``). The units handler
        stops units in order before this; this is the safety net."""
        from units.runtime import DockerAPIError, DockerUnavailable, Runtime

        t = max(0, int(grace))
        try:
            async with Runtime(self.layout.socket, timeout=self.watchdog.timeout) as runtime:
                running = await runtime.list_containers(label=None, all=False)
                if not running:
                    return
                log.info("stopping containers", unit=self.unit, count=len(running), grace=t)
                results = await asyncio.gather(*(runtime.stop(c.id, timeout=t) for c in running),
                                               return_exceptions=True)
        except (DockerUnavailable, DockerAPIError) as exc:
            log.warning("containers not stopped", unit=self.unit, error=str(exc))
            return
        for c, result in zip(running, results, strict=True):
            if isinstance(result, Exception):
                log.warning("container not stopped", unit=self.unit, container=c.name, error=str(result))

    # ---- the loop ------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                reason = await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # our own failure (cannot spawn, cannot prepare): retry like a crash
                reason = f"{type(exc).__name__}: {exc}"
                log.error("cannot run dockerd", unit=self.unit, error=reason)
                if not self._tried.is_set():
                    self.spawn_error = reason
                    self._tried.set()
            finally:
                self._ready.clear()
            down_at = time.monotonic()
            ran, healthy = down_at - started, healthy_for(self.stats.ready_at, down_at)
            self.stats.ready_at = None
            await self._ensure_dead()
            self.stats.state = "down"
            self.stats.last_down = reason
            self.stats.up_since = None
            delay = self.backoff.next_delay(ran_for=healthy)
            self.bus.publish(DockerdState(daemon=self.daemon, state="down", pid=self.stats.pid,
                                          starts=self.stats.starts, reason=reason, seconds=round(ran, 3)))
            log.warning("dockerd down; restarting", unit=self.unit, reason=reason, retry_in=delay,
                        ran_for=round(ran, 3), healthy_for=round(healthy, 3))
            await asyncio.sleep(delay)

    async def _run_once(self) -> str:
        """Start dockerd, wait until it answers, watch it; return why it is down."""
        await asyncio.to_thread(prepare, self.layout)
        self.stats.state = "starting"
        child = self.processes.spawn(self.layout.argv(), name=f"dockerd:{self.daemon}", env=self.layout.env(),
                                     stdout=PIPE, stderr=PIPE)
        self.child = child
        self.stats.starts += 1
        self.stats.pid = child.pid
        self._tried.set()
        spawned = time.monotonic()
        log.info("dockerd started", unit=self.unit, pid=child.pid, start=self.stats.starts)
        # The pumps are never cancelled: dockerd's containerd inherits its stderr and outlives a killed
        # dockerd; with no reader it would block on a full pipe, or die of SIGPIPE. They end at EOF, when
        # the last writer is gone.
        for reader, stream in ((child.stdout, "stdout"), (child.stderr, "stderr")):
            if reader is not None:
                spawn_task(self._pump(reader, stream), name=f"dockerd:{self.daemon}:{stream}:{child.pid}")
        # The API client (aiohttp, aiodocker: seconds under TCG) is imported off the loop while dockerd
        # starts, so that the boot phases after the spawn go on meanwhile (supervisor/prefetch.py).
        await asyncio.to_thread(prefetch.load, prefetch.AFTER_SPAWN)
        from units.runtime import Runtime

        runtime = Runtime(self.layout.socket, timeout=self.watchdog.timeout)
        timeout = start_timeout(self.ready_timeout, self._slow_starts)
        try:
            if not await self._await_ping(child, runtime, timeout):
                if not child.running:
                    status = child.status
                    return f"exited during start-up ({status.describe() if status else '?'})"
                self._slow_starts += 1
                return (f"not answering /_ping {timeout:g} s after start (the next start waits "
                        f"{start_timeout(self.ready_timeout, self._slow_starts):g} s)")
            self._slow_starts = 0
            took = time.monotonic() - spawned
            self.stats.state = "up"
            self.stats.start_seconds = round(took, 3)
            self.stats.up_since = time.time()
            self.stats.ready_at = time.monotonic()
            self._ready.set()
            log.info("dockerd ready", unit=self.unit, pid=child.pid, seconds=round(took, 3),
                     start=self.stats.starts)
            self.bus.publish(DockerdState(daemon=self.daemon, state="up", pid=child.pid,
                                          starts=self.stats.starts, seconds=round(took, 3)))
            self.bus.publish(Resync(source=f"docker.{self.daemon}",
                                    reason=f"dockerd {'started' if self.stats.starts == 1 else 'restarted'}"))
            for callback in list(self.on_up):
                try:
                    callback()
                except Exception as exc:
                    log.error("dockerd on_up callback failed", unit=self.unit, error=repr(exc))
            return await self._watch(child, runtime)
        finally:
            await runtime.close()

    async def _await_ping(self, child: Child, runtime: Runtime, timeout: float) -> bool:
        """Poll /_ping (each under a timeout) until it answers, dockerd exits, or ``timeout`` passes."""
        polls = start_polls()
        deadline = time.monotonic() + timeout
        while child.running and time.monotonic() < deadline:
            if await runtime.ping(timeout=min(self.watchdog.timeout, max(0.1, deadline - time.monotonic()))):
                return True
            await asyncio.sleep(polls.next_delay())
        return False

    async def _watch(self, child: Child, runtime: Runtime) -> str:
        """Wait until dockerd exits or stops answering; the reason, once either happened."""
        from units.runtime import watch_liveness

        exited = spawn_task(child.wait(), name=f"dockerd:{self.daemon}:wait")
        w = self.watchdog
        frozen = spawn_task(
            watch_liveness(runtime.ping, interval=w.interval, timeout=w.timeout, misses=w.misses),
            name=f"dockerd:{self.daemon}:watchdog")
        try:
            done, _ = await asyncio.wait({exited, frozen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exited, frozen):
                task.cancel()
            await asyncio.gather(exited, frozen, return_exceptions=True)
        if exited in done and not exited.cancelled():
            return f"dockerd {exited.result().describe()}"
        self.stats.watchdog_kills += 1
        reason = f"watchdog: {frozen.result()}"
        log.error("dockerd is not answering; killing it", unit=self.unit, pid=child.pid, reason=reason)
        return reason

    async def _ensure_dead(self) -> None:
        child = self.child
        if child is not None and child.running:
            child.send_signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 10)

    async def _pump(self, reader: asyncio.StreamReader, stream: str) -> None:
        """dockerd's output, line by line, into the journal."""
        while line := await reader.readline():
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                continue
            if self.journal is not None:
                log_line(self.journal, text, logger="dockerd", stopping=self._stopping,
                         starting=self.stats.state == "starting", unit=self.unit, stream=stream)

    # ---- reporting -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "state": s.state, "pid": s.pid if s.state in ("up", "starting") else None, "starts": s.starts,
            "restarts": max(0, s.starts - 1), "socket": os.fspath(self.layout.socket),
            "start_seconds": s.start_seconds, "up_since": s.up_since, "last_down": s.last_down,
            "watchdog_kills": s.watchdog_kills,
            "watchdog": {"interval": self.watchdog.interval, "timeout": self.watchdog.timeout,
                         "misses": self.watchdog.misses},
        }


# ---- preparation and cleanup (blocking; run in a thread) -----------------------------------------
def prepare(layout: DockerdLayout) -> None:
    """Directories, the daemon's config file and its bridge; done before every start (cheap when done)."""
    for directory in (layout.socket.parent, layout.data_root, layout.exec_root, layout.pidfile.parent,
                      layout.config_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    layout.data_root.chmod(0o710)
    if not layout.config_file.exists():
        write_atomic(layout.config_file, b"{}\n")
    if layout.bridge is not None and layout.bridge_cidr is not None:
        ensure_bridge(layout.bridge, layout.bridge_cidr)


def ensure_bridge(name: str, cidr: str) -> None:
    """A Linux bridge ``name`` with address ``cidr``, up, in this network namespace (pyroute2)."""
    from pyroute2.iproute.linux import IPRoute

    iface = ipaddress.ip_interface(cidr)
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            ipr.link("add", ifname=name, kind="bridge")
            found = ipr.link_lookup(ifname=name)
            log.info("bridge created", bridge=name, address=cidr)
        index = found[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        ipr.link("set", index=index, state="up")


def _cgroup_mounts() -> list[Path]:
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split()[:1] and right.split()[0] in ("cgroup", "cgroup2"):
                mounts.append(Path(left.split()[4]))
    return mounts


def remove_cgroups(parent: str, timeout: float = 5.0) -> None:
    """Kill whatever is left in dockerd's cgroup parent (in every hierarchy) and remove the cgroups."""
    tops = [d for m in _cgroup_mounts() if (d := m / parent.lstrip("/")).is_dir()]
    deadline = time.monotonic() + timeout
    for top in tops:
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            while True:
                with contextlib.suppress(OSError):
                    for pid in (Path(dirpath) / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError, ValueError):
                            os.kill(int(pid), signal.SIGKILL)
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        log.warning("cgroup not removed", cgroup=dirpath)
                        break
                    time.sleep(0.05)
