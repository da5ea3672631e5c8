"""netconf.apply and the network handler against a fake kernel (no netlink, no root): what is applied,
recorded, corrected, retried, tried and rolled back."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from structlog.testing import capture_logs

from handlers.network import NetworkError, NetworkHandler, candidate_config
from netconf.apply import apply, describe, lease_lifetime
from netconf.model import DhcpOptions, Dns, NetworkConfig, Route
from netconf.netlink import Snapshot, route_kwargs
from netconf.observed import (
    RTPROT_DHCP,
    RTPROT_KERNEL,
    RTPROT_STATIC,
    Address,
    DhcpClient,
    DhcpLease,
    Link,
    RouteEntry,
)
from netconf.ops import AddAddress, AddRoute, CreateLink, RemoveAddress, RenameLink, SetMtu, SetUp, WriteDns
from netconf.parse import parse_config
from supervisor.bus import Bus
from supervisor.events.netlink import NetworkApplied, NetworkPoke, NetworkTry


def ip(text: str) -> Any:
    return ipaddress.ip_interface(text)


class FakeKernel:
    """Just enough of netconf.netlink.Netlink: links, addresses, routes; errors on demand."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self.addresses: set[tuple[str, Any]] = set()
        self.lifetimes: dict[tuple[str, Any], int] = {}  # valid_lft given, for addresses that have one
        self.preferred: dict[tuple[str, Any], int] = {}  # and preferred_lft
        self.expires: dict[tuple[str, Any], float] = {}
        self.routes: dict[tuple[str, Route], int] = {}
        self.fail: dict[str, int] = {}  # call name -> errno to raise
        self.calls: list[str] = []
        self.next_index = 10
        self.dumps = self.interrupted = self.reopened = 0

    def plug(self, name: str, mac: str = "02:00:00:00:00:01", carrier: bool = True) -> None:
        self.next_index += 1
        self.links[name] = Link(self.next_index, name, mac=mac, kind="veth", driver="veth", carrier=carrier)

    def name_of(self, index: int) -> str:
        return next(n for n, link in self.links.items() if link.index == index)

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if call in self.fail:
            raise NetlinkError(self.fail[call], "injected")

    async def observe(self) -> Snapshot:
        addrs = [Address(n, a, dynamic=(n, a) in self.expires, expires=self.expires.get((n, a)))
                 for n, a in sorted(self.addresses, key=str)]
        routes = [RouteEntry(n, r, p) for (n, r), p in self.routes.items()]
        for n, a in self.addresses:
            if self.links[n].up:
                routes.append(RouteEntry(n, Route(a.network).canonical(), RTPROT_KERNEL))
        return Snapshot(tuple(self.links.values()), tuple(addrs), tuple(routes))

    async def lookup(self, name: str) -> int | None:
        return self.links[name].index if name in self.links else None

    async def link(self, command: str, **kw: Any) -> None:
        self._check(f"link {command}")
        if command == "add":
            self.next_index += 1
            self.links[kw["ifname"]] = Link(self.next_index, kw["ifname"], kind=kw["kind"], carrier=True)
            return
        name = self.name_of(kw["index"])
        if command == "del":
            del self.links[name]
            self.addresses = {a for a in self.addresses if a[0] != name}
            self.routes = {k: v for k, v in self.routes.items() if k[0] != name}
        elif "ifname" in kw:
            self.links[kw["ifname"]] = replace(self.links.pop(name), name=kw["ifname"])
        elif "state" in kw:
            self.links[name] = replace(self.links[name], up=kw["state"] == "up")
        elif "mtu" in kw:
            self.links[name] = replace(self.links[name], mtu=kw["mtu"])

    async def add_address(self, index: int, address: Any, replace: bool = False, valid_lft: int | None = None,
                          preferred_lft: int | None = None) -> None:
        self._check("add address")
        key = (self.name_of(index), address)
        if key in self.addresses and not replace:
            raise NetlinkError(errno.EEXIST, "exists")
        self.addresses.add(key)
        self.expires.pop(key, None)
        if valid_lft is not None and valid_lft != 0xFFFFFFFF:
            self.lifetimes[key] = valid_lft
            self.preferred[key] = valid_lft if preferred_lft is None else preferred_lft
            self.expires[key] = time.monotonic() + valid_lft

    async def remove_address(self, index: int, address: Any) -> None:
        self._check("remove address")
        key = (self.name_of(index), address)
        if key not in self.addresses:
            raise NetlinkError(errno.EADDRNOTAVAIL, "gone")
        self.addresses.discard(key)
        self.expires.pop(key, None)

    async def add_route(self, index: int, route: Route, proto: str = "static") -> None:
        self._check("add route")
        proto_number = RTPROT_DHCP if proto == "dhcp" else RTPROT_STATIC
        self.routes[(self.name_of(index), route.canonical())] = proto_number

    async def remove_route(self, index: int | None, route: Route) -> None:
        self._check("remove route")
        key = (self.name_of(index or 0), route.canonical())
        if key not in self.routes:
            raise NetlinkError(errno.ESRCH, "no such route")
        del self.routes[key]


