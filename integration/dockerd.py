"""A private dockerd for integration tests, isolated from the host's docker.

Debian's ``/usr/sbin/dockerd`` (docker.io) runs in a network namespace of its own (from
:mod:`integration.netns`) and in a mount namespace of its own, with every path it writes under one
temporary directory ``TMP``:

* ``nsenter --net=/run/netns/NS`` puts it in the test's network namespace. Its bridge (``corral-br0`` by
  default, 198.19.0.1/24) is created there beforehand and handed over with ``--bridge``; iptables stays on
  (the namespace has its own tables), so ``ip_forward``, NAT rules and veths all stay in the namespace.
* ``unshare --mount --propagation slave`` gives it a mount namespace in which a wrapper mounts a private
  tmpfs on ``/run`` (containerd's shim sockets, ``/run/docker/plugins``, iptables' lock; it also hides a
  host containerd's socket, so dockerd always starts its own managed containerd), and a fresh sysfs on
  ``/sys`` showing the namespace's interfaces, with the host's cgroup mounts carried over. Overlay and
  netns bind mounts made by dockerd stay in that mount namespace and vanish with its last process.
* ``--data-root TMP/data``, ``--exec-root TMP/exec`` (holds managed containerd's state and sockets),
  ``--host unix://TMP/docker.sock``, ``--pidfile TMP/docker.pid``, ``--config-file TMP/daemon.json`` (so
  ``/etc/docker/daemon.json`` is not read), ``--cgroup-parent /corral-test-...`` (removed at teardown),
  ``--dns <bridge address>`` (containers never get a resolver outside the namespace).

Teardown stops the daemon by pid (SIGTERM, then SIGKILL), kills any process still naming ``TMP`` or still
in its cgroups, removes the cgroups, unmounts anything left under ``TMP`` and removes it.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from image import busybox as busybox_image
from integration.netns import Argv, CommandError, NetNS, pid_alive, run

DOCKERD = Path("/usr/sbin/dockerd")
DEBIAN_DOCKER_CLI = Path("/usr/bin/docker")
BUSYBOX = busybox_image.BUSYBOX
TEST_IMAGE = busybox_image.TEST_ALIAS  # corral-test/busybox:latest, the same image as corral/busybox:latest
REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_CACHE = busybox_image.DEFAULT_OUTPUT  # .cache/images/busybox.tar
DEFAULT_BRIDGE = "corral-br0"
DEFAULT_BRIDGE_CIDR = "198.19.0.1/24"  # benchmarking range; 198.18.0.0/16 is left to veth tests

# Runs as "sh -c WRAPPER corral-dockerd TMP dockerd args...", already in the test's network namespace and
# in a new mount namespace whose mounts do not propagate back to the host. mount -n: no /run/mount/utab.
_WRAPPER = r"""
set -eu
tmp=$1; shift
mount -n -t tmpfs -o mode=755,size=64m corral-run /run
mkdir -p "$tmp/cgroup-hold"
mount -n --rbind /sys/fs/cgroup "$tmp/cgroup-hold"
umount -n -l /sys
mount -n -t sysfs sysfs /sys
mount -n --move "$tmp/cgroup-hold" /sys/fs/cgroup
exec "$@"
"""


def docker_cli() -> Path | None:
    """Debian's docker CLI (matches the daemon's API), else whatever ``docker`` is on PATH."""
    if DEBIAN_DOCKER_CLI.exists():
        return DEBIAN_DOCKER_CLI
    found = shutil.which("docker")
    return Path(found) if found else None


def unavailable_reason() -> str | None:
    """Why a private dockerd cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "a private dockerd needs root"
    if not DOCKERD.exists():
        return f"{DOCKERD} missing: docker.io is not installed (`make venv` installs it)"
    if docker_cli() is None:
        return "no docker CLI (/usr/bin/docker from docker.io)"
    for tool in ("nsenter", "unshare", "mount", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} missing (util-linux / iproute2)"
    if not BUSYBOX.exists():
        return f"{BUSYBOX} missing: busybox-static is not installed (`make venv` installs it)"
    return None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(os.fspath(self._path))
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def api_request(sock_path: Path, method: str, path: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP request to a docker API socket; returns (status, body). Raises OSError when unreachable."""
    conn = _UnixHTTPConnection(sock_path, timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def ping(sock_path: Path, *, timeout: float = 1.0) -> bool:
    """True when the daemon answers ``GET /_ping`` with 200 OK within ``timeout``."""
    try:
        status, body = api_request(sock_path, "GET", "/_ping", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return False
    return status == 200 and body == b"OK"


def _mountpoints_under(root: Path) -> list[str]:
    """Mount points at or below ``root`` in our mount namespace, deepest first."""
    prefix = os.fspath(root)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")  # \040 and friends
        if mnt == prefix or mnt.startswith(prefix + "/"):
            found.append(mnt)
    return sorted(found, key=len, reverse=True)


def _cgroup_mounts() -> list[Path]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            mounts.append(Path(left.split()[4]))
    return mounts


def _pids_in_cgroup(top: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirs, _files in os.walk(top):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split())
    return {p for p in pids if pid_alive(p)}


def _pids_naming(text: str) -> set[int]:
    """PIDs of processes whose command line contains ``text``."""
    needle = text.encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
    return {p for p in pids if pid_alive(p)}


@dataclass
class Dockerd:
    """A running private dockerd. Use :func:`start_dockerd` to get one and :meth:`stop` to end it."""

    root: Path  # TMP: everything the daemon writes is below it
    netns: NetNS
    bridge: str
    bridge_cidr: str  # the bridge's address, e.g. 198.19.0.1/24: gateway and subnet of containers
    cgroup_parent: str
    process: subprocess.Popen[bytes] = field(repr=False)
    _log: IO[bytes] = field(repr=False)
    start_seconds: float = 0.0  # how long it took to answer /_ping

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        """The value for ``docker -H`` / ``DOCKER_HOST``."""
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_interface(self.bridge_cidr).ip)

    @property
    def subnet(self) -> str:
        return str(ipaddress.ip_interface(self.bridge_cidr).network)

    def docker(
        self, argv: Argv, check: bool = True, *, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon (``docker -H unix://TMP/docker.sock argv...``)."""
        cli = docker_cli()
        assert cli is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": os.fspath(self.root / "cli"),
            "DOCKER_CONFIG": os.fspath(self.root / "cli"),  # no ~/.docker/config.json, no contexts
        }
        return run([cli, "-H", self.host, *argv], check=check, timeout=timeout, input=input, env=env)

    def api(self, method: str, path: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
        """A raw API request over the socket, e.g. ``api("GET", "/version")``."""
        return api_request(self.socket, method, path, timeout=timeout)

    def api_json(self, path: str, *, timeout: float = 5.0) -> object:
        status, body = self.api("GET", path, timeout=timeout)
        if status != 200:
            raise CommandError(f"GET {path}: HTTP {status}: {body[:200]!r}")
        return json.loads(body)

    def ping(self, timeout: float = 1.0) -> bool:
        return ping(self.socket, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def load_test_image(self, cache: Path = IMAGE_CACHE) -> str:
        """Make ``corral-test/busybox:latest`` (also tagged ``corral/busybox:latest``) available: ``docker
        load`` of the archive ``python -m image.busybox`` builds, building it first when missing or stale.
        """
        self.docker(["load", "-q", "-i", busybox_image.ensure(cache)])
        return TEST_IMAGE

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the daemon and remove every trace of it. Idempotent; safe when it already died."""
        # Containers first: dockerd would give each its stop timeout (10 s) before killing it.
        self._kill_pids(self._cgroup_pids, timeout=5)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        self._kill_leftovers()
        self._remove_cgroups()
        for mnt in _mountpoints_under(self.root):
            run(["umount", "-l", mnt], check=False)
        if self.root.exists():
            shutil.rmtree(self.root)

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for top in self.cgroup_dirs():
            pids |= _pids_in_cgroup(top)
        return pids

    def leftover_pids(self) -> set[int]:
        """Processes that still name TMP (containerd, shims) or still sit in the daemon's cgroups."""
        pids = _pids_naming(os.fspath(self.root)) | self._cgroup_pids()
        pids.discard(os.getpid())
        return pids

    @staticmethod
    def _kill_pids(find: Callable[[], set[int]], timeout: float) -> None:
        """SIGKILL whatever ``find`` returns until it returns nothing (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        while (pids := find()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def _kill_leftovers(self) -> None:
        self._kill_pids(self.leftover_pids, timeout=10)

    def cgroup_dirs(self) -> list[Path]:
        """The daemon's cgroup parent in each cgroup hierarchy where it exists."""
        return [d for m in _cgroup_mounts() if (d := m / self.cgroup_parent.lstrip("/")).is_dir()]

    def _remove_cgroups(self) -> None:
        for top in self.cgroup_dirs():
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                for _ in range(50):  # EBUSY while the last tasks are still exiting
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)


def create_bridge(netns: NetNS, name: str = DEFAULT_BRIDGE, cidr: str = DEFAULT_BRIDGE_CIDR) -> None:
    """A Linux bridge with an address, inside ``netns``, for dockerd's ``--bridge``."""
    ipaddress.ip_interface(cidr)
    netns.ip("link", "add", name, "type", "bridge")
    netns.ip("addr", "add", cidr, "dev", name)
    netns.ip("link", "set", name, "up")


def start_dockerd(
    netns: NetNS,
    *,
    bridge: str = DEFAULT_BRIDGE,
    bridge_cidr: str = DEFAULT_BRIDGE_CIDR,
    iptables: bool = True,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> Dockerd:
    """Start a private dockerd in ``netns`` and wait until it answers ``/_ping``.

    ``bridge`` is created in ``netns`` with ``bridge_cidr`` unless a link of that name is already there.
    The caller owns ``netns`` and must call :meth:`Dockerd.stop` (the ``dockerd`` fixture does both).
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    if bridge not in netns.links():
        create_bridge(netns, bridge, bridge_cidr)
    root = Path(tempfile.mkdtemp(prefix="corral-dockerd-"))
    (root / "cli").mkdir()
    (root / "daemon.json").write_text("{}\n")
    cgroup_parent = f"/{root.name}"
    args = [
        os.fspath(DOCKERD),
        "--config-file", os.fspath(root / "daemon.json"),
        "--host", f"unix://{root / 'docker.sock'}",
        "--data-root", os.fspath(root / "data"),
        "--exec-root", os.fspath(root / "exec"),
        "--pidfile", os.fspath(root / "docker.pid"),
        "--bridge", bridge,
        "--dns", str(ipaddress.ip_interface(bridge_cidr).ip),
        "--cgroup-parent", cgroup_parent,
        "--shutdown-timeout", "2",
        f"--iptables={'true' if iptables else 'false'}",
        *extra_args,
    ]  # fmt: skip
    argv = [
        "nsenter", f"--net={netns.path}", "--",
        "unshare", "--mount", "--propagation", "slave", "--",
        "sh", "-c", _WRAPPER, "corral-dockerd", os.fspath(root), *args,
    ]  # fmt: skip
    log = (root / "dockerd.log").open("ab")
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    except BaseException:
        log.close()
        shutil.rmtree(root)
        raise
    d = Dockerd(root, netns, bridge, bridge_cidr, cgroup_parent, proc, log)
    try:
        deadline = started + ready_timeout
        while not d.ping(timeout=1.0):
            if proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{d.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd not answering /_ping after {ready_timeout} s:\n{d.log_tail()}")
            time.sleep(0.05)
        d.start_seconds = time.monotonic() - started
    except BaseException:
        d.stop()
        raise
    return d


@contextlib.contextmanager
def dockerd_factory(make_netns: Callable[[], NetNS]) -> Iterator[Callable[..., Dockerd]]:
    """Yields ``make(netns=None, *, load_image=True, **start_dockerd_kwargs) -> Dockerd``.

    Without ``netns``, each daemon gets a new namespace from ``make_netns`` (whose owner deletes it). Every
    daemon made is stopped and its traces removed on exit, even after an error.
    """
    made: list[Dockerd] = []

    def make(netns: NetNS | None = None, *, load_image: bool = True, **kwargs: Any) -> Dockerd:
        d = start_dockerd(netns or make_netns(), **kwargs)
        made.append(d)
        if load_image:
            d.load_test_image()
        return d

    try:
        yield make
    finally:
        errors = []
        for d in reversed(made):
            try:
                d.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]
