"""corral's DHCPv4 client: pyroute2's asyncio client (``pyroute2.dhcp.client.AsyncDHCPClient``), one per
link, inside PID 1's loop.

pyroute2 runs the protocol (DISCOVER/OFFER/REQUEST/ACK, renewal at T1, rebinding at T2, expiry,
RELEASE); corral hooks into its triggers and only keeps the lease: it never changes the kernel. The
leases held (``leases()``) are desired state for the network reconciler, beside the config; each change
is published (``DhcpLeaseChanged``, which marks the reconciler dirty), and its plan decides what a lease
brings (``netconf.plan``: the address with the lease's lifetime, the default route, the MTU, DNS;
config first) and takes away again when the lease changes or goes:

- bound, renewed, rebound: the lease is held (a renewal moves its end, so its address's lifetime);
- unbound (released, or refused with a NAK) and expired: the lease is gone.

Carrier down pauses a client (no RELEASE, the address stays until its lifetime ends); carrier up starts
a new exchange (a REQUEST for the lease held, else a DISCOVER). A link that disappears is forgotten.
Stopping a client because the config no longer wants DHCP releases its lease. The hostname is sent
(option 12). Leases are kept under the state directory, so that after a restart the client asks for
the same address again; until the server confirms it, such a lease is held unconfirmed (what it brought
stays, nothing is added for it). DHCPv6 clients are dhcpcd processes (``netconf.dhcp6``): this manager
hands family 6 to its ``Dhcp6Manager`` and reports both; without one (tests of DHCPv4 alone), such a
client is recorded (so the plan is stable) and reported as unsupported.

How pyroute2's client is used, and why:

- ``handle_signals=False``: PID 1 owns every signal;
- its socket's MAC watcher (a second netlink socket per client, decoding every link message with
  pyroute2, which overflows in a flap storm) is replaced: the handler tells the client the link's MAC
  from its own observation (``sync``);
- leases live in memory (``Lease.dump`` is a no-op); corral writes them atomically from a thread;
- its "network is down" errors (the link went down under a running client) are expected: they are
  logged at info level, and the handler restarts the client when the link comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from netconf.dhcp4_lease import LeaseInfo, lease_info
from netconf.dhcp6 import Dhcp6Manager
from netconf.model import DhcpOptions
from netconf.observed import DhcpClient, DhcpLease, Link
from supervisor.atomic import remove_durably, write_atomic
from supervisor.bus import Bus
from supervisor.events.netlink import DhcpLeaseChanged
from supervisor.tasks import spawn_task

log = structlog.get_logger("netconf.dhcp")

class _QuietNetworkDown(logging.Filter):
    """pyroute2's client logs ERROR when its link goes down under it; that is expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and "network is down" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_QUIET = _QuietNetworkDown()


def _install_log_filter() -> None:
    logger = logging.getLogger("pyroute2.dhcp.client")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)


@dataclass
class _Client:
    link: str
    family: int
    options: DhcpOptions
    state: str = "starting"  # starting | running | paused | unsupported | failed
    client: Any = None
    lease: Any = None  # pyroute2 Lease held (also while paused)
    info: LeaseInfo | None = None  # what the lease held says (None: no lease)
    confirmed: bool = True  # false for a lease stored before a restart, until the server confirms it
    dhcp_state: str | None = None  # pyroute2's FSM state name
    last_event: str | None = None
    expiry: asyncio.TimerHandle | None = None
    error: str | None = None
    mac: str | None = None
    events: list[str] = field(default_factory=list)