class FakeDhcp:
    def __init__(self) -> None:
        self.running: dict[tuple[str, int], DhcpOptions] = {}
        self.held: list[DhcpLease] = []
        self.synced = 0
        self.exchanges = 0

    def clients(self) -> tuple[DhcpClient, ...]:
        return tuple(DhcpClient(link, fam, opts) for (link, fam), opts in self.running.items())

    def leases(self) -> tuple[DhcpLease, ...]:
        return tuple(self.held)

    async def sync(self, links: Any) -> None:
        self.synced += 1

    async def start(self, link: Any, family: int, options: DhcpOptions) -> None:
        self.running[(link if isinstance(link, str) else link.name, family)] = options

    async def stop(self, link: str, family: int, release: bool = True) -> None:
        self.running.pop((link, family), None)

    def status(self) -> dict[str, Any]:
        return {}


class World:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.kernel = FakeKernel()
        self.dhcp = FakeDhcp()
        self.bus = Bus()
        self.events = self.bus.subscribe("test")
        self.config = config
        self.generation = 1
        self.hooks: list[tuple[tuple[str, ...], str | None]] = []

        async def run_hook(argv: tuple[str, ...], link: str | None) -> int:
            self.hooks.append((argv, link))
            return 0 if argv[0] != "false" else 1

        self.handler = NetworkHandler(
            bus=self.bus, netlink=self.kernel, dhcp=self.dhcp,  # type: ignore[arg-type]
            network=self.network,
            state_dir=tmp / "state", resolv_conf=tmp / "etc" / "resolv.conf",
            resolv_copies=(tmp / "console" / "resolv.conf",), run_hook=run_hook,
        )

    def network(self) -> NetworkConfig:
        """What the config store's network check parsed for the config in force (a test's configs are
        valid, as the store guarantees)."""
        parsed = parse_config(self.config)
        assert parsed.config is not None, parsed.errors
        return parsed.config

    def set_config(self, config: dict[str, Any]) -> None:
        self.config = config
        self.generation += 1

    def published(self, kind: type) -> list[Any]:
        out = []
        while (e := self.events.get_nowait()) is not None:
            if isinstance(e, kind):
                out.append(e)
        return out


def rancher(interfaces: dict[str, Any], **network: Any) -> dict[str, Any]:
    return {"corral": {"network": {"interfaces": interfaces, **network}}}


ETH0 = {"eth0": {"address": "198.18.0.2/24", "gateway": "198.18.0.1", "post_up": "touch /x/$iface"}}


