"""Netlink source: link, address and route notifications from the kernel, as events on the bus.

It subscribes to the rtnetlink multicast groups of links, IPv4/IPv6 addresses and IPv4/IPv6 routes on
a socket with a 32 MiB receive buffer (``SO_RCVBUFFORCE``: PID 1 is root, so ``rmem_max`` does not cap
it), reads every datagram that is waiting each time the socket is readable, and decodes only the
headers it needs (message type, ifindex, flags, table, oif). What one read brings is coalesced: a
thousand flaps of one link that arrive together become one ``LinkChanged`` per action.

Why not pyroute2's parser here: decoding every attribute of every message costs about a hundred
microseconds in Python; a storm of 10,000 flaps of one link sends about 117,000 messages, and with
full decoding the socket overflowed after about 7,000 of them even with the 32 MiB buffer. Reading
raw datagrams and decoding headers keeps up with that storm (measured in bench/network_storm.py).
Dumps and changes use pyroute2's AsyncIPRoute (netconf.netlink).

When the kernel drops messages (``ENOBUFS``) the socket is closed, a new one is opened and a
``Resync`` is published: the handler then dumps everything, as after any resync."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
import time
from typing import Any

import structlog

from supervisor.bus import Bus
from supervisor.events import Event, Resync
from supervisor.events.netlink import AddressChanged, LinkChanged, RouteChanged

log = structlog.get_logger("supervisor.sources.netlink")

NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE

RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
IFLA_IFNAME = 3
RTA_OIF = 4
RTA_TABLE = 15
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000

DEFAULT_RCVBUF = 32 << 20
RCVBUF_ENV = "CORRAL_NETLINK_RCVBUF"  # bytes; tests make it small to provoke ENOBUFS
READ_BUDGET = 512  # datagrams per readable callback, so that a storm cannot starve the loop

_HDR = struct.Struct("=LHHLL")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBi")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, proto, scope, type, flags
_RTA = struct.Struct("=HH")
_U32 = struct.Struct("=I")


def rcvbuf_from_env(default: int = DEFAULT_RCVBUF) -> int:
    value = os.environ.get(RCVBUF_ENV, "").strip()
    try:
        return max(4096, int(value)) if value else default
    except ValueError:
        return default


def _attrs(buf: bytes | bytearray | memoryview, start: int, end: int) -> dict[int, tuple[int, int]]:
    """rtattr type -> (payload offset, payload length), for one message's attributes."""
    found: dict[int, tuple[int, int]] = {}
    off = start
    while off + 4 <= end:
        length, kind = _RTA.unpack_from(buf, off)
        if length < 4 or off + length > end:
            break
        found[kind & 0x3FFF] = (off + 4, length - 4)
        off += (length + 3) & ~3
    return found


def decode(buf: bytes | bytearray | memoryview, size: int) -> list[Event]:
    """The events of one datagram (several netlink messages may share it). Messages of other types
    are skipped."""
    events: list[Event] = []
    off = 0
    while off + _HDR.size <= size:
        length, mtype, _flags, _seq, _pid = _HDR.unpack_from(buf, off)
        if length < _HDR.size or off + length > size:
            break
        body = off + _HDR.size
        end = off + length
        if mtype in (RTM_NEWLINK, RTM_DELLINK) and body + _IFINFO.size <= end:
            _family, _type, index, flags, _change = _IFINFO.unpack_from(buf, body)
            attrs = _attrs(buf, body + _IFINFO.size, end)
            name = None
            if IFLA_IFNAME in attrs:
                at, n = attrs[IFLA_IFNAME]
                name = bytes(buf[at : at + n]).split(b"\0", 1)[0].decode(errors="replace")
            events.append(
                LinkChanged(
                    action="new" if mtype == RTM_NEWLINK else "del",
                    index=index,
                    name=name,
                    up=bool(flags & IFF_UP),
                    carrier=bool(flags & IFF_LOWER_UP),
                )
            )
        elif mtype in (RTM_NEWADDR, RTM_DELADDR) and body + _IFADDR.size <= end:
            family, prefixlen, _f, _scope, index = _IFADDR.unpack_from(buf, body)
            events.append(
                AddressChanged(
                    action="new" if mtype == RTM_NEWADDR else "del",
                    index=index,
                    family=family,
                    prefixlen=prefixlen,
                )
            )
        elif mtype in (RTM_NEWROUTE, RTM_DELROUTE) and body + _RTMSG.size <= end:
            family, _dl, _sl, _tos, table, proto, _scope, _rtype, _rflags = _RTMSG.unpack_from(buf, body)
            attrs = _attrs(buf, body + _RTMSG.size, end)
            oif = _U32.unpack_from(buf, attrs[RTA_OIF][0])[0] if RTA_OIF in attrs else 0
            if RTA_TABLE in attrs:
                table = _U32.unpack_from(buf, attrs[RTA_TABLE][0])[0]
            events.append(
                RouteChanged(
                    action="new" if mtype == RTM_NEWROUTE else "del",
                    family=family,
                    table=table,
                    oif=oif,
                    protocol=proto,
                )
            )
        off += (length + 3) & ~3
    return events