class DhcpManager:
    """One pyroute2 DHCPv4 client per link. ``clients()`` feeds the plan's observation, ``leases()`` its
    desired state."""

    def __init__(self, bus: Bus, lease_dir: Path | None = None,
                 hostname: Callable[[], str] = socket.gethostname,
                 timeouts: dict[str, int] | None = None, dhcp6: Dhcp6Manager | None = None) -> None:
        self.bus = bus
        self.dhcp6 = dhcp6
        self.lease_dir = lease_dir
        self.hostname = hostname
        self._clients: dict[tuple[str, int], _Client] = {}
        self._stored: dict[str, dict[str, Any]] = {}  # link -> lease as persisted
        self._kept: dict[str, LeaseInfo] = {}  # stored leases of links with no client (yet), after a restart
        self._lock = asyncio.Lock()
        self._timeouts = timeouts
        self.exchanges = 0
        _install_log_filter()

    # ---- persistence -----------------------------------------------------------------------------
    async def load(self) -> None:
        if self.lease_dir is None:
            return
        self._stored = await asyncio.to_thread(_read_leases, self.lease_dir)
        for link in self._stored:
            lease = self._stored_lease(link)
            if lease is not None:
                with contextlib.suppress(Exception):  # a damaged file: forget it
                    self._kept[link] = lease_info(lease)

    async def _persist(self, link: str, lease: Any | None) -> None:
        self._kept.pop(link, None)
        if self.lease_dir is None:
            return
        if lease is None:
            self._stored.pop(link, None)
            await asyncio.to_thread(remove_durably, self.lease_dir / f"{link}.json")
            return
        data = json.loads(json.dumps(asdict(lease), default=_jsonable))
        self._stored[link] = data
        await asyncio.to_thread(_write_lease, self.lease_dir, link, data)

    def _stored_lease(self, link: str) -> Any | None:
        from pyroute2.dhcp.leases import JSONStdoutLease

        data = self._stored.get(link)
        if not data:
            return None
        try:
            lease = JSONStdoutLease(**data)
            if lease.expired:
                return None
        except Exception as exc:  # a damaged file: forget it
            log.info("stored DHCP lease ignored", link=link, error=repr(exc))
            return None
        return lease

    # ---- what the plan sees ----------------------------------------------------------------------
    def clients(self) -> tuple[DhcpClient, ...]:
        v6 = self.dhcp6.clients() if self.dhcp6 is not None else ()
        return (*(DhcpClient(c.link, c.family, c.options) for c in self._clients.values()), *v6)

    def leases(self) -> tuple[DhcpLease, ...]:
        """The leases held: each client's, and (after a restart) the stored ones of links whose client
        has not started yet, unconfirmed."""
        out: list[DhcpLease] = []
        for c in self._clients.values():
            if c.info is not None:
                out.append(c.info.held(c.link, c.family, c.confirmed))
        now = time.monotonic()
        for link, info in self._kept.items():
            if (link, 4) not in self._clients and (info.ends is None or info.ends > now):
                out.append(info.held(link, 4, confirmed=False))
        if self.dhcp6 is not None:
            out.extend(self.dhcp6.leases())
        return tuple(out)

    def lease_of(self, link: str, family: int = 4) -> LeaseInfo | None:
        c = self._clients.get((link, family))
        return None if c is None else c.info

    # ---- control ---------------------------------------------------------------------------------
    async def start(self, link: Link | str, family: int, options: DhcpOptions) -> None:
        name = link if isinstance(link, str) else link.name
        if family == 6 and self.dhcp6 is not None:
            await self.dhcp6.start(name, options)
            return
        async with self._lock:
            old = self._clients.pop((name, family), None)
            if old is not None:
                await self._close(old, release=False)
            c = _Client(name, family, options)
            if not isinstance(link, str):
                c.mac = link.mac
            self._clients[(name, family)] = c
            if family != 4:
                c.state = "unsupported"
                log.warning("DHCPv6 is not supported yet; the link gets no DHCPv6 address", link=name)
                return
            stored = self._stored_lease(name)
            if stored is not None:  # held, unconfirmed, while the client asks for it again
                with contextlib.suppress(Exception):  # a damaged file: start without it
                    c.lease, c.info, c.confirmed = stored, lease_info(stored), False
                    self._arm_expiry(c)
            carrier = True if isinstance(link, str) else link.carrier
            if carrier:
                await self._run(c)
            else:
                c.state = "paused"
                self._arm_expiry(c)

    async def stop(self, link: str, family: int, release: bool = True) -> None:
        if family == 6 and self.dhcp6 is not None:
            await self.dhcp6.stop(link, release=release)
            return
        async with self._lock:
            c = self._clients.pop((link, family), None)
            if c is None:
                return
            await self._close(c, release=release)
            c.lease, c.info = None, None
            await self._persist(link, None)
            self._event(c, "stopped")

    async def sync(self, links: Iterable[Link]) -> None:
        """Follow the links as observed: carrier down pauses a client, carrier up (or a client that
        died) starts a new exchange, a link that is gone is forgotten; the MAC is kept current."""
        links = list(links)
        if self.dhcp6 is not None:
            await self.dhcp6.sync(links)
        by_name = {link.name: link for link in links}
        async with self._lock:
            for key, c in list(self._clients.items()):
                link = by_name.get(c.link)
                if link is None:
                    self._clients.pop(key, None)
                    await self._close(c, release=False)
                    c.lease, c.info = None, None
                    await self._persist(c.link, None)
                    self._event(c, "stopped")
                    log.info("link gone; its DHCP client is forgotten", link=c.link)
                    continue
                if c.state == "unsupported":
                    continue
                if link.mac and link.mac != c.mac:
                    c.mac = link.mac
                    sock = getattr(c.client, "_sock", None)
                    if sock is not None:
                        sock.l2addr = link.mac
                usable = link.up and link.carrier
                if c.state == "running" and not usable:
                    await self._pause(c)
                elif c.state in ("paused", "failed") and usable:
                    await self._run(c)
                elif c.state == "running" and _died(c.client):
                    log.info("DHCP client stopped by itself; starting it again", link=c.link)
                    await self._close(c, release=False)
                    await self._run(c)

    async def close(self) -> None:
        """Shutdown: stop every client without releasing (the address stays for its lifetime)."""
        async with self._lock:
            for c in list(self._clients.values()):
                await self._close(c, release=False)
            self._clients.clear()
        if self.dhcp6 is not None:
            await self.dhcp6.close()

    # ---- one client --------------------------------------------------------------------------------
    async def _run(self, c: _Client) -> None:
        from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
        from pyroute2.dhcp.enums import dhcp
        from pyroute2.dhcp.fsm import State
        from pyroute2.dhcp.hooks import Hook, Trigger

        manager = self
        stored = self._stored_lease(c.link) if c.lease is None else c.lease
        if stored is not None and stored.expired:
            stored = None

        async def on_bound(lease: Any) -> None:
            await manager._bound(c, lease, "bound")

        async def on_renewed(lease: Any) -> None:
            await manager._bound(c, lease, "renewed")

        async def on_rebound(lease: Any) -> None:
            await manager._bound(c, lease, "rebound")

        async def on_unbound(lease: Any) -> None:
            await manager._lost(c, "unbound")

        async def on_expired(lease: Any) -> None:
            await manager._lost(c, "expired")

        params = (
            dhcp.Option.SUBNET_MASK, dhcp.Option.ROUTER, dhcp.Option.NAME_SERVER, dhcp.Option.DOMAIN_NAME,
            dhcp.Option.LEASE_TIME, dhcp.Option.RENEWAL_TIME, dhcp.Option.REBINDING_TIME,
            dhcp.Option.INTERFACE_MTU, dhcp.Option.BROADCAST_ADDRESS, dhcp.Option.DOMAIN_SEARCH,
        )
        kwargs: dict[str, Any] = {}
        if self._timeouts:
            kwargs["timeouts"] = {State[k]: v for k, v in self._timeouts.items()}
        config = ClientConfig(
            interface=c.link,
            lease_type=_lease_type(stored),
            hooks=(
                Hook(on_bound, {Trigger.BOUND}),
                Hook(on_renewed, {Trigger.RENEWED}),
                Hook(on_rebound, {Trigger.REBOUND}),
                Hook(on_unbound, {Trigger.UNBOUND}),
                Hook(on_expired, {Trigger.EXPIRED}),
            ),
            requested_parameters=params,
            write_pidfile=False,
            release=True,
            hook_timeout=10.0,
            handle_signals=False,
            vendor_id="corral",
            host_name=self.hostname() or None,
            **kwargs,
        )
        client = AsyncDHCPClient(config)
        client._sock = _socket_for(c.link)
        c.client = client
        c.error = None
        try:
            await client.__aenter__()
            await client.bootstrap()
        except Exception as exc:  # the link vanished, or is down
            c.state = "failed"
            c.error = f"{type(exc).__name__}: {exc}"
            c.client = None
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            log.info("DHCP client could not start; it starts again when the link is up", link=c.link,
                     error=c.error)
            return
        if c.mac:
            client._sock.l2addr = c.mac
        self.exchanges += 1
        self._arm_expiry(c)  # a lease asked for again has no timers in pyroute2's client until bound
        was_paused = c.state in ("paused", "failed")
        c.state = "running"
        self._event(c, "resumed" if was_paused else "started")

    async def _pause(self, c: _Client) -> None:
        if c.client is not None:
            c.lease = c.client.lease or c.lease
        await self._close(c, release=False)
        c.state = "paused"
        self._arm_expiry(c)
        self._event(c, "paused")

    async def _close(self, c: _Client, release: bool) -> None:
        self._disarm_expiry(c)
        client, c.client = c.client, None
        if client is None:
            return
        if not release:
            client.config.release = False
        try:
            await asyncio.wait_for(client.__aexit__(None, None, None), 5.0)
        except Exception as exc:  # its link is gone, or its socket broke
            log.debug("DHCP client stopped with an error", link=c.link, error=repr(exc))

    def _arm_expiry(self, c: _Client) -> None:
        """The end of the lease held while pyroute2's client has no timers for it (paused, or asking
        for it again after a restart or a pause): the lease goes then, unless bound again first."""
        self._disarm_expiry(c)
        info = c.info
        if info is None or info.ends is None:
            return
        delay = max(0.0, info.ends - time.monotonic())

        def fire() -> None:
            c.expiry = None
            spawn_task(self._expire_held(c, info), name=f"dhcp-expire:{c.link}")

        c.expiry = asyncio.get_running_loop().call_later(delay, fire)

    def _disarm_expiry(self, c: _Client) -> None:
        if c.expiry is not None:
            c.expiry.cancel()
            c.expiry = None

    async def _expire_held(self, c: _Client, info: LeaseInfo) -> None:
        async with self._lock:
            if self._clients.get((c.link, c.family)) is not c or c.info is not info:
                return
            await self._lost(c, "expired")

    # ---- hooks: a lease held or gone (the plan does the rest) ----------------------------------------
    async def _bound(self, c: _Client, lease: Any, how: str) -> None:
        info = lease_info(lease)
        c.lease, c.info, c.confirmed = lease, info, True
        self._disarm_expiry(c)  # pyroute2's client follows this lease's times now
        await self._persist(c.link, lease)
        log.info(f"DHCP lease {how}", link=c.link, address=str(info.address),
                 gateway=str(info.gateway) if info.gateway else None, lease_time=info.lease_time)
        self._event(c, how)

    async def _lost(self, c: _Client, how: str) -> None:
        c.lease, c.info = None, None
        self._disarm_expiry(c)
        await self._persist(c.link, None)
        log.info(f"DHCP lease {how}", link=c.link)
        self._event(c, "expired" if how == "expired" else "released")

    def _event(self, c: _Client, state: str) -> None:
        info = c.info
        c.last_event = state
        self.bus.publish(
            DhcpLeaseChanged(
                link=c.link,
                family=c.family,
                state=state,
                address=str(info.address) if info else None,
                gateway=str(info.gateway) if info and info.gateway else None,
                server=info.server if info else None,
                lease_time=info.lease_time if info else None,
                expires=info.expires if info else None,
            )
        )

    # ---- reporting -------------------------------------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for c in self._clients.values():
            info = c.info
            fsm = getattr(getattr(c.client, "state", None), "name", None)
            out[f"{c.link}/{c.family}"] = {
                "link": c.link,
                "family": c.family,
                "state": c.state,
                "dhcp_state": fsm.lower() if isinstance(fsm, str) else None,
                "last_event": c.last_event,
                "error": c.error,
                "lease": None if info is None else {
                    "address": str(info.address),
                    "gateway": str(info.gateway) if info.gateway else None,
                    "nameservers": [str(s) for s in info.nameservers],
                    "search": list(info.search),
                    "mtu": info.mtu,
                    "server": info.server,
                    "lease_time": info.lease_time,
                    "obtained": info.obtained,
                    "expires": info.expires,
                    "remaining": info.remaining(),
                    "confirmed": c.confirmed,
                },
            }
        if self.dhcp6 is not None:
            out.update(self.dhcp6.status())
        return out


