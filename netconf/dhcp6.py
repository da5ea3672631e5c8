"""corral's DHCPv6 client: Debian's ``dhcpcd`` (package dhcpcd-base), one process per link, supervised by
PID 1 and told to configure nothing (``--noconfigure``).

pyroute2 has no DHCPv6 client, so the protocol is dhcpcd's (SOLICIT/ADVERTISE/REQUEST/REPLY, renewal at
T1, rebinding at T2, expiry, CONFIRM after a carrier change or a restart, RELEASE); corral only keeps
the lease, as for DHCPv4 (``netconf.dhcp``): dhcpcd calls its hook script at each event, the hook (a
fixed script corral writes, ``HOOK``) prints the event's variables as one JSON line on dhcpcd's stdout,
which corral reads (bounded) and turns into the lease held (``lease6``). The leases are desired state for
the network plan (``netconf.plan``: the address, a /128, with the lease's valid and preferred
lifetimes; the DNS servers and search domains when the config gives none); each change is published
(``DhcpLeaseChanged``, family 6), which marks the network reconciler dirty.

- bound, renewed, rebound, confirmed (``BOUND6``, ``RENEW6``, ``REBIND6``, ``REBOOT6``, ``INFORM6``): the
  lease is held (a renewal moves its end);
- expired, released (``EXPIRE6``, ``RELEASE6``): the lease is gone. A held lease also goes at its end
  should dhcpcd not say so (it died, or is restarting).

dhcpcd runs with a fixed config (``CONFIG``, never the config's values: only the interface name, checked,
is an argument): IPv6 only, an address asked for at once (``ia_na``) without waiting for a router
advertisement (the kernel handles those: SLAAC and the default route, ``accept_ra``), a DUID made from the
link's MAC (``duid ll``: the same address after a restart, with nothing stored), no timeout. A dhcpcd that
dies is started again with the one backoff (``supervisor.backoff``). Stopping a client because the config
no longer wants DHCPv6 releases the lease (SIGALRM: dhcpcd sends RELEASE and exits); at shutdown, or when
the link is gone, it is stopped without releasing (SIGTERM). dhcpcd's own log lines go to the journal
(``unit=dhcpcd6:<link>``)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from netconf.model import DhcpOptions, IPAddress, IPInterface, valid_ifname
from netconf.observed import DhcpClient, DhcpLease, Link
from supervisor.atomic import write_atomic
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events.netlink import DhcpLeaseChanged
from supervisor.journal.lines import parse_line
from supervisor.process import PIPE, Child, ProcessManager
from supervisor.tasks import spawn_task

log = structlog.get_logger("netconf.dhcp6")

DHCPCD = "/usr/sbin/dhcpcd"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
FOREVER = 0xFFFFFFFF
MARK = "@corral-dhcp6 "
"""The start of the hook's lines on dhcpcd's stdout (any other line there is logged)."""
MAX_EVENT = 64 * 1024
"""Bytes of one hook line corral reads at most (a DHCPv6 message is smaller); longer ones are dropped."""
MAX_NAMES = 16
"""Name servers and search domains taken from one lease, each."""
STOP_GRACE = 5.0

HELD = {"BOUND6": "bound", "RENEW6": "renewed", "REBIND6": "rebound", "REBOOT6": "confirmed",
        "INFORM6": "bound"}
"""dhcpcd's reasons that mean a lease is held, as corral names the event."""
GONE = {"EXPIRE6": "expired", "RELEASE6": "released"}
"""dhcpcd's reasons that mean the lease is gone."""

CONFIG = """\
# corral's dhcpcd config (written by corral; dhcpcd configures nothing, corral's network plan does)
ipv6only
noipv6rs
ia_na
duid ll
timeout 0
persistent
option dhcp6_name_servers, dhcp6_domain_search
"""

HOOK = """\
#!{python} -I
# corral's dhcpcd hook (written by corral): the event as one JSON line on dhcpcd's stdout, which corral
# reads. It configures nothing.
import json, os, sys
event = {{k: v for k, v in os.environ.items()
         if k in ("reason", "interface", "protocol") or k.startswith(("new_dhcp6_", "old_dhcp6_"))}}
sys.stdout.write({mark!r} + json.dumps(event) + "\\n")
sys.stdout.flush()
"""


