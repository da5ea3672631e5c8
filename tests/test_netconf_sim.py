"""A tiny pure "kernel" that applies plan operations to observed state, and the idempotence it proves:
plan(desired, simulate(observed, plan(desired, observed))) == [].

The simulator refuses what the kernel would refuse (a VLAN before its parent, enslaving to a missing
master, a bond member that is up, renaming a link that is up, adding an address twice), so a plan
applied in its order must be a valid order too. DHCP clients touch nothing in it (the plan puts in
place what their leases bring). Other test modules import ``simulate`` and helpers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import replace

import pytest
import yaml

from netconf.desired import Desired
from netconf.model import DhcpOptions, NetworkConfig, Route
from netconf.observed import (
    RTPROT_DHCP,
    RTPROT_KERNEL,
    RTPROT_STATIC,
    Address,
    DhcpClient,
    DhcpLease,
    Link,
    Observed,
    RouteEntry,
)
from netconf.ops import (
    AddAddress,
    AddRoute,
    CreateLink,
    DeleteLink,
    Enslave,
    Op,
    Release,
    RemoveAddress,
    RemoveRoute,
    RenameLink,
    RunHook,
    SetDown,
    SetIPv6,
    SetMtu,
    SetUp,
    StartDhcp,
    StopDhcp,
    WriteDns,
    record,
)
from netconf.parse import parse_config
from netconf.plan import plan


class Refused(AssertionError):
    """The simulated kernel refuses an operation (the plan's order or content is wrong)."""


def simulate(observed: Observed, ops: Sequence[Op]) -> Observed:
    """``observed`` after ``ops``, with ``owned`` updated by ``record``. A lease's address or route
    replaces one that is there (``ip addr/route replace``)."""
    links = {link.name: link for link in observed.links}
    addresses = list(observed.addresses)
    routes = list(observed.routes)
    clients = list(observed.dhcp)
    dns = observed.dns

    def need(name: str) -> Link:
        if name not in links:
            raise Refused(f"no link {name}")
        return links[name]

    def delete(name: str) -> None:
        nonlocal addresses, routes, clients
        links.pop(name)
        for child in [c.name for c in links.values() if c.parent == name and c.kind == "vlan"]:
            delete(child)
        for other in list(links.values()):
            if other.master == name:
                links[other.name] = replace(other, master=None)
        addresses = [a for a in addresses if a.link != name]
        routes = [r for r in routes if r.link != name]
        clients = [c for c in clients if c.link != name]

    for op in ops:
        if isinstance(op, CreateLink):
            if op.name in links:
                raise Refused(f"{op.name} exists")
            refs = dict(op.refs)
            parent = refs.get("link")
            mac = None
            if op.kind == "vlan":
                if parent is None:
                    raise Refused("a VLAN needs its parent")
                mac = need(parent).mac
            index = max((link.index for link in links.values()), default=0) + 1
            links[op.name] = Link(
                index, op.name, mac=mac or f"02:00:00:00:00:{index:02x}", kind=op.kind, parent=parent
            )
        elif isinstance(op, DeleteLink):
            need(op.name)
            delete(op.name)
        elif isinstance(op, RenameLink):
            link = need(op.name)
            if link.up:
                raise Refused(f"rename {op.name} while up")
            if op.new_name in links:
                raise Refused(f"{op.new_name} exists")
            links = {
                (op.new_name if n == op.name else n): (replace(v, name=op.new_name) if n == op.name else v)
                for n, v in links.items()
            }
            links = {
                n: replace(
                    v,
                    master=op.new_name if v.master == op.name else v.master,
                    parent=op.new_name if v.parent == op.name else v.parent,
                )
                for n, v in links.items()
            }
            addresses = [replace(a, link=op.new_name) if a.link == op.name else a for a in addresses]
            routes = [replace(r, link=op.new_name) if r.link == op.name else r for r in routes]
        elif isinstance(op, Enslave):
            link, master = need(op.link), need(op.master)
            if master.kind not in ("bridge", "bond"):
                raise Refused(f"{op.master} cannot have ports")
            if master.kind == "bond" and link.up:
                raise Refused(f"{op.link} is up: set it down before enslaving it to a bond")
            links[op.link] = replace(link, master=op.master)
        elif isinstance(op, Release):
            links[op.link] = replace(need(op.link), master=None)
        elif isinstance(op, SetMtu):
            links[op.link] = replace(need(op.link), mtu=op.mtu)
        elif isinstance(op, SetIPv6):
            link = need(op.link)
            links[op.link] = replace(link, ipv6_conf=(*(c for c in link.ipv6_conf if c[0] != op.name),
                                                      (op.name, op.value)))
        elif isinstance(op, SetUp | SetDown):
            links[op.link] = replace(need(op.link), up=isinstance(op, SetUp))
        elif isinstance(op, AddAddress):
            need(op.link)
            there = [a for a in addresses if a.link == op.link and a.address == op.address]
            if there and not (op.lease or op.replace):
                raise Refused(f"{op.address} already on {op.link}")
            if there:
                addresses.remove(there[0])
                routes = [r for r in routes if not (r.link == op.link and r.route.to == op.address.network)]
            addresses.append(Address(op.link, op.address, dynamic=op.expires is not None, expires=op.expires))
            routes.append(
                RouteEntry(
                    op.link,
                    Route(
                        op.address.network, metric=0 if op.address.version == 4 else 256, scope="link"
                    ).canonical(),
                    RTPROT_KERNEL,
                )
            )
        elif isinstance(op, RemoveAddress):
            before = len(addresses)
            addresses = [a for a in addresses if not (a.link == op.link and a.address == op.address)]
            if len(addresses) == before:
                raise Refused(f"{op.address} is not on {op.link}")
            if not any(a.link == op.link and a.address.network == op.address.network for a in addresses):
                routes = [
                    r
                    for r in routes
                    if not (
                        r.link == op.link and r.proto == RTPROT_KERNEL and r.route.to == op.address.network
                    )
                ]
        elif isinstance(op, AddRoute):
            need(op.link)
            if any(r.link == op.link and r.route == op.route for r in routes):
                if not op.lease:
                    raise Refused(f"route {op.route} exists")
                routes = [r for r in routes if not (r.link == op.link and r.route == op.route)]
            routes.append(RouteEntry(op.link, op.route, RTPROT_DHCP if op.lease else RTPROT_STATIC))
        elif isinstance(op, RemoveRoute):
            before = len(routes)
            routes = [r for r in routes if not (r.link == op.link and r.route == op.route)]
            if len(routes) == before:
                raise Refused(f"no route {op.route} on {op.link}")
        elif isinstance(op, StartDhcp):
            if not need(op.link).up:
                raise Refused(f"DHCP on {op.link} while it is down")
            clients.append(DhcpClient(op.link, op.family, op.options))
        elif isinstance(op, StopDhcp):
            clients = [c for c in clients if (c.link, c.family) != (op.link, op.family)]
        elif isinstance(op, WriteDns):
            from netconf.model import Dns

            dns = Dns(op.nameservers, op.search)
        elif isinstance(op, RunHook):
            pass
        else:  # pragma: no cover
            raise AssertionError(op)
    owned = record(observed.owned, ops).prune(links)
    return Observed(
        tuple(sorted(links.values(), key=lambda link: link.index)),
        tuple(addresses),
        tuple(routes),
        tuple(clients),
        dns,
        owned,
    )


def converge(desired: NetworkConfig | Desired, observed: Observed) -> tuple[list[Op], Observed]:
    """Plan, apply, and check that a second plan is empty. Returns the first plan and the result."""
    ops = plan(desired, observed)
    after = simulate(observed, ops)
    again = plan(desired, after)
    assert again == [], f"not idempotent: {again}"
    return ops, after


def config(text: str) -> NetworkConfig:
    """A NetworkConfig from cloud-config YAML text (``rancher:`` folded into ``corral:``)."""
    doc = yaml.safe_load(text) or {}
    if "rancher" in doc:
        doc["corral"] = doc.pop("rancher")
    parsed = parse_config(doc, "test.yml")
    assert parsed.ok, [str(e) for e in parsed.errors]
    assert parsed.config is not None
    return parsed.config


def nics(*names: str, up: bool = False) -> tuple[Link, ...]:
    return tuple(
        Link(i + 2, n, mac=f"52:54:00:00:00:{i + 1:02x}", driver="virtio_net", up=up)
        for i, n in enumerate(names)
    )


LO = Link(1, "lo", up=True, mtu=65536)


# -- the simulator itself ----------------------------------------------------------------------------------


def test_simulator_refuses_a_vlan_before_its_parent() -> None:
    with pytest.raises(Refused):
        simulate(Observed(), [CreateLink("eth0.5", "vlan", (("vlan_id", 5),), (("link", "eth0"),))])


def test_simulator_refuses_enslaving_an_up_link_to_a_bond() -> None:
    obs = Observed(links=(*nics("eth0", up=True),))
    with pytest.raises(Refused):
        simulate(obs, [CreateLink("bond0", "bond"), Enslave("eth0", "bond0")])


def test_simulator_deletes_vlans_with_their_parent_and_records_ownership() -> None:
    obs = Observed(links=nics("eth0"))
    after = simulate(
        obs,
        [
            CreateLink("br0", "bridge"),
            CreateLink("br0.7", "vlan", (("vlan_id", 7),), (("link", "br0"),)),
            DeleteLink("br0"),
        ],
    )
    assert [link.name for link in after.links] == ["eth0"]
    assert after.owned.links == frozenset()


# -- idempotence over whole scenarios ------------------------------------------------------------------------

SCENARIOS = {
    "static": """
rancher:
  network:
    interfaces:
      eth0: {address: 10.0.0.2/24, gateway: 10.0.0.1, mtu: 9000}
    dns: {nameservers: [10.0.0.53], search: [lan]}
""",
    "rancher-test-09": """
rancher:
  network:
    interfaces:
      eth0: {address: 10.0.2.15/24, gateway: 10.0.2.2}
      br0: {vlans: 100}
      eth1: {vlans: "100,200:foobar"}
      eth1.100: {bridge: br0}
      br0.100: {address: 123.123.123.123/32}
      eth6: {bond: bond0}
      eth7: {bond: bond0}
      bond0: {bond_opts: {mode: 1}, address: 123.123.123.124/32}
""",
    "netplan-bonds-vlans-bridges": """
network:
  version: 2
  ethernets:
    eth1: {dhcp4: false}
    eth2: {}
    eth3: {}
  bonds:
    bond0:
      interfaces: [eth2, eth3]
      parameters: {mode: 802.3ad, mii-monitor-interval: 100, primary: eth2}
  vlans:
    bond0-vlan40: {id: 40, link: bond0}
  bridges:
    br0:
      interfaces: [bond0]
      addresses: [192.168.150.1/24, "2001:db8::1/64"]
      routes: [{to: default, via: 192.168.150.254, metric: 100}, {to: "::/0", via: "2001:db8::fffe"}]
      nameservers: {addresses: [1.1.1.1]}
    br0-vlan40:
      interfaces: [bond0-vlan40]
      parameters: {stp: false, forward-delay: 4}
      routes: [{to: 10.40.0.0/16, via: 192.168.150.254, on-link: true}]
""",
    "netplan-set-name-and-dhcp": """
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "52:54:00:00:00:02"}
      set-name: lan0
      dhcp4: true
      dhcp6: true
      dhcp4-overrides: {route-metric: 50}
""",
    "netplan-dummy-devices": """
network:
  version: 2
  dummy-devices:
    dm0: {addresses: [10.1.2.3/24, "2001:cafe::1/64"], routes: [{to: 10.9.0.0/16, via: 10.1.2.254}]}
    dm1: {mtu: 9000}
  bridges:
    br0: {interfaces: [dm1], addresses: [10.1.3.1/24]}
  vlans:
    dm0.7: {id: 7, link: dm0, addresses: [10.1.7.1/24]}
""",
    "default-dhcp": "{}",
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_plan_is_idempotent(name: str) -> None:
    desired = config(SCENARIOS[name])
    links = (
        LO,
        *nics("eth0", "eth1", "eth2", "eth3", "eth6", "eth7", up=True),
        Link(20, "docker0", mac="02:42:00:00:00:01", kind="bridge", up=True),
    )
    ops, after = converge(desired, Observed(links=links))
    assert ops, "the first plan does something"
    assert after.link("docker0") == links[-1]
    # and back to nothing: what corral made goes away, what it did not make stays
    ops, final = converge(config("network: {config: disabled}"), after)
    assert final.owned.addresses == frozenset() and final.owned.routes == frozenset()
    assert final.owned.links == frozenset()
    assert {link.name for link in final.links} >= {"lo", "docker0", "eth0"}


def test_a_lease_arriving_later_brings_its_address_route_and_dns_once() -> None:
    desired = config("network: {version: 2, ethernets: {eth0: {dhcp4: true}}}")
    lease = DhcpLease(
        "eth0",
        4,
        ipaddress.ip_interface("10.9.0.5/24"),
        ipaddress.ip_address("10.9.0.1"),
        (ipaddress.ip_address("10.9.0.1"),),
        ("lan",),
        expires=5000.0,
    )
    _, state = converge(desired, Observed(links=nics("eth0")))
    assert [c.link for c in state.dhcp] == ["eth0"]
    ops, after = converge(Desired(desired, (lease,)), state)  # the client got a lease
    default = Route(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.9.0.1"), metric=1024)
    assert ops == [
        AddAddress("eth0", ipaddress.ip_interface("10.9.0.5/24"), lease=True, expires=5000.0),
        AddRoute("eth0", default.canonical(), lease=True),
        WriteDns((ipaddress.ip_address("10.9.0.1"),), ("lan",)),
    ]
    assert [a.expires for a in after.addresses] == [5000.0]


def test_dhcp_options_change_restarts_the_client() -> None:
    before = config("network: {version: 2, ethernets: {eth0: {dhcp4: true}}}")
    after = config(
        "network: {version: 2, ethernets: {eth0: {dhcp4: true, dhcp4-overrides: {route-metric: 7}}}}"
    )
    _, state = converge(before, Observed(links=nics("eth0")))
    ops, _ = converge(after, state)
    assert ops == [StopDhcp("eth0", 4), StartDhcp("eth0", 4, DhcpOptions(route_metric=7))]
