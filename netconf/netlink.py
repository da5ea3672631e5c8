"""The kernel side of the network, through pyroute2's asyncio API (``AsyncIPRoute``): dump links,
addresses and routes into ``netconf.observed`` data, and make single changes.

Rules learned the hard way (see DESIGN.md, "Numbers to know"):

- the socket gets a 32 MiB receive buffer (``SO_RCVBUFFORCE``), so that a large dump never overflows;
- after any socket error (``ENOBUFS`` included) a pyroute2 socket is dead for good: it is dropped, a new
  one is opened and the whole observation is made again;
- one dump at a time per socket (a second one fails with ``EBUSY``): every request goes through one lock;
- pyroute2 0.9.7 does not report interrupted dumps: each message's ``NLM_F_DUMP_INTR`` flag is checked
  and the observation is retried (an interruption seen only on the final NLMSG_DONE is not visible
  through pyroute2; the change that caused it also sends an event, which makes the handler look again).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import ipaddress
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from netconf.model import IPV6_CONF, IPInterface, Route, Scope
from netconf.observed import Address, Link, RouteEntry

log = structlog.get_logger("netconf.netlink")

SO_RCVBUFFORCE = 33
RCVBUF = 32 << 20
NLM_F_DUMP_INTR = 0x10
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFA_F_PERMANENT = 0x80
INFINITY_LIFE_TIME = 0xFFFFFFFF
RTNH_F_ONLINK = 0x4
RTM_F_CLONED = 0x200
RTN_UNICAST = 1
DUMP_ATTEMPTS = 5

SCOPES: dict[int, Scope] = {0: "global", 200: "global", 253: "link", 254: "host"}
SCOPE_NUMBERS: dict[str, int] = {"global": 0, "link": 253, "host": 254}

T = TypeVar("T")


class DumpInterrupted(Exception):
    """The kernel flagged a dump as inconsistent (NLM_F_DUMP_INTR): dump again."""


@dataclass(frozen=True)
class Snapshot:
    """One consistent observation of the kernel: links, addresses, routes."""

    links: tuple[Link, ...]
    addresses: tuple[Address, ...]
    routes: tuple[RouteEntry, ...]
    attempts: int = 1

    def index(self) -> dict[str, int]:
        return {link.name: link.index for link in self.links}


class Netlink:
    """One pyroute2 ``AsyncIPRoute`` socket, re-opened after any socket error, used by one task at a
    time. Netlink errors of requests (``NetlinkError``, with ``.code``) are raised to the caller."""

    def __init__(self, rcvbuf: int = RCVBUF) -> None:
        self.rcvbuf = rcvbuf
        self._ipr: Any = None
        self._lock = asyncio.Lock()
        self._drivers: dict[tuple[int, str], str | None] = {}
        self.reopened = 0
        self.dumps = 0
        self.interrupted = 0

    def _socket(self) -> Any:
        if self._ipr is None:
            from pyroute2.iproute.linux import AsyncIPRoute

            ipr = AsyncIPRoute()
            try:
                ipr.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except PermissionError:
                ipr.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            self._ipr = ipr
        return self._ipr

    def _drop(self, reason: str) -> None:
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            self.reopened += 1
            log.warning("netlink socket failed; opening a new one", error=reason)
            try:
                ipr.close()
            except Exception as exc:  # it is dead already
                log.debug("closing a dead netlink socket failed", error=repr(exc))

    def close(self) -> None:
        ipr, self._ipr = self._ipr, None
        if ipr is not None:
            ipr.close()

    async def _run(self, call: Callable[[Any], Awaitable[T]], retries: int = 1) -> T:
        """Run ``call(ipr)`` under the lock; a socket error (not a netlink error) drops the socket and
        the call is made once more on a new one."""
        from pyroute2.netlink.exceptions import NetlinkError

        async with self._lock:
            for attempt in range(retries + 1):
                ipr = self._socket()
                try:
                    return await call(ipr)
                except NetlinkError:
                    raise
                except OSError as exc:
                    self._drop(f"{type(exc).__name__}: {exc}")
                    if attempt >= retries:
                        raise
        raise AssertionError("unreachable")

    # ---- observing -------------------------------------------------------------------------------
    async def observe(self) -> Snapshot:
        """Links, addresses and routes, each dump retried while the kernel says it was interrupted."""

        async def dump_all(ipr: Any) -> Snapshot:
            for attempt in range(1, DUMP_ATTEMPTS + 1):
                try:
                    raw_links = await _collect(await ipr.get_links())
                    raw_addrs = await _collect(await ipr.get_addr())
                    raw_routes = await _collect(await ipr.get_routes())
                except DumpInterrupted:
                    self.interrupted += 1
                    continue
                self.dumps += 1
                return self._snapshot(raw_links, raw_addrs, raw_routes, attempt)
            raise DumpInterrupted(f"dump interrupted {DUMP_ATTEMPTS} times in a row")

        return await self._run(dump_all)

    def _snapshot(self, raw_links: list[Any], raw_addrs: list[Any], raw_routes: list[Any],
                  attempts: int) -> Snapshot:
        names = {int(m["index"]): str(m.get("ifname")) for m in raw_links}
        links = tuple(self._link(m, names) for m in raw_links)
        now = time.monotonic()
        addresses = tuple(a for a in (_address(m, names, now) for m in raw_addrs) if a is not None)
        routes = tuple(r for r in (_route(m, names) for m in raw_routes) if r is not None)
        live = {(link.index, link.name) for link in links}
        for key in [k for k in self._drivers if k not in live]:
            del self._drivers[key]
        return Snapshot(links, addresses, routes, attempts)

    def _link(self, m: Any, names: dict[int, str]) -> Link:
        index = int(m["index"])
        name = str(m.get("ifname"))
        flags = int(m["flags"])
        kind = m.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        master = m.get("master")
        parent = None
        if kind == "vlan" and m.get("IFLA_LINK_NETNSID") is None:
            link_index = m.get("link")
            parent = names.get(int(link_index)) if link_index else None
        mac = m.get("address")
        inet6 = m.get(("IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_CONF"))
        ipv6_conf = tuple((k, int(inet6[k])) for k in IPV6_CONF if k in inet6) if inet6 else ()
        gen_mode = m.get(("IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_ADDR_GEN_MODE"))
        if gen_mode is not None:
            ipv6_conf = (*ipv6_conf, ("addr_gen_mode", int(gen_mode)))
        key = (index, name)
        if key not in self._drivers:
            self._drivers[key] = driver_name(name) if name != "lo" else None
        return Link(
            index=index,
            name=name,
            mac=str(mac).lower() if mac else None,
            kind=str(kind) if kind else None,
            driver=self._drivers[key],
            master=names.get(int(master)) if master else None,
            parent=parent,
            up=bool(flags & IFF_UP),
            carrier=bool(flags & IFF_LOWER_UP),
            mtu=int(m.get("mtu") or 0),
            ipv6_conf=ipv6_conf,
        )

    # ---- changing --------------------------------------------------------------------------------
    async def link(self, command: str, **kwargs: Any) -> None:
        await self._run(lambda ipr: ipr.link(command, **kwargs), retries=0)

    async def addr(self, command: str, **kwargs: Any) -> None:
        await self._run(lambda ipr: ipr.addr(command, **kwargs), retries=0)

    async def route(self, command: str, **kwargs: Any) -> None:
        await self._run(lambda ipr: ipr.route(command, **kwargs), retries=0)

    async def lookup(self, name: str) -> int | None:
        found = await self._run(lambda ipr: ipr.link_lookup(ifname=name))
        return int(found[0]) if found else None

    async def add_address(self, index: int, address: IPInterface, replace: bool = False,
                          valid_lft: int | None = None, preferred_lft: int | None = None) -> None:
        kwargs: dict[str, Any] = {"index": index, "address": str(address.ip),
                                  "prefixlen": address.network.prefixlen}
        if address.version == 4 and address.network.prefixlen < 31:
            kwargs["broadcast"] = str(address.network.broadcast_address)
        if valid_lft is not None:
            kwargs["valid_lft"] = valid_lft
            kwargs["preferred_lft"] = preferred_lft if preferred_lft is not None else valid_lft
        await self.addr("replace" if replace else "add", **kwargs)

    async def remove_address(self, index: int, address: IPInterface) -> None:
        await self.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)

    async def add_route(self, index: int, route: Route, proto: str = "static") -> None:
        """Add ``route`` beside any other route with the same key (destination, metric, table) on another
        link or via another router (``ip route append``): two NICs on DHCP both want a default route at
        the lease metric, and the kernel keeps both (IPv4 uses the first that works, IPv6 spreads over
        them). A plain ``add`` (``NLM_F_EXCL``) would fail for the second for as long as the first is
        there, and a ``replace`` would take the first one's away. The very same route twice is still
        ``EEXIST``."""
        await self.route("append", **route_kwargs(index, route), proto=proto)

    async def remove_route(self, index: int | None, route: Route) -> None:
        await self.route("del", **route_kwargs(index, route))


def route_kwargs(index: int | None, route: Route) -> dict[str, Any]:
    """pyroute2 keywords for a route: the key the kernel finds it by (and what it is added with)."""
    r = route.canonical()
    kwargs: dict[str, Any] = {
        "dst": str(r.to),
        "table": r.table,
        "priority": r.metric,
        "family": socket.AF_INET if r.family == 4 else socket.AF_INET6,
    }
    if index is not None:
        kwargs["oif"] = index
    if r.via is not None:
        kwargs["gateway"] = str(r.via)
    if r.scope is not None:
        kwargs["scope"] = SCOPE_NUMBERS[r.scope]
    if r.source is not None:
        kwargs["prefsrc"] = str(r.source)
    if r.on_link:
        kwargs["flags"] = RTNH_F_ONLINK
    return kwargs


async def _collect(messages: AsyncIterator[Any]) -> list[Any]:
    out: list[Any] = []
    interrupted = False
    async for msg in messages:
        if int(msg["header"].get("flags") or 0) & NLM_F_DUMP_INTR:
            interrupted = True  # read to the end anyway, so the socket is ready for the next dump
        out.append(msg)
    if interrupted:
        raise DumpInterrupted("NLM_F_DUMP_INTR")
    return out


def _address(m: Any, names: dict[int, str], now: float) -> Address | None:
    name = names.get(int(m["index"]))
    if name is None:
        return None
    ip = m.get("IFA_LOCAL") or m.get("IFA_ADDRESS")
    if ip is None:
        return None
    flags = m.get("IFA_FLAGS")
    flags = int(flags) if flags is not None else int(m["flags"])
    try:
        address: IPInterface = ipaddress.ip_interface(f"{ip}/{int(m['prefixlen'])}")
    except ValueError:
        return None
    dynamic = not flags & IFA_F_PERMANENT
    expires: float | None = None
    cacheinfo = m.get("IFA_CACHEINFO")
    if dynamic and cacheinfo is not None:
        valid = int(cacheinfo.get("ifa_valid", INFINITY_LIFE_TIME))
        expires = None if valid == INFINITY_LIFE_TIME else now + valid
    return Address(link=name, address=address, dynamic=dynamic, proto=int(m.get("IFA_PROTO") or 0),
                   expires=expires)


def _route(m: Any, names: dict[int, str]) -> RouteEntry | None:
    if int(m.get("type") or 0) != RTN_UNICAST or int(m["flags"]) & RTM_F_CLONED:
        return None
    family = int(m["family"])
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    dst = m.get("dst")
    if dst is None:
        dst = "0.0.0.0" if family == socket.AF_INET else "::"
    try:
        to = ipaddress.ip_network(f"{dst}/{int(m['dst_len'])}", strict=False)
        gateway = m.get("gateway")
        via = ipaddress.ip_address(gateway) if gateway else None
        prefsrc = m.get("prefsrc")
        source = ipaddress.ip_address(prefsrc) if prefsrc else None
    except ValueError:
        return None
    metric = m.get("priority")
    table = m.get("table")
    table = int(table) if table is not None else int(m["table"])
    oif = m.get("oif")
    link = names.get(int(oif)) if oif else None
    scope: Scope = SCOPES.get(int(m["scope"]), "global")
    if family == socket.AF_INET6:  # IPv6 routes have no scope: the kernel says 0 (universe) for all
        scope = "global" if via is not None else "link"
    route = Route(
        to=to,
        via=via,
        metric=int(metric) if metric is not None else (0 if family == socket.AF_INET else 1024),
        table=table,
        on_link=bool(int(m["flags"]) & RTNH_F_ONLINK),
        source=source,
        scope=scope,
    )
    return RouteEntry(link=link, route=route, proto=int(m["proto"]))


# ---- the driver of a link (ETHTOOL_GDRVINFO), for `match: {driver: ...}` ----------------------------
SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003


class _DrvInfo(ctypes.Structure):
    _fields_ = [
        ("cmd", ctypes.c_uint32),
        ("driver", ctypes.c_char * 32),
        ("version", ctypes.c_char * 32),
        ("fw_version", ctypes.c_char * 32),
        ("bus_info", ctypes.c_char * 32),
        ("erom_version", ctypes.c_char * 32),
        ("reserved2", ctypes.c_char * 12),
        ("n_priv_flags", ctypes.c_uint32),
        ("n_stats", ctypes.c_uint32),
        ("testinfo_len", ctypes.c_uint32),
        ("eedump_len", ctypes.c_uint32),
        ("regdump_len", ctypes.c_uint32),
    ]


def driver_name(ifname: str) -> str | None:
    """The kernel driver of a link (``veth``, ``virtio_net``, ``e1000e``), or None. One ioctl; never
    blocks."""
    info = _DrvInfo(cmd=ETHTOOL_GDRVINFO)
    ifreq = struct.pack("16sP", ifname.encode()[:15], ctypes.addressof(info))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENODEV, errno.ENOTSUP, errno.EPERM):
            log.debug("driver lookup failed", link=ifname, error=str(exc))
        return None
    name = info.driver.decode(errors="replace")
    return name or None
