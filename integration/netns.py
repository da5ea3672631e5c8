"""Network namespaces and veth pairs for integration tests.

Everything here lives inside namespaces that the tests create: a veth pair is created directly inside its
first namespace with ``ip -n`` (its peer goes straight into the second one), so no test interface ever
appears in the host's namespace. Namespaces are named ``corral-test-<pid>-<random>`` so that leftovers of a
crashed run can be told apart from namespaces of a run still going on (see :func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

PREFIX = "corral-test"
NETNS_DIR = Path("/run/netns")
IFNAMSIZ = 15  # the kernel's limit on interface names (16 with the NUL)

Argv = Sequence[str | os.PathLike[str]]


class CommandError(RuntimeError):
    """A command failed; the message carries its argv, exit status and output."""


def run(
    argv: Argv,
    *,
    check: bool = True,
    timeout: float = 30.0,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell), capture text output; raise CommandError on failure."""
    args = [os.fspath(a) for a in argv]
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, input=input, env=env, check=False
    )
    if check and proc.returncode != 0:
        raise CommandError(
            f"{' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout.strip()}\n"
            f"stderr: {proc.stderr.strip()}"
        )
    return proc


def unavailable(reason: str, ci_note: str = "`make venv` should have provided it") -> NoReturn:
    """Skip the current test because a tool is missing, but fail it under CI=true, where `make venv` must
    have installed everything (``ci_note`` says what should have worked instead)."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: {ci_note})", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    if os.geteuid() != 0:
        unavailable("needs root (network namespaces, mounts)")


def unique_name(prefix: str = PREFIX) -> str:
    """``<prefix>-<our pid>-<8 hex digits>``: unique, and tells which process owns it."""
    return f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _kill_and_wait(pids: Sequence[int], *, grace: float) -> None:
    """SIGTERM ``pids``, wait up to ``grace`` seconds, then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(pid_alive(p) for p in alive):
            time.sleep(0.02)


@dataclass
class NetNS:
    """A named network namespace (``ip netns``) with ``lo`` up."""

    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def run(
        self, argv: Argv, check: bool = True, *, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace (``ip netns exec NAME argv...``)."""
        return run(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout, input=input)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n NAME args...`` (no new mount namespace, cheaper than :meth:`run`)."""
        return run(["ip", "-n", self.name, *args], check=check)

    def pids(self) -> list[int]:
        """PIDs of the processes whose network namespace this is."""
        out = run(["ip", "netns", "pids", self.name], check=False).stdout
        return [int(p) for p in out.split()]

    def links(self) -> list[str]:
        """Interface names in the namespace."""
        return [str(link["ifname"]) for link in json.loads(self.ip("-j", "link", "show").stdout)]

    def mac(self, ifname: str) -> str:
        """The link-layer address of ``ifname``."""
        [link] = json.loads(self.ip("-j", "link", "show", "dev", ifname).stdout)
        return str(link["address"])

    def exists(self) -> bool:
        return self.path.exists()

    def delete(self, *, grace: float = 2.0) -> None:
        """Kill what still runs in the namespace (SIGTERM, then SIGKILL), then delete it. Idempotent."""
        if not self.exists():
            return
        for _ in range(3):
            pids = self.pids()
            if not pids:
                break
            _kill_and_wait(pids, grace=grace)
        run(["ip", "netns", "delete", self.name], check=False)
        if self.exists():  # ip netns delete failed: a mount still pins it
            run(["umount", "-l", str(self.path)], check=False)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def create_netns(name: str | None = None) -> NetNS:
    """Create a namespace (default name from :func:`unique_name`) and bring its ``lo`` up."""
    ns = NetNS(name or unique_name())
    run(["ip", "netns", "add", ns.name])
    try:
        ns.ip("link", "set", "lo", "up")
    except BaseException:
        ns.delete()
        raise
    return ns


def list_netns(prefix: str = PREFIX) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix + "-"))