def argv_for(link: str, config: Path, hook: Path, program: str = DHCPCD) -> list[str]:
    """dhcpcd's command line for ``link`` (checked: a kernel interface name that is not an option)."""
    if not valid_ifname(link) or link.startswith("-"):
        raise ValueError(f"not an interface name: {link!r}")
    return [program, "--nobackground", "--noconfigure", "--ipv6only", "--config", str(config),
            "--script", str(hook), link]


@dataclass(frozen=True)
class Lease6:
    """What a DHCPv6 lease says, as corral uses it."""

    address: IPInterface | None
    nameservers: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    server: str | None = None
    valid: int | None = None  # seconds (None: infinite)
    preferred: int | None = None
    obtained: float = 0.0  # Unix time
    ends: float | None = None  # time.monotonic() seconds (None: no end)

    @property
    def expires(self) -> float | None:
        return None if self.valid is None else self.obtained + self.valid

    @property
    def preferred_ends(self) -> float | None:
        """The end of the address's preferred lifetime, on the monotonic clock (None: the lease's end)."""
        if self.ends is None or self.preferred is None or self.valid is None:
            return None
        return self.ends - self.valid + min(self.preferred, self.valid)

    def held(self, link: str) -> DhcpLease:
        return DhcpLease(link, 6, self.address, None, self.nameservers, self.search, expires=self.ends,
                         preferred=self.preferred_ends)


def parse_event(line: bytes) -> dict[str, str] | None:
    """One of the hook's lines: the event's variables (None: not the hook's, or damaged)."""
    if len(line) > MAX_EVENT:
        return None
    text = line.decode(errors="replace").strip()
    if not text.startswith(MARK.strip()):
        return None
    try:
        data = json.loads(text[len(MARK.strip()):])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return None if n < 0 or n >= FOREVER else n


def lease6(env: Mapping[str, str], now: float | None = None, mono: float | None = None) -> Lease6:
    """The lease in an event's ``new_dhcp6_*`` variables (dhcpcd's names): the first address of the first
    IA_NA with its lifetimes, the name servers and search domains. ``now``/``mono``: the wall and
    monotonic clocks at the event."""
    now = time.time() if now is None else now
    mono = time.monotonic() if mono is None else mono
    address: IPInterface | None = None
    valid = preferred = None
    raw = env.get("new_dhcp6_ia_na1_ia_addr1")
    if raw:
        with contextlib.suppress(ValueError):
            ip = ipaddress.IPv6Address(raw.strip())
            if not (ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_loopback):
                address = ipaddress.IPv6Interface(f"{ip}/128")
        valid = _seconds(env.get("new_dhcp6_ia_na1_ia_addr1_vltime"))
        preferred = _seconds(env.get("new_dhcp6_ia_na1_ia_addr1_pltime"))
    servers: list[IPAddress] = []
    for word in env.get("new_dhcp6_name_servers", "").split()[:MAX_NAMES]:
        with contextlib.suppress(ValueError):
            servers.append(ipaddress.IPv6Address(word))
    search = [w.rstrip(".") for w in env.get("new_dhcp6_domain_search", "").split()[:MAX_NAMES]
              if w.rstrip(".")]
    if address is None:
        valid = preferred = None
    return Lease6(
        address=address,
        nameservers=tuple(dict.fromkeys(servers)),
        search=tuple(dict.fromkeys(search)),
        server=env.get("new_dhcp6_server_id") or None,
        valid=valid,
        preferred=preferred,
        obtained=now,
        ends=None if valid is None else mono + valid,
    )


