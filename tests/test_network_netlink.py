"""netconf.netlink without a kernel: interrupted dumps are retried, a failed socket is replaced, dump
messages become observed data."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from netconf import netlink as nlmod
from netconf.netlink import NLM_F_DUMP_INTR, DumpInterrupted, Netlink


class Msg(dict[str, Any]):
    """A pyroute2 message: fields by key, NLAs by name through get()."""

    def __init__(self, fields: dict[str, Any], attrs: dict[Any, Any], flags: int = 2) -> None:
        super().__init__(fields)
        self["header"] = {"flags": flags}
        self.attrs = attrs

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self.attrs:
            return self.attrs[key]
        return super().get(key, default)


def link(index: int, name: str, flags: int = 0x10003, kind: str | None = "veth", **attrs: Any) -> Msg:
    return Msg({"index": index, "flags": flags},
               {"ifname": name, ("IFLA_LINKINFO", "IFLA_INFO_KIND"): kind, "address": "02:00:00:00:00:0A",
                "mtu": 1500, **attrs})


async def agen(items: list[Msg]) -> AsyncIterator[Msg]:
    for item in items:
        yield item


class FakeIPR:
    def __init__(self, links: list[list[Msg]], addrs: list[Msg], routes: list[Msg]) -> None:
        self.links = links  # one list per dump: the first ones may be flagged interrupted
        self.addrs, self.routes = addrs, routes
        self.closed = False
        self.options: list[tuple[int, int, int]] = []

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.options.append((level, name, value))

    async def get_links(self) -> AsyncIterator[Msg]:
        return agen(self.links.pop(0) if len(self.links) > 1 else self.links[0])

    async def get_addr(self) -> AsyncIterator[Msg]:
        return agen(self.addrs)

    async def get_routes(self) -> AsyncIterator[Msg]:
        return agen(self.routes)

    def close(self) -> None:
        self.closed = True


def addr(index: int, ip: str, prefixlen: int, flags: int = 0x80, family: int = socket.AF_INET) -> Msg:
    return Msg({"index": index, "prefixlen": prefixlen, "flags": flags, "family": family},
               {"IFA_LOCAL" if family == socket.AF_INET else "IFA_ADDRESS": ip, "IFA_FLAGS": flags})


def route(oif: int, dst: str | None, dst_len: int, gateway: str | None = None, proto: int = 4,
          family: int = socket.AF_INET, **extra: Any) -> Msg:
    fields = {"family": family, "dst_len": dst_len, "flags": 0, "type": 1, "scope": 0, "table": 254,
              "proto": proto}
    fields.update(extra)
    return Msg(fields, {"dst": dst, "gateway": gateway, "oif": oif, "table": 254})


LINKS = [link(1, "lo", flags=0x10049, kind=None), link(2, "eth0"), link(3, "vl10", kind="vlan", link=2)]
ADDRS = [addr(2, "198.18.0.2", 24), addr(2, "198.18.1.2", 24, flags=0), addr(2, "fe80::1", 64, family=10),
         addr(9, "198.18.9.9", 24)]  # a link that vanished between the dumps
ROUTES = [route(2, None, 0, "198.18.0.1"), route(2, "198.18.0.0", 24, proto=2, scope=253),
          route(2, "fd00::", 64, family=10, priority=256), route(2, "198.18.5.0", 24, type=2),
          route(2, "198.18.6.0", 24, flags=0x200)]


async def test_observe_turns_dumps_into_observed_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlmod, "driver_name", lambda name: "veth")
    nl = Netlink()
    nl._ipr = FakeIPR([LINKS], ADDRS, ROUTES)
    snap = await nl.observe()
    lo, eth0, vlan = snap.links
    assert lo.kind is None and lo.driver is None and lo.up and lo.carrier
    assert eth0.driver == "veth" and eth0.mac == "02:00:00:00:00:0a" and eth0.up and eth0.carrier
    assert vlan.parent == "eth0"
    assert [(a.link, str(a.address), a.dynamic) for a in snap.addresses] == [
        ("eth0", "198.18.0.2/24", False), ("eth0", "198.18.1.2/24", True), ("eth0", "fe80::1/64", False)]
    default, prefix, v6 = snap.routes  # local-type and cloned routes are left out
    assert str(default.route.to) == "0.0.0.0/0" and str(default.route.via) == "198.18.0.1"
    assert default.route.metric == 0 and default.route.scope == "global" and default.proto == 4
    assert prefix.route.scope == "link" and prefix.proto == 2
    assert v6.route.metric == 256 and v6.route.scope == "link"
    assert snap.index() == {"lo": 1, "eth0": 2, "vl10": 3}


async def test_an_interrupted_dump_is_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlmod, "driver_name", lambda name: None)
    flagged = [link(1, "lo", kind=None), link(2, "eth0")]
    for m in flagged:
        m["header"]["flags"] |= NLM_F_DUMP_INTR
    nl = Netlink()
    nl._ipr = FakeIPR([flagged, flagged, LINKS], [], [])
    snap = await nl.observe()
    assert snap.attempts == 3 and nl.interrupted == 2 and len(snap.links) == 3
    nl._ipr = FakeIPR([flagged], [], [])
    with pytest.raises(DumpInterrupted):
        await nl.observe()


async def test_a_failed_socket_is_replaced_and_the_call_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeIPR] = []

    def new_socket() -> FakeIPR:
        ipr = FakeIPR([LINKS], [], [])
        made.append(ipr)
        return ipr

    nl = Netlink()
    monkeypatch.setattr(nl, "_socket", lambda: nl._ipr if nl._ipr is not None else _set(nl, new_socket()))
    calls = 0

    async def call(ipr: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.ENOBUFS, "No buffer space available")
        return "ok"

    assert await nl._run(call) == "ok"
    assert len(made) == 2 and made[0].closed and nl.reopened == 1

    async def refused(ipr: Any) -> None:
        raise NetlinkError(errno.EEXIST, "exists")

    with pytest.raises(NetlinkError):
        await nl._run(refused)
    assert len(made) == 2  # a netlink error is an answer: the socket is fine


def _set(nl: Netlink, ipr: FakeIPR) -> FakeIPR:
    nl._ipr = ipr
    return ipr


def test_driver_name_of_a_missing_link_is_none() -> None:
    assert nlmod.driver_name("no-such-link0") is None


async def test_an_address_lifetime_is_its_end_on_the_monotonic_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nlmod, "driver_name", lambda name: None)
    leased = addr(2, "198.18.60.50", 24, flags=0)
    leased.attrs["IFA_CACHEINFO"] = {"ifa_preferred": 30, "ifa_valid": 30, "cstamp": 0, "tstamp": 0}
    forever = addr(2, "198.18.61.50", 24, flags=0)
    forever.attrs["IFA_CACHEINFO"] = {"ifa_preferred": 0xFFFFFFFF, "ifa_valid": 0xFFFFFFFF}
    static = addr(2, "198.18.0.2", 24)
    static.attrs["IFA_CACHEINFO"] = {"ifa_valid": 0xFFFFFFFF}
    nl = Netlink()
    nl._ipr = FakeIPR([LINKS], [leased, forever, static], [])
    before = time.monotonic()
    snap = await nl.observe()
    ends = [a.expires for a in snap.addresses]
    assert ends[0] is not None and before + 30 <= ends[0] <= time.monotonic() + 30
    assert ends[1:] == [None, None] and [a.dynamic for a in snap.addresses] == [True, True, False]