def sweep_stale(prefix: str = PREFIX) -> list[str]:
    """Delete ``<prefix>-<pid>-*`` namespaces whose owning pid is gone (left by a killed test run)."""
    removed = []
    for name in list_netns(prefix):
        m = re.fullmatch(re.escape(prefix) + r"-(\d+)-[0-9a-f]+", name)
        if m and not pid_alive(int(m.group(1))):
            NetNS(name).delete(grace=0.5)
            removed.append(name)
    return removed


@dataclass(frozen=True)
class VethEnd:
    netns: NetNS
    name: str
    mac: str
    address: str | None  # CIDR, e.g. "198.18.0.1/24", when one was assigned

    @property
    def ip(self) -> str | None:
        """The bare address, without the prefix length."""
        return str(ipaddress.ip_interface(self.address).ip) if self.address else None


@dataclass(frozen=True)
class VethPair:
    a: VethEnd
    b: VethEnd

    @property
    def names(self) -> tuple[str, str]:
        return self.a.name, self.b.name

    @property
    def macs(self) -> tuple[str, str]:
        return self.a.mac, self.b.mac


def veth_pair(
    ns_a: NetNS,
    ns_b: NetNS,
    name_a: str,
    name_b: str,
    *,
    addr_a: str | None = None,
    addr_b: str | None = None,
    up: bool = True,
) -> VethPair:
    """Connect two namespaces with a veth pair, ``name_a`` in ``ns_a`` and ``name_b`` in ``ns_b``.

    The pair is created inside ``ns_a`` and its peer is put straight into ``ns_b``: it never exists in the
    host's namespace. ``addr_a``/``addr_b`` are CIDR addresses to assign (use 198.18.0.0/15). Deleting either
    namespace deletes the pair.
    """
    for n in (name_a, name_b):
        if not 0 < len(n) <= IFNAMSIZ or "/" in n or n.strip() != n:
            raise ValueError(f"bad interface name {n!r} (1 to {IFNAMSIZ} characters)")
    if ns_a.name == ns_b.name:
        ns_a.ip("link", "add", name_a, "type", "veth", "peer", "name", name_b)
    else:
        ns_a.ip("link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b.name)
    ends = []
    for ns, name, addr in ((ns_a, name_a, addr_a), (ns_b, name_b, addr_b)):
        if addr:
            ipaddress.ip_interface(addr)  # validate before handing it to ip
            ns.ip("addr", "add", addr, "dev", name)
        if up:
            ns.ip("link", "set", name, "up")
        ends.append(VethEnd(ns, name, ns.mac(name), addr))
    return VethPair(ends[0], ends[1])


def host_net_snapshot() -> dict[str, str]:
    """What the host's network namespace looks like: links, addresses, routes, rules, forwarding.

    Compare two snapshots to prove a test left the host alone. Counters and timers are left out.
    """
    def out(*argv: str) -> str:
        return run(argv, check=False).stdout

    links = "\n".join(
        re.sub(r"\s+(qlen \d+|altname \S+)", "", line)
        for line in out("ip", "-o", "link", "show").splitlines()
    )
    addrs = "\n".join(
        re.sub(r"\s+(valid_lft|preferred_lft) \S+", "", line)
        for line in out("ip", "-o", "addr", "show").splitlines()
    )
    snap = {
        "link": links,
        "addr": addrs,
        "route4": out("ip", "-4", "route", "show", "table", "all"),
        "route6": re.sub(r"expires \S+", "", out("ip", "-6", "route", "show", "table", "all")),
        "rule": out("ip", "rule", "show"),
    }
    for key in ("ipv4/ip_forward", "ipv4/conf/all/forwarding", "ipv6/conf/all/forwarding"):
        p = Path("/proc/sys/net") / key
        snap[key] = p.read_text().strip() if p.exists() else ""
    return snap


@contextlib.contextmanager
def netns_factory() -> Iterator[Callable[..., NetNS]]:
    """Yields ``make(name=None) -> NetNS``; every namespace made is deleted on exit, even after an error."""
    made: list[NetNS] = []

    def make(name: str | None = None) -> NetNS:
        ns = create_netns(name)
        made.append(ns)
        return ns

    try:
        yield make
    finally:
        errors = []
        for ns in reversed(made):
            try:
                ns.delete()
            except Exception as e:  # keep deleting the others
                errors.append(e)
        if errors:
            raise errors[0]