def _died(client: Any) -> bool:
    """pyroute2's client ends its sender or receiver task when the link goes down under it."""
    for name in ("_sender_task", "_receiver_task"):
        task = getattr(client, name, None)
        if task is not None and task.done():
            return True
    return False


def _lease_type(held: Any) -> type:
    """A pyroute2 Lease class kept in memory: ``load`` gives the lease held for the link (None: start
    with a DISCOVER), ``dump`` does nothing (corral persists leases itself, off the loop)."""
    from pyroute2.dhcp.leases import Lease

    class MemoryLease(Lease):  # type: ignore[misc]
        def dump(self) -> None:
            return None

        @classmethod
        def load(cls, interface: str) -> Any:
            return held

    return MemoryLease


def _socket_for(ifname: str) -> Any:
    from pyroute2.dhcp.dhcp4socket import AsyncDHCP4Socket

    class Socket(AsyncDHCP4Socket):  # type: ignore[misc]
        async def _watch_l2addr_changes(self) -> None:
            await asyncio.Event().wait()  # the MAC comes from corral's own observation (sync)

    return Socket(ifname)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return list(value)
    return str(value)


def _read_leases(directory: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return out
    for path in directory.glob("*.json"):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out[path.stem] = data
    return out


def _write_lease(directory: Path, link: str, data: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / f"{link}.json", json.dumps(data).encode(), mode=0o600)