async def test_a_new_link_is_configured_recorded_and_then_left_alone(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0, dns={"nameservers": ["198.18.0.53"]}))
    w.kernel.plug("eth0")
    w.kernel.plug("docker0")
    await w.handler.load()
    await w.handler.reconcile(full=True)
    k = w.kernel
    assert k.links["eth0"].up and not k.links["docker0"].up
    assert ("eth0", ip("198.18.0.2/24")) in k.addresses
    default = Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("198.18.0.1")).canonical()
    assert ("eth0", default) in k.routes
    assert w.hooks == [(("touch", "/x/eth0"), "eth0")]
    assert "nameserver 198.18.0.53" in (tmp_path / "etc" / "resolv.conf").read_text()
    owned = json.loads((tmp_path / "state" / "network-owned.json").read_text())
    assert owned["addresses"] == [["eth0", "198.18.0.2/24"]]
    [applied] = w.published(NetworkApplied)
    assert "add address 198.18.0.2/24 to eth0" in applied.applied and applied.failed == ()
    calls = len(k.calls)
    await w.handler.reconcile(full=False)
    assert len(k.calls) == calls and w.handler.rounds == 2  # nothing to do, nothing done
    assert w.handler.last_change is not None and w.handler.last_change.reason == "resync"


async def test_the_consoles_copy_of_resolv_conf_is_kept_the_same(tmp_path: Path) -> None:
    """The console links its /etc/resolv.conf to corral's copy (docker's own is made once, at the
    container's start): every write goes to both, and a copy that is missing or differs when the handler
    starts is written, even when the host's file already says what the config wants."""
    host, copy = tmp_path / "etc" / "resolv.conf", tmp_path / "console" / "resolv.conf"
    config = rancher(ETH0, dns={"nameservers": ["198.18.0.53"], "search": ["corp.example"]})
    w = World(tmp_path, config)
    w.kernel.plug("eth0")
    await w.handler.load()
    await w.handler.reconcile(full=True)
    assert copy.read_text() == host.read_text() and "nameserver 198.18.0.53" in copy.read_text()
    w.set_config(rancher(ETH0, dns={"nameservers": ["198.18.0.54"]}))
    await w.handler.reconcile(full=False)
    assert copy.read_text() == host.read_text() and "nameserver 198.18.0.54" in copy.read_text()
    for broken in ("", "nameserver 192.0.2.1\n"):  # missing, then stale: written again by a new handler
        if broken:
            copy.write_text(broken)
        else:
            copy.unlink()
        again = World(tmp_path, w.config)
        again.kernel = w.kernel
        again.handler.netlink = w.kernel  # type: ignore[assignment]
        await again.handler.load()
        await again.handler.reconcile(full=True)
        assert copy.read_text() == host.read_text(), broken