def _key(event: Event) -> tuple[Any, ...]:
    if isinstance(event, LinkChanged):
        return ("link", event.index, event.action)
    if isinstance(event, AddressChanged):
        return ("addr", event.index, event.family, event.action)
    if isinstance(event, RouteChanged):
        return ("route", event.family, event.table, event.oif, event.action)
    return ("other", id(event))


class NetlinkSource:
    """Publishes ``LinkChanged``, ``AddressChanged``, ``RouteChanged`` and, after an overflow,
    ``Resync(source="netlink")``. Open it before the first dump, so that nothing slips in between."""

    def __init__(self, bus: Bus, rcvbuf: int | None = None, groups: int = GROUPS) -> None:
        self.bus = bus
        self.rcvbuf = rcvbuf if rcvbuf is not None else rcvbuf_from_env()
        self.groups = groups
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray(1 << 16)
        self._view = memoryview(self._buf)
        self.datagrams = 0
        self.messages = 0
        self.published = 0
        self.overflows = 0
        self.opened = 0
        self.last_overflow: float | None = None
        self.effective_rcvbuf = 0

    # ---- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._open()

    async def stop(self) -> None:
        self._close()

    @property
    def running(self) -> bool:
        return self._sock is not None

    def _open(self) -> None:
        assert self._loop is not None
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except PermissionError:  # not root: as much as rmem_max allows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((0, self.groups))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.effective_rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self._sock = sock
        self.opened += 1
        self._loop.add_reader(sock.fileno(), self._readable)

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    # ---- reading ---------------------------------------------------------------------------------
    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        pending: dict[tuple[Any, ...], Event] = {}
        overflow: OSError | None = None
        for _ in range(READ_BUDGET):
            try:
                size = sock.recv_into(self._buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                overflow = exc
                break
            if size <= 0:
                break
            self.datagrams += 1
            for event in decode(self._view, size):
                self.messages += 1
                key = _key(event)
                pending.pop(key, None)  # keep the latest, in arrival order
                pending[key] = event
        for event in pending.values():
            self.bus.publish(event)
        self.published += len(pending)
        if overflow is not None:
            self._overflowed(overflow)

    def _overflowed(self, exc: OSError) -> None:
        """ENOBUFS (or any other error): the kernel dropped messages. Start over with a new socket and
        tell the handlers to observe everything."""
        self.overflows += 1
        self.last_overflow = time.time()
        what = "ENOBUFS" if exc.errno == errno.ENOBUFS else (exc.strerror or repr(exc))
        log.warning("netlink messages lost; reopening the socket and resyncing", error=what,
                    rcvbuf=self.effective_rcvbuf)
        self._close()
        try:
            self._open()
        except OSError as err:
            log.error("cannot reopen the netlink socket; retrying", error=str(err))
            assert self._loop is not None
            self._loop.call_later(1.0, self._retry_open)
        self.bus.publish(Resync(source="netlink", reason=f"{what}: netlink messages were lost"))

    def _retry_open(self) -> None:
        if self._sock is not None:
            return
        with contextlib.suppress(OSError):
            self._open()
            self.bus.publish(Resync(source="netlink", reason="netlink socket reopened"))
            return
        assert self._loop is not None
        self._loop.call_later(1.0, self._retry_open)

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "rcvbuf": self.effective_rcvbuf,
            "datagrams": self.datagrams,
            "messages": self.messages,
            "events_published": self.published,
            "overflows": self.overflows,
            "last_overflow": self.last_overflow,
            "sockets_opened": self.opened,
        }
