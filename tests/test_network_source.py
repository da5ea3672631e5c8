"""The netlink source's header decoding and coalescing, on crafted datagrams (no socket)."""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.events.netlink import AddressChanged, LinkChanged, RouteChanged
from supervisor.sources import netlink as src
from supervisor.sources.netlink import NetlinkSource, decode, rcvbuf_from_env


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _msg(mtype: int, body: bytes) -> bytes:
    return struct.pack("=LHHLL", 16 + len(body), mtype, 0, 0, 0) + body


def link_msg(new: bool, index: int, name: str, flags: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0xFFFFFFFF)
    body += _attr(src.IFLA_IFNAME, name.encode() + b"\0")
    return _msg(src.RTM_NEWLINK if new else src.RTM_DELLINK, body)


def addr_msg(new: bool, index: int, family: int = socket.AF_INET, prefixlen: int = 24) -> bytes:
    body = struct.pack("=BBBBi", family, prefixlen, 0, 0, index) + _attr(1, bytes([198, 18, 0, 2]))
    return _msg(src.RTM_NEWADDR if new else src.RTM_DELADDR, body)


def route_msg(new: bool, oif: int, table: int = 254, proto: int = 4, big_table: int | None = None) -> bytes:
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, table, proto, 0, 1, 0)
    body += _attr(src.RTA_OIF, struct.pack("=I", oif))
    if big_table is not None:
        body += _attr(src.RTA_TABLE, struct.pack("=I", big_table))
    return _msg(src.RTM_NEWROUTE if new else src.RTM_DELROUTE, body)


def test_decode_link_address_route_messages_sharing_one_datagram() -> None:
    data = link_msg(True, 3, "eth0", src.IFF_UP | src.IFF_LOWER_UP) + addr_msg(False, 3) + route_msg(True, 3)
    events = decode(data, len(data))
    expected = LinkChanged(action="new", index=3, name="eth0", up=True, carrier=True, ts=events[0].ts)
    assert events[0] == expected
    assert isinstance(events[1], AddressChanged) and (events[1].action, events[1].index) == ("del", 3)
    assert events[1].prefixlen == 24 and events[1].family == socket.AF_INET
    route = events[2]
    assert isinstance(route, RouteChanged) and (route.oif, route.table, route.protocol) == (3, 254, 4)


def test_decode_link_down_without_carrier_and_route_in_a_big_table() -> None:
    data = link_msg(False, 7, "br0", 0) + route_msg(False, 7, table=252, big_table=1000)
    link, route = decode(data, len(data))
    assert isinstance(link, LinkChanged)
    assert (link.action, link.up, link.carrier, link.name) == ("del", False, False, "br0")
    assert isinstance(route, RouteChanged) and route.table == 1000 and route.action == "del"


def test_decode_skips_other_types_and_stops_at_a_truncated_message() -> None:
    other = _msg(28, b"\0" * 12)  # RTM_NEWNEIGH
    good = link_msg(True, 2, "lo", 0)
    data = other + good + good[:10]
    assert [type(e) for e in decode(data, len(data))] == [LinkChanged]
    assert decode(b"\x05\0\0\0", 4) == []


class FakeSock:
    def __init__(self, datagrams: list[bytes | OSError]) -> None:
        self.items = list(datagrams)

    def recv_into(self, buf: bytearray) -> int:
        if not self.items:
            raise BlockingIOError(errno.EAGAIN, "again")
        item = self.items.pop(0)
        if isinstance(item, OSError):
            raise item
        buf[: len(item)] = item
        return len(item)


def _source(datagrams: list[bytes | OSError]) -> tuple[NetlinkSource, list[Any]]:
    bus = Bus()
    sub = bus.subscribe("t")
    source = NetlinkSource(bus, rcvbuf=1 << 20)
    source._sock = FakeSock(datagrams)  # type: ignore[assignment]
    got: list[Any] = []

    def drain() -> list[Any]:
        while (event := sub.get_nowait()) is not None:
            got.append(event)
        return got

    source.drain = drain  # type: ignore[attr-defined]
    return source, got


def test_a_storm_read_at_once_is_coalesced_to_one_event_per_kind_link_and_action() -> None:
    flaps = []
    for _ in range(150):
        flaps.append(link_msg(True, 3, "eth0", 0))
        flaps.append(link_msg(True, 3, "eth0", src.IFF_UP | src.IFF_LOWER_UP))
        flaps.append(route_msg(False, 3))
    source, _ = _source(list(flaps))
    source._readable()
    got = source.drain()  # type: ignore[attr-defined]
    assert source.datagrams == 450 and source.messages == 450
    links = [e for e in got if isinstance(e, LinkChanged)]
    assert len(links) == 1 and links[0].up and links[0].carrier  # the latest state wins
    assert len([e for e in got if isinstance(e, RouteChanged)]) == 1


def test_a_read_is_bounded_so_a_storm_cannot_starve_the_loop() -> None:
    source, _ = _source([link_msg(True, 3, "eth0", 0)] * (src.READ_BUDGET + 10))
    source._readable()
    assert source.datagrams == src.READ_BUDGET
    source._readable()
    assert source.datagrams == src.READ_BUDGET + 10


def test_enobufs_reopens_the_socket_and_publishes_a_resync(monkeypatch: Any) -> None:
    source, _ = _source([link_msg(True, 3, "eth0", 0), OSError(errno.ENOBUFS, "No buffer space available")])
    opened: list[int] = []
    monkeypatch.setattr(source, "_open", lambda: opened.append(1))
    monkeypatch.setattr(source, "_close", lambda: None)
    source._readable()
    got = source.drain()  # type: ignore[attr-defined]
    assert opened == [1] and source.overflows == 1
    assert isinstance(got[0], LinkChanged)  # what was read before the overflow still counts
    assert isinstance(got[-1], Resync) and got[-1].source == "netlink" and "ENOBUFS" in got[-1].reason


def test_rcvbuf_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.delenv(src.RCVBUF_ENV, raising=False)
    assert rcvbuf_from_env() == 32 << 20
    monkeypatch.setenv(src.RCVBUF_ENV, "8192")
    assert rcvbuf_from_env() == 8192
    monkeypatch.setenv(src.RCVBUF_ENV, "12")
    assert rcvbuf_from_env() == 4096
    monkeypatch.setenv(src.RCVBUF_ENV, "lots")
    assert rcvbuf_from_env() == 32 << 20


def test_events_serialise_for_corral_events() -> None:
    event = LinkChanged(action="new", index=3, name="eth0", up=True, carrier=False)
    data = event.to_dict()
    assert data["kind"] == "net.link" and data["name"] == "eth0" and data["carrier"] is False