class _Client:
    """One dhcpcd on one link: started again (after the backoff) whenever it dies, until stopped."""

    def __init__(self, manager: Dhcp6Manager, link: str, options: DhcpOptions) -> None:
        self.m = manager
        self.link = link
        self.options = options
        self.child: Child | None = None
        self.lease: Lease6 | None = None
        self.reason: str | None = None
        self.last_event: str | None = None
        self.error: str | None = None
        self.state = "starting"  # starting | running | restarting | failed | stopped
        self.restarts = 0
        self.backoff = Backoff(initial=1.0, cap=60.0, first=1.0, reset_after=60.0)
        self._retry: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._stopping = False

    @property
    def unit(self) -> str:
        return f"dhcpcd6:{self.link}"

    def start(self) -> None:
        self._retry = None
        if self._stopping:
            return
        try:
            argv = argv_for(self.link, self.m.config_path, self.m.hook_path, self.m.program)
            child = self.m.processes.spawn(argv, name=self.unit, env={"PATH": PATH}, stdout=PIPE,
                                           stderr=PIPE)
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
            delay = self.backoff.next_delay()
            level = log.error if self.backoff.failures <= 1 else log.info  # said once, then retried quietly
            level("DHCPv6 client cannot start", link=self.link, error=self.error, retry_in=delay)
            self._retry = asyncio.get_running_loop().call_later(delay, self.start)
            return
        self.child, self.error, self.state = child, None, "running"
        log.info("DHCPv6 client started", link=self.link, pid=child.pid)
        assert child.stdout is not None and child.stderr is not None
        spawn_task(self._events(child.stdout), name=f"{self.unit}:events")
        spawn_task(self._log(child.stderr), name=f"{self.unit}:log")
        spawn_task(self._watch(child), name=f"{self.unit}:watch")

    async def _watch(self, child: Child) -> None:
        status = await child.wait()
        _kill_group(child)
        if self._stopping or self.child is not child:
            return
        self.child = None
        self.restarts += 1
        self.state = "restarting"
        delay = self.backoff.next_delay(ran_for=time.monotonic() - child.started)
        log.warning("DHCPv6 client exited; restarting", link=self.link, status=status.describe(),
                    retry_in=delay)
        self._retry = asyncio.get_running_loop().call_later(delay, self.start)

    async def _events(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # longer than the reader's limit: dropped
                continue
            if not line:
                return
            event = parse_event(line)
            if event is None:
                text = line.decode(errors="replace").strip()
                if text:
                    log.info(text[:500], unit=self.unit, stream="stdout")
                continue
            if event.get("interface", self.link) == self.link:
                self.on_event(event)

    async def _log(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if text:
                parsed = parse_line(text[:2000])
                getattr(log, parsed.level)(parsed.message, unit=self.unit, stream="stderr")

    def on_event(self, event: Mapping[str, str]) -> None:
        """What dhcpcd's hook reported: a lease held, or gone; other reasons only move ``reason``."""
        reason = event.get("reason", "")
        self.reason = reason
        if reason in HELD:
            self.hold(lease6(event), HELD[reason])
        elif reason in GONE:
            self.drop(GONE[reason])

    def hold(self, lease: Lease6, how: str) -> None:
        self.lease = lease
        self._arm_expiry()
        log.info(f"DHCPv6 lease {how}", link=self.link,
                 address=str(lease.address) if lease.address else None, valid=lease.valid,
                 preferred=lease.preferred, nameservers=[str(s) for s in lease.nameservers])
        self.publish(how)

    def drop(self, how: str) -> None:
        self._disarm_expiry()
        if self.lease is None:
            return
        self.lease = None
        log.info(f"DHCPv6 lease {how}", link=self.link)
        self.publish(how)

    def _arm_expiry(self) -> None:
        """The lease goes at its end unless renewed first, whatever becomes of dhcpcd."""
        self._disarm_expiry()
        lease = self.lease
        if lease is None or lease.ends is None:
            return

        def fire() -> None:
            self._expiry = None
            if self.lease is lease:
                self.drop("expired")

        self._expiry = asyncio.get_running_loop().call_later(max(0.0, lease.ends - time.monotonic()), fire)

    def _disarm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    def publish(self, state: str) -> None:
        lease = self.lease
        self.last_event = state
        self.m.bus.publish(DhcpLeaseChanged(
            link=self.link, family=6, state=state,
            address=str(lease.address) if lease and lease.address else None,
            server=lease.server if lease else None,
            lease_time=lease.valid if lease else None,
            expires=lease.expires if lease else None,
        ))

    async def stop(self, release: bool, publish: bool = True) -> None:
        """Stop dhcpcd: with ``release``, it sends RELEASE first (SIGALRM). The lease is forgotten."""
        self._stopping = True
        self.state = "stopped"
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        child, self.child = self.child, None
        if child is not None and child.running:
            await child.stop(STOP_GRACE, signal.SIGALRM if release else signal.SIGTERM)
        if child is not None:
            _kill_group(child)
        self._disarm_expiry()
        had = self.lease is not None
        self.lease = None
        if had and publish:
            self.publish("released" if release else "stopped")

    def status(self) -> dict[str, Any]:
        lease = self.lease
        return {
            "link": self.link,
            "family": 6,
            "state": self.state,
            "dhcp_state": self.reason.lower() if self.reason else None,
            "last_event": self.last_event,
            "error": self.error,
            "pid": self.child.pid if self.child is not None else None,
            "restarts": self.restarts,
            "lease": None if lease is None else {
                "address": str(lease.address) if lease.address else None,
                "gateway": None,
                "nameservers": [str(s) for s in lease.nameservers],
                "search": list(lease.search),
                "mtu": None,
                "server": lease.server,
                "lease_time": lease.valid,
                "preferred_lifetime": lease.preferred,
                "obtained": lease.obtained,
                "expires": lease.expires,
                "remaining": None if lease.expires is None else max(0, int(lease.expires - time.time())),
                "confirmed": True,
            },
        }


def _kill_group(child: Child) -> None:
    """dhcpcd's privilege-separation helpers (its process group: dhcpcd leads a session of its own)
    outlive a dhcpcd that was killed, holding the DHCPv6 client port: they go with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)


class Dhcp6Manager:
    """One supervised dhcpcd per link that wants DHCPv6. ``clients()`` feeds the plan's observation,
    ``leases()`` its desired state."""

    def __init__(self, bus: Bus, processes: ProcessManager, run_dir: Path, program: str = DHCPCD) -> None:
        self.bus = bus
        self.processes = processes
        self.run_dir = run_dir
        self.program = program
        self._clients: dict[str, _Client] = {}
        self._files_ready = False

    @property
    def config_path(self) -> Path:
        return self.run_dir / "dhcpcd6.conf"

    @property
    def hook_path(self) -> Path:
        return self.run_dir / "dhcpcd6-hook"

    async def _write_files(self) -> None:
        if self._files_ready:
            return
        hook = HOOK.format(python=sys.executable or "/usr/bin/python3", mark=MARK)

        def write() -> None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.config_path, CONFIG.encode(), mode=0o644)
            write_atomic(self.hook_path, hook.encode(), mode=0o755)

        await asyncio.to_thread(write)
        self._files_ready = True

    def clients(self) -> tuple[DhcpClient, ...]:
        return tuple(DhcpClient(c.link, 6, c.options) for c in self._clients.values())

    def leases(self) -> tuple[DhcpLease, ...]:
        return tuple(c.lease.held(c.link) for c in self._clients.values() if c.lease is not None)

    def lease_of(self, link: str) -> Lease6 | None:
        c = self._clients.get(link)
        return None if c is None else c.lease

    async def start(self, link: str, options: DhcpOptions) -> None:
        old = self._clients.pop(link, None)
        if old is not None:
            await old.stop(release=False)
        c = _Client(self, link, options)
        self._clients[link] = c
        try:
            await self._write_files()
        except OSError as exc:
            c.state, c.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("DHCPv6 client cannot start: its files cannot be written", link=link, error=c.error,
                      directory=str(self.run_dir))
            return
        if self._clients.get(link) is c:
            c.start()

    async def stop(self, link: str, release: bool = True) -> None:
        c = self._clients.pop(link, None)
        if c is not None:
            await c.stop(release)
            log.info("DHCPv6 client stopped", link=link, released=release)

    async def sync(self, links: Iterable[Link]) -> None:
        """A link that is gone: its client stops (no release) and its lease is forgotten. dhcpcd follows
        the carrier itself (a CONFIRM when it comes back)."""
        names = {link.name for link in links}
        for name in [n for n in self._clients if n not in names]:
            log.info("link gone; its DHCPv6 client is stopped", link=name)
            await self.stop(name, release=False)

    async def close(self) -> None:
        """Shutdown: stop every dhcpcd without releasing (the address stays for its lifetime)."""
        for link in list(self._clients):
            c = self._clients.pop(link)
            await c.stop(release=False, publish=False)

    def status(self) -> dict[str, dict[str, Any]]:
        return {f"{c.link}/6": c.status() for c in self._clients.values()}