async def test_drift_is_put_back_and_counted(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    w.kernel.plug("eth0")
    await w.handler.reconcile(full=True)
    w.kernel.addresses.clear()
    w.kernel.routes.clear()
    await w.handler.reconcile(full=False)
    assert ("eth0", ip("198.18.0.2/24")) in w.kernel.addresses and w.kernel.routes
    assert w.handler.drift["eth0"].corrected == 2
    status = await w.handler.status()
    eth0 = next(link for link in status["links"] if link["name"] == "eth0")
    assert eth0["drift"]["corrected"] == 2 and eth0["drift"]["pending"] == []
    assert eth0["rule"]["id"] == "eth0" and eth0["addresses"][0]["owned"]


async def test_a_config_change_applies_only_the_difference(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    w.kernel.plug("eth0")
    await w.handler.reconcile(full=True)
    w.kernel.calls.clear()
    w.set_config(rancher({"eth0": {"addresses": ["198.18.0.2/24", "198.18.1.2/24"]}}))
    await w.handler.reconcile(full=False)
    assert w.kernel.calls == ["remove route", "add address"]  # the gateway went, one address came
    assert {a for _, a in w.kernel.addresses} == {ip("198.18.0.2/24"), ip("198.18.1.2/24")}
    assert w.handler.drift == {}  # a config change is not drift


async def test_transient_failures_are_retried_quietly_and_real_ones_are_errors(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    w.kernel.plug("eth0")
    w.handler._retry.first = 0.01
    w.kernel.fail["add route"] = errno.ENETUNREACH
    with capture_logs() as logs:
        await w.handler.reconcile(full=True)
        assert not [e for e in logs if e["log_level"] == "error"]
        assert any(e["event"] == "network change failed; retrying" for e in logs)
        await asyncio.sleep(0.05)
        assert w.published(NetworkPoke)  # the retry asks for another reconcile
        w.kernel.fail = {"add address": errno.EPERM}
        w.kernel.addresses.clear()
        await w.handler.reconcile(full=False)
        await w.handler.reconcile(full=False)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1 and "EPERM" in errors[0]["failure"]  # logged once
    assert w.handler.failures == ["add address 198.18.0.2/24 to eth0: EPERM: injected"]
    w.kernel.fail = {}
    await w.handler.reconcile(full=False)
    assert w.handler.failures == [] and w.kernel.routes


async def test_dhcp_is_started_stopped_and_leases_feed_dns(tmp_path: Path) -> None:
    w = World(tmp_path, rancher({"eth*": {"dhcp": True}}))
    w.kernel.plug("eth1")
    await w.handler.reconcile(full=True)
    assert ("eth1", 4) in w.dhcp.running and w.dhcp.synced == 1
    w.dhcp.held = [DhcpLease("eth1", 4, ip("198.18.60.50/24"), None, (ipaddress.ip_address("198.18.60.53"),),
                             ("corp.example",))]
    await w.handler.reconcile(full=False)
    assert "search corp.example" in (tmp_path / "etc" / "resolv.conf").read_text()
    assert w.handler.dns_written == Dns((ipaddress.ip_address("198.18.60.53"),), ("corp.example",))
    w.set_config(rancher({"eth*": {"dhcp": False}}))
    await w.handler.reconcile(full=False)
    assert w.dhcp.running == {}


async def test_the_reconciler_puts_a_lease_in_place_renews_it_and_removes_it(tmp_path: Path) -> None:
    """The DHCP client only holds the lease; the reconciler writes what it brings to the kernel."""
    w = World(tmp_path, rancher({"eth*": {"dhcp": True, "post_up": "touch /x/$iface"}}))
    w.kernel.plug("eth1")
    await w.handler.reconcile(full=True)
    assert ("eth1", 4) in w.dhcp.running and w.hooks == [(("touch", "/x/eth1"), "eth1")]
    k, ends = w.kernel, time.monotonic() + 60
    bound = DhcpLease("eth1", 4, ip("198.18.60.50/24"), ipaddress.ip_address("198.18.60.1"),
                      (ipaddress.ip_address("198.18.60.53"),), ("corp.example",), mtu=1400, expires=ends)
    w.dhcp.held = [bound]
    await w.handler.reconcile(full=False)
    default = Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("198.18.60.1"), metric=1024)
    leased = ("eth1", ip("198.18.60.50/24"))
    assert leased in k.addresses and 58 <= k.lifetimes[leased] <= 60
    assert k.routes[("eth1", default.canonical())] == RTPROT_DHCP and k.links["eth1"].mtu == 1400
    assert "nameserver 198.18.60.53" in (tmp_path / "etc" / "resolv.conf").read_text()
    assert len(w.hooks) == 1  # what a lease brings runs no hooks
    calls = len(k.calls)
    await w.handler.reconcile(full=False)
    assert len(k.calls) == calls  # nothing to do: the lifetime is current

    w.dhcp.held = [replace(bound, expires=ends + 120)]  # renewed
    k.calls.clear()
    await w.handler.reconcile(full=False)
    assert k.calls == ["add address"] and k.lifetimes[leased] >= 178
    assert w.handler.drift == {}  # a lease's change is not drift

    w.dhcp.held = []  # expired, or released
    await w.handler.reconcile(full=False)
    assert k.addresses == set() and not [r for r in k.routes if r[0] == "eth1"]
    assert w.handler.owned.addresses == frozenset() and w.handler.owned.routes == frozenset()


async def test_try_rolls_back_unless_confirmed(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    w.kernel.plug("eth0")
    await w.handler.reconcile(full=True)
    text = "corral:\n  network:\n    interfaces:\n      eth0: {address: 198.18.5.2/24}\n"
    candidate = candidate_config(w.config, text)
    result = await w.handler.try_config(candidate, text, timeout=0.05)
    assert "add address 198.18.5.2/24 to eth0" in result["applied"]
    assert {a for _, a in w.kernel.addresses} == {ip("198.18.5.2/24")}
    with pytest.raises(NetworkError, match="pending"):
        await w.handler.try_config(candidate, text, timeout=1)
    await asyncio.sleep(0.2)
    assert {a for _, a in w.kernel.addresses} == {ip("198.18.0.2/24")}  # rolled back
    assert [e.state for e in w.published(NetworkTry)] == ["started", "rolled-back"]
    with pytest.raises(NetworkError, match="no network try"):
        await w.handler.confirm(lambda t: asyncio.sleep(0))

    persisted: list[str] = []

    async def persist(t: str) -> None:
        persisted.append(t)
        w.set_config(rancher({"eth0": {"address": "198.18.5.2/24"}}))

    await w.handler.try_config(candidate, text, timeout=0.1)
    assert (await w.handler.confirm(persist)) == {"confirmed": True}
    await asyncio.sleep(0.2)
    assert persisted == [text] and w.handler.try_status() is None
    await w.handler.reconcile(full=False)
    assert {a for _, a in w.kernel.addresses} == {ip("198.18.5.2/24")}  # kept


async def test_a_failed_confirm_keeps_the_try_pending(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    w.kernel.plug("eth0")
    text = "corral:\n  network:\n    interfaces:\n      eth0: {address: 198.18.5.2/24}\n"
    await w.handler.try_config(candidate_config(w.config, text), text, timeout=5)

    async def refuse(t: str) -> None:
        raise RuntimeError("config store says no")

    with pytest.raises(RuntimeError):
        await w.handler.confirm(refuse)
    assert w.handler.try_status() is not None
    await w.handler.rollback("test")
    assert w.handler.try_status() is None


def test_candidate_config_names_the_problem() -> None:
    with pytest.raises(NetworkError, match="adress"):
        candidate_config({}, "corral:\n  network:\n    interfaces:\n      eth0: {adress: 1.2.3.4/24}\n")
    with pytest.raises(NetworkError, match="not an IP interface"):
        candidate_config({}, "corral:\n  network:\n    interfaces:\n      eth0: {address: nope}\n")
    config = candidate_config(rancher(ETH0), "rancher:\n  network:\n    dns: {nameservers: [198.18.0.9]}\n")
    assert config.interfaces[0].id == "eth0" and str(config.dns.nameservers[0]) == "198.18.0.9"


async def test_an_unreadable_owned_record_starts_empty(tmp_path: Path) -> None:
    w = World(tmp_path, rancher(ETH0))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "network-owned.json").write_text("{not json")
    with capture_logs() as logs:
        await w.handler.load()
    assert w.handler.owned.addresses == frozenset()
    assert any("unreadable" in e["event"] for e in logs)


# ---- apply on its own --------------------------------------------------------------------------------
async def test_apply_counts_done_work_as_applied_and_reports_failures() -> None:
    k = FakeKernel()
    k.plug("eth0")
    k.addresses.add(("eth0", ip("198.18.0.2/24")))
    snap = await k.observe()
    ops = [
        AddAddress("eth0", ip("198.18.0.2/24")),  # exists: EEXIST is fine
        RemoveAddress("eth0", ip("198.18.9.9/24")),  # not there: fine
        SetMtu("nothere", 1400),  # no such link
        CreateLink("br0", "bridge"),
        SetUp("br0"),  # resolved after the create
        RenameLink("eth0", "lan0"),
        AddRoute("lan0", Route(ipaddress.ip_network("198.18.7.0/24"))),
        WriteDns((ipaddress.ip_address("198.18.0.53"),), ()),
    ]
    written: list[Dns] = []

    class Effects:
        async def write_dns(self, dns: Dns) -> None:
            written.append(dns)

    result = await apply(ops, k, snap, Effects())  # type: ignore[arg-type]
    assert [str(f) for f in result.failed] == ["set mtu 1400 on nothere: no link nothere"]
    assert result.failed[0].transient
    assert result.applied == [op for op in ops if not isinstance(op, SetMtu)]
    assert k.links["br0"].up and "lan0" in k.links and written


async def test_apply_puts_a_lease_address_in_place_with_its_lifetime() -> None:
    k = FakeKernel()
    k.plug("eth0")
    k.addresses.add(("eth0", ip("198.18.60.50/24")))
    snap = await k.observe()
    default = Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("198.18.60.1"), metric=1024)
    ops = [AddAddress("eth0", ip("198.18.60.50/24"), lease=True, expires=time.monotonic() + 30.5),
           AddAddress("eth0", ip("198.18.61.50/24"), lease=True),
           AddRoute("eth0", default, lease=True)]
    result = await apply(ops, k, snap, None)  # type: ignore[arg-type]
    assert result.ok and k.lifetimes[("eth0", ip("198.18.60.50/24"))] in (30, 31)  # replaced, not EEXIST
    assert ("eth0", ip("198.18.61.50/24")) not in k.lifetimes  # a lease without an end: no lifetime
    assert k.preferred[("eth0", ip("198.18.60.50/24"))] == k.lifetimes[("eth0", ip("198.18.60.50/24"))]
    # a DHCPv6 lease's preferred lifetime, never past the valid one
    six = ipaddress.ip_interface("2001:db8::5/128")
    now = time.monotonic()
    v6 = [AddAddress("eth0", six, lease=True, expires=now + 100.5, preferred=now + 40.5)]
    assert (await apply(v6, k, snap, None)).ok  # type: ignore[arg-type]
    assert k.preferred[("eth0", six)] in (40, 41) and k.lifetimes[("eth0", six)] in (100, 101)
    late = [AddAddress("eth0", six, lease=True, expires=now + 100.5, preferred=now + 500.0)]
    assert (await apply(late, k, snap, None)).ok  # type: ignore[arg-type]
    assert k.preferred[("eth0", six)] == k.lifetimes[("eth0", six)]
    assert k.routes[("eth0", default.canonical())] == RTPROT_DHCP
    assert lease_lifetime(None, 0.0) == 0xFFFFFFFF and lease_lifetime(10.0, 20.0) == 1
    assert lease_lifetime(100.2, 90.0) == 11  # rounded up: the address never goes before its lease
    assert describe(ops[0]) == "set address 198.18.60.50/24 on eth0 for its DHCP lease"
    assert describe(ops[2]) == "add route 0.0.0.0/0 via 198.18.60.1 dev eth0 metric 1024 proto dhcp"
    permanent = AddAddress("eth0", ip("198.18.60.50/24"), replace=True)
    assert (await apply([permanent], k, snap, None)).ok  # type: ignore[arg-type]
    assert ("eth0", ip("198.18.60.50/24")) not in k.expires  # no lifetime any more
    assert describe(permanent) == "make address 198.18.60.50/24 on eth0 permanent"


def test_describe_and_route_kwargs() -> None:
    route = Route(ipaddress.ip_network("198.19.0.0/16"), ipaddress.ip_address("198.18.0.254"), metric=100,
                  table=5, on_link=True, source=ipaddress.ip_address("198.18.0.2"))
    assert describe(AddRoute("eth0", route)) == (
        "add route 198.19.0.0/16 via 198.18.0.254 dev eth0 metric 100 table 5 onlink src 198.18.0.2")
    assert describe(CreateLink("bond0", "bond", (("bond_mode", 4),))) == "create bond bond0 (bond_mode=4)"
    kwargs = route_kwargs(7, route)
    assert kwargs == {"dst": "198.19.0.0/16", "table": 5, "priority": 100, "family": 2, "oif": 7,
                      "gateway": "198.18.0.254", "scope": 0, "prefsrc": "198.18.0.2", "flags": 4}
    v6 = route_kwargs(None, Route(ipaddress.ip_network("::/0"), ipaddress.ip_address("2001:db8::1")))
    assert v6["priority"] == 1024 and "oif" not in v6 and v6["family"] == 10


def test_an_ipv6_setting_is_written_to_the_links_sysctl_file(tmp_path: Path) -> None:
    from netconf.apply import write_ipv6_conf

    (tmp_path / "eth0.100").mkdir()
    write_ipv6_conf("eth0.100", "accept_ra", 2, root=tmp_path)
    assert (tmp_path / "eth0.100" / "accept_ra").read_text() == "2\n"
