"""The network plan as a pure function: ordering for bonds, VLANs and bridges; config changes; what it
never touches; exclusive links; DNS; hooks; ownership."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import replace

from test_netconf_sim import LO, config, converge, nics, simulate

from netconf.desired import (
    LEASE_ROUTE_METRIC,
    LIFETIME_EARLY,
    LIFETIME_SLACK,
    Desired,
    lease_address,
    lease_route,
    lifetime_current,
    link_mtu,
)
from netconf.model import DhcpOptions, Dns, Interface, LinkSpec, Route
from netconf.observed import (
    RTPROT_BOOT,
    RTPROT_DHCP,
    RTPROT_KERNEL,
    Address,
    DhcpLease,
    Link,
    Observed,
    Owned,
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
from netconf.plan import desired_dns, plan

ip = ipaddress.ip_interface
addr = ipaddress.ip_address


def route(to: str, via: str | None = None, **kw: object) -> Route:
    return Route(ipaddress.ip_network(to), addr(via) if via else None, **kw).canonical()  # type: ignore[arg-type]


def index(ops: Sequence[Op], op: Op) -> int:
    assert op in ops, f"{op} not in {ops}"
    return list(ops).index(op)


def before(ops: Sequence[Op], *chain: Op) -> None:
    positions = [index(ops, op) for op in chain]
    assert positions == sorted(positions), f"out of order: {chain}"


BOND = """
rancher:
  network:
    interfaces:
      bond0:
        addresses: [192.168.101.33/31]
        gateway: 192.168.101.32
        mtu: 9000
        bond_opts: {mode: "4", miimon: "100", xmit_hash_policy: layer3+4}
      eth0: {bond: bond0}
      eth1: {bond: bond0}
"""


def test_bond_plan_orders_create_enslave_up_address_route() -> None:
    obs = Observed(links=(LO, *nics("eth0", "eth1", up=True)))
    ops = plan(config(BOND), obs)
    create = CreateLink(
        "bond0", "bond", (("bond_miimon", 100), ("bond_mode", 4), ("bond_xmit_hash_policy", 1))
    )
    gateway = AddRoute("bond0", route("0.0.0.0/0", "192.168.101.32"))
    assert ops == [
        create,
        SetMtu("bond0", 9000),
        SetDown("eth0"),
        Enslave("eth0", "bond0"),
        SetDown("eth1"),
        Enslave("eth1", "bond0"),
        SetUp("eth0"),
        SetUp("eth1"),
        SetUp("bond0"),
        AddAddress("bond0", ip("192.168.101.33/31")),
        gateway,
    ]
    converge(config(BOND), obs)


def test_vlan_plan_creates_the_parent_first_and_names_it_as_a_ref() -> None:
    text = """
network:
  version: 2
  ethernets: {eth0: {}}
  bridges: {br0: {interfaces: [eth0], parameters: {stp: false}}}
  vlans: {br0.42: {id: 42, link: br0, addresses: [10.42.0.2/24], routes: [{to: 10.0.0.0/8, via: 10.42.0.1}]}}
"""
    obs = Observed(links=(LO, *nics("eth0")))
    ops = plan(config(text), obs)
    vlan = CreateLink("br0.42", "vlan", (("vlan_id", 42),), (("link", "br0"),))
    bridge = CreateLink("br0", "bridge", (("br_stp_state", 0),))
    before(
        ops,
        bridge,
        vlan,
        Enslave("eth0", "br0"),
        SetUp("br0"),
        SetUp("br0.42"),
        AddAddress("br0.42", ip("10.42.0.2/24")),
        AddRoute("br0.42", route("10.0.0.0/8", "10.42.0.1")),
    )
    assert SetDown("eth0") not in ops  # a bridge port need not be down
    converge(config(text), obs)


def test_rancher_vlans_on_each_matched_link_and_named_ones() -> None:
    text = "rancher: {network: {interfaces: {eth*: {vlans: '7,8:mgmt'}, eth0.7: {address: 10.7.0.1/24}}}}"
    obs = Observed(links=nics("eth0", "eth1"))
    ops, _ = converge(config(text), obs)
    created = [op.name for op in ops if isinstance(op, CreateLink)]
    assert created == ["eth0.7", "mgmt", "eth1.7"]  # mgmt once (first link wins), no eth0.7.7
    assert AddAddress("eth0.7", ip("10.7.0.1/24")) in ops


def test_bridge_plan_and_bridge_dropped_from_config_is_deleted_last() -> None:
    with_bridge = config("""
rancher:
  network:
    interfaces:
      br0: {bridge: true, address: 10.1.0.1/24, gateway: 10.1.0.254}
      eth0: {bridge: br0}
""")
    ops, state = converge(with_bridge, Observed(links=(LO, *nics("eth0", up=True))))
    before(
        ops,
        CreateLink("br0", "bridge"),
        Enslave("eth0", "br0"),
        SetUp("br0"),
        AddAddress("br0", ip("10.1.0.1/24")),
    )
    assert state.owned.link_spec("br0") is not None and state.owned.master_of("eth0") == "br0"

    without = config("rancher: {network: {interfaces: {eth0: {address: 10.1.0.1/24, gateway: 10.1.0.254}}}}")
    ops, final = converge(without, state)
    assert ops == [
        RemoveRoute("br0", route("0.0.0.0/0", "10.1.0.254")),
        RemoveAddress("br0", ip("10.1.0.1/24")),
        AddAddress("eth0", ip("10.1.0.1/24")),
        AddRoute("eth0", route("0.0.0.0/0", "10.1.0.254")),
        DeleteLink("br0"),
    ]
    assert final.link("br0") is None and final.link("eth0") is not None
    assert final.owned.links == frozenset() and final.owned.masters == frozenset()


def test_config_change_removes_old_address_and_route_and_adds_new() -> None:
    old = config("rancher: {network: {interfaces: {eth0: {address: 10.0.0.2/24, gateway: 10.0.0.1}}}}")
    new = config("rancher: {network: {interfaces: {eth0: {address: 10.0.1.2/24, gateway: 10.0.1.1}}}}")
    _, state = converge(old, Observed(links=nics("eth0")))
    ops, state = converge(new, state)
    assert ops == [
        RemoveRoute("eth0", route("0.0.0.0/0", "10.0.0.1")),
        RemoveAddress("eth0", ip("10.0.0.2/24")),
        AddAddress("eth0", ip("10.0.1.2/24")),
        AddRoute("eth0", route("0.0.0.0/0", "10.0.1.1")),
    ]
    assert state.owned.addresses == frozenset({("eth0", ip("10.0.1.2/24"))})


def test_removing_a_rule_removes_what_corral_added_on_that_link_only() -> None:
    _, state = converge(
        config("rancher: {network: {interfaces: {eth1: {address: 10.0.0.2/24}}}}"),
        Observed(links=nics("eth0", "eth1"), addresses=(Address("eth1", ip("192.168.9.9/24")),)),
    )
    ops, _ = converge(config("rancher: {network: {interfaces: {eth0: {}}}}"), state)
    assert ops == [RemoveAddress("eth1", ip("10.0.0.2/24")), SetUp("eth0")]


DOCKER = (
    Link(10, "docker0", mac="02:42:ac:11:00:01", kind="bridge", up=True),
    Link(11, "veth1a2b", mac="7a:00:00:00:00:01", kind="veth", master="docker0", up=True),
)
DOCKER_STATE = Observed(
    links=(LO, *nics("eth0", up=True), *DOCKER),
    addresses=(Address("docker0", ip("172.17.0.1/16")), Address("lo", ip("127.0.0.1/8"), proto=1)),
    routes=(
        RouteEntry("docker0", route("172.17.0.0/16", scope="link"), RTPROT_KERNEL),
        RouteEntry("docker0", route("10.99.0.0/16", "172.17.0.9"), RTPROT_BOOT),
    ),
)


def test_unmatched_links_are_untouched_even_with_exclusive_globs() -> None:
    desired = config("rancher: {network: {exclusive: true, interfaces: {e*: {address: 10.0.0.2/24}}}}")
    ops, after = converge(desired, DOCKER_STATE)
    assert ops == [AddAddress("eth0", ip("10.0.0.2/24"))]
    assert after.links[-2:] == DOCKER and [a for a in after.addresses if a.link == "docker0"] == [
        DOCKER_STATE.addresses[0]
    ]
    assert plan(config("network: {config: disabled}"), DOCKER_STATE) == []


FOREIGN = Observed(
    links=nics("eth0", up=True),
    addresses=(
        Address("eth0", ip("10.0.0.2/24")),
        Address("eth0", ip("10.0.0.99/24")),  # someone else's
        Address("eth0", ip("fe80::5054:ff:fe00:1/64"), proto=3),  # kernel link-local
        Address("eth0", ip("10.0.0.150/24"), dynamic=True),  # a DHCP/SLAAC lease
    ),
    routes=(
        RouteEntry("eth0", route("10.0.0.0/24", scope="link"), RTPROT_KERNEL),
        RouteEntry("eth0", route("192.168.0.0/16", "10.0.0.254")),  # someone else's static route
        RouteEntry("eth0", route("0.0.0.0/0", "10.0.0.1", metric=1024), RTPROT_DHCP),
        RouteEntry("eth0", route("10.0.0.2/32", scope="host", table=255), RTPROT_KERNEL),
    ),
)


def test_foreign_addresses_and_routes_stay_unless_the_link_is_exclusive() -> None:
    shared = config("rancher: {network: {interfaces: {eth0: {address: 10.0.0.2/24}}}}")
    assert plan(shared, FOREIGN) == []
    exclusive = config("rancher: {network: {interfaces: {eth0: {address: 10.0.0.2/24, exclusive: true}}}}")
    ops, after = converge(exclusive, FOREIGN)
    assert ops == [
        RemoveRoute("eth0", route("192.168.0.0/16", "10.0.0.254")),
        RemoveAddress("eth0", ip("10.0.0.99/24")),
    ]
    assert len(after.addresses) == 3 and len(after.routes) == 3  # kernel, DHCP/SLAAC and local ones stay


LEASES = (
    DhcpLease("eth1", 4, ip("10.1.0.5/24"), addr("10.1.0.1"), (addr("10.1.0.53"),), ("b.example",)),
    DhcpLease(
        "eth0", 4, ip("10.0.0.5/24"), addr("10.0.0.1"), (addr("10.0.0.53"), addr("10.1.0.53")), ("a.example",)
    ),
    DhcpLease("eth2", 4, ip("10.2.0.5/24"), None, (addr("10.2.0.53"),)),  # eth2 does not want DHCP now
)


def test_dns_from_dhcp_leases_when_the_config_gives_none() -> None:
    desired = config("network: {version: 2, ethernets: {eth0: {dhcp4: true}, eth1: {dhcp4: true}, eth2: {}}}")
    obs = Observed(links=nics("eth0", "eth1", "eth2"))
    ops = plan(Desired(desired, LEASES), obs)
    assert ops[-1] == WriteDns((addr("10.0.0.53"), addr("10.1.0.53")), ("a.example", "b.example"))
    merged = Dns((addr("10.0.0.53"), addr("10.1.0.53")), ("a.example", "b.example"))
    assert desired_dns(Desired(desired, LEASES), obs) == merged
    assert desired_dns(desired, Observed(links=nics("eth0"))) is None  # nothing known: leave resolv.conf
    no_dns = config(
        "network: {version: 2, ethernets: {eth0: {dhcp4: true, dhcp4-overrides: {use-dns: false}},"
        " eth1: {dhcp4: true}}}"
    )
    assert plan(Desired(no_dns, LEASES), obs)[-1] == WriteDns((addr("10.1.0.53"),), ("b.example",))


def test_dns_from_config_wins_over_leases() -> None:
    desired = config("""
network: {version: 2, ethernets: {eth0: {dhcp4: true, nameservers: {addresses: [9.9.9.9]}}}}
corral: {network: {dns: {nameservers: [1.1.1.1], search: [corp]}}}
""")
    wanted = Desired(desired, LEASES)
    obs = Observed(links=nics("eth0"))
    assert plan(wanted, obs)[-1] == WriteDns((addr("1.1.1.1"), addr("9.9.9.9")), ("corp",))
    _, written = converge(wanted, obs)
    assert written.dns == Dns((addr("1.1.1.1"), addr("9.9.9.9")), ("corp",))
    assert plan(wanted, written) == []


def test_hooks_wrap_a_links_operations_and_the_whole_plan() -> None:
    desired = config("""
rancher:
  network:
    pre_cmds: ["/bin/pre $iface"]
    post_cmds: [/bin/post]
    interfaces:
      eth0: {address: 10.0.0.2/24, pre_up: ["/bin/hook pre $iface"], post_up: [[/bin/hook, post, $iface]]}
      eth1: {dhcp: true}
""")
    ops, _ = converge(desired, Observed(links=nics("eth0", "eth1")))
    assert ops == [
        RunHook(("/bin/pre", ""), "pre"),
        RunHook(("/bin/hook", "pre", "eth0"), "pre_up", "eth0"),
        SetUp("eth0"),
        SetUp("eth1"),
        AddAddress("eth0", ip("10.0.0.2/24")),
        RunHook(("/bin/hook", "post", "eth0"), "post_up", "eth0"),
        StartDhcp("eth1", 4),
        RunHook(("/bin/post",), "post"),
    ]


def test_a_port_is_released_when_its_rule_no_longer_names_the_bridge() -> None:
    _, state = converge(
        config("rancher: {network: {interfaces: {br0: {bridge: true}, eth0: {bridge: br0}}}}"),
        Observed(links=nics("eth0")),
    )
    ops, state = converge(config("rancher: {network: {interfaces: {br0: {bridge: true}, eth0: {}}}}"), state)
    assert ops == [Release("eth0")]
    assert state.owned.masters == frozenset()


def test_a_changed_bond_is_recreated_and_configured_again() -> None:
    _, state = converge(config(BOND), Observed(links=nics("eth0", "eth1")))
    changed = config(BOND.replace('mode: "4"', "mode: active-backup"))
    ops, _ = converge(changed, state)
    assert ops[0] == DeleteLink("bond0")
    before(
        ops,
        DeleteLink("bond0"),
        CreateLink("bond0", "bond", (("bond_miimon", 100), ("bond_mode", 1), ("bond_xmit_hash_policy", 1))),
        Enslave("eth0", "bond0"),
        AddAddress("bond0", ip("192.168.101.33/31")),
    )
    assert SetDown("eth0") in ops  # still up from before: down before joining the new bond


def test_set_name_renames_down_then_configures_the_new_name() -> None:
    desired = config(
        "network: {version: 2, ethernets: {lan: {match: {macaddress: '52:54:00:00:00:01'},"
        " set-name: lan0, addresses: [10.0.0.2/24]}}}"
    )
    ops, after = converge(desired, Observed(links=nics("eth0", up=True)))
    assert ops == [
        SetDown("eth0"),
        RenameLink("eth0", "lan0"),
        SetUp("lan0"),
        AddAddress("lan0", ip("10.0.0.2/24")),
    ]
    assert after.owned.addresses == frozenset({("lan0", ip("10.0.0.2/24"))})


def test_a_foreign_link_of_another_kind_under_a_wanted_name_is_left_alone() -> None:
    obs = Observed(links=(*nics("eth0"), Link(9, "br0", kind="bond", up=True)))
    desired = config(
        "rancher: {network: {interfaces: {br0: {bridge: true, address: 10.0.0.1/24}, eth0: {bridge: br0}}}}"
    )
    ops, _ = converge(desired, obs)
    assert ops == [SetUp("eth0")]


def test_an_existing_bridge_is_adopted_not_owned() -> None:
    obs = Observed(links=(*nics("eth0"), Link(9, "br0", kind="bridge")))
    desired = config("rancher: {network: {interfaces: {br0: {bridge: true}, eth0: {bridge: br0}}}}")
    ops, state = converge(desired, obs)
    assert not any(isinstance(op, CreateLink) for op in ops)
    assert plan(config("rancher: {network: {interfaces: {eth0: {}}}}"), state) == [Release("eth0")]


def test_owned_survives_json_and_record_follows_renames_and_deletes() -> None:
    ops: list[Op] = [
        CreateLink("bond0", "bond", (("bond_mode", 1), ("bond_arp_ip_target", ("10.0.0.1",)))),
        CreateLink("bond0.5", "vlan", (("vlan_id", 5),), (("link", "bond0"),)),
        Enslave("eth0", "bond0"),
        AddAddress("eth0", ip("10.0.0.2/24")),
        AddRoute("eth0", route("10.9.0.0/16", "10.0.0.1", table=7, on_link=True)),
        AddAddress("bond0", ip("fd00::1/64")),
    ]
    owned = record(Owned(), ops)
    assert Owned.from_json(json.loads(json.dumps(owned.to_json()))) == owned
    renamed = record(owned, [RenameLink("bond0", "agg0")])
    assert renamed.link_spec("bond0.5") is not None
    assert dict(renamed.link_spec("bond0.5").refs) == {"link": "agg0"}  # type: ignore[union-attr]
    assert renamed.master_of("eth0") == "agg0"
    gone = record(renamed, [DeleteLink("agg0")])
    assert gone.master_of("eth0") is None and ("agg0", ip("fd00::1/64")) not in gone.addresses


def test_mtu_only_when_it_differs() -> None:
    desired = config("rancher: {network: {interfaces: {eth0: {mtu: 1500}, eth1: {mtu: 9000}}}}")
    assert plan(desired, Observed(links=nics("eth0", "eth1", up=True))) == [SetMtu("eth1", 9000)]


def test_nothing_to_do_is_an_empty_plan() -> None:
    desired = config(BOND)
    _, state = converge(desired, Observed(links=nics("eth0", "eth1")))
    assert plan(desired, state) == []
    assert simulate(state, []) == state


DUMMY = """
network:
  version: 2
  ethernets: {eth0: {addresses: [10.0.0.2/24]}}
  dummy-devices:
    dm0: {addresses: [10.1.2.3/24], routes: [{to: 10.9.0.0/16, via: 10.1.2.254}], mtu: 9000}
"""


def test_a_dummy_device_is_created_configured_and_deleted_when_it_leaves_the_config() -> None:
    ops, state = converge(config(DUMMY), Observed(links=(LO, *nics("eth0", up=True))))
    before(
        ops,
        CreateLink("dm0", "dummy"),
        SetMtu("dm0", 9000),
        SetUp("dm0"),
        AddAddress("dm0", ip("10.1.2.3/24")),
        AddRoute("dm0", route("10.9.0.0/16", "10.1.2.254")),
    )
    assert state.link("dm0") is not None and state.link("dm0").kind == "dummy"  # type: ignore[union-attr]
    assert dict(state.owned.links) == {"dm0": LinkSpec("dummy")}
    assert Owned.from_json(json.loads(json.dumps(state.owned.to_json()))) == state.owned

    without = config("network: {version: 2, ethernets: {eth0: {addresses: [10.0.0.2/24]}}}")
    ops, final = converge(without, state)
    assert ops == [
        RemoveRoute("dm0", route("10.9.0.0/16", "10.1.2.254")),
        RemoveAddress("dm0", ip("10.1.2.3/24")),
        DeleteLink("dm0"),
    ]
    assert final.link("dm0") is None and final.owned.links == frozenset()
    assert final.addresses == state.addresses[:1]  # eth0's address stays


def test_a_dummy_device_as_a_bridge_port_is_created_before_it_is_enslaved() -> None:
    desired = config("""
network:
  version: 2
  dummy-devices: {dm0: {}}
  bridges: {br0: {interfaces: [dm0], addresses: [10.1.3.1/24]}}
""")
    ops, state = converge(desired, Observed(links=(LO,)))
    before(ops, CreateLink("dm0", "dummy"), Enslave("dm0", "br0"), SetUp("br0"))
    before(ops, CreateLink("br0", "bridge", (("br_stp_state", 1),)), Enslave("dm0", "br0"))
    ops, final = converge(config("network: {config: disabled}"), state)
    assert set(ops) == {RemoveAddress("br0", ip("10.1.3.1/24")), DeleteLink("dm0"), DeleteLink("br0")}
    assert {link.name for link in final.links} == {"lo"}


def test_an_existing_dummy_is_adopted_not_owned_and_a_nic_under_its_name_is_left_alone() -> None:
    foreign = Observed(links=(LO, Link(9, "dm0", kind="dummy")))
    ops, state = converge(config(DUMMY), foreign)
    assert not any(isinstance(op, CreateLink) for op in ops)
    assert AddAddress("dm0", ip("10.1.2.3/24")) in ops and state.owned.links == frozenset()
    ops, final = converge(config("network: {config: disabled}"), state)
    assert DeleteLink("dm0") not in ops and RemoveAddress("dm0", ip("10.1.2.3/24")) in ops
    assert final.link("dm0") is not None  # not corral's: only what corral added on it went

    nic = Observed(links=(LO, *nics("eth0"), Link(9, "dm0", mac="52:54:00:00:00:09", driver="virtio_net")))
    ops, _ = converge(config(DUMMY), nic)
    assert not any(op for op in ops if getattr(op, "link", getattr(op, "name", None)) == "dm0")


# -- DHCP leases: desired state beside the config, config first ------------------------------------------

DHCP = "rancher: {network: {interfaces: {eth0: {dhcp: true}}}}"
GW = addr("10.0.0.1")


def lease(address: str = "10.0.0.5/24", gateway: str | None = "10.0.0.1", **kw: object) -> DhcpLease:
    return DhcpLease("eth0", 4, ip(address), addr(gateway) if gateway else None, **kw)  # type: ignore[arg-type]


def running(*names: str) -> Observed:
    """Links up, each with its DHCPv4 client running (default options)."""
    return converge(config(DHCP), Observed(links=nics(*names, up=True)))[1]


def rule(text: str) -> Interface:
    [first] = config(text).interfaces
    return first


def test_lease_precedence_with_plain_data() -> None:
    plain = rule(DHCP)
    held = lease(mtu=1400, expires=100.0)
    assert lease_address(plain, held) == ip("10.0.0.5/24")
    assert lease_route(plain, held) == route("0.0.0.0/0", "10.0.0.1", metric=LEASE_ROUTE_METRIC)
    assert link_mtu(plain, [held]) == 1400
    # the config's own address (same IP), gateway and MTU win
    static = rule(
        "rancher: {network: {interfaces: {eth0: {dhcp: true, address: 10.0.0.5/16, gateway: 10.0.0.254,"
        " mtu: 9000}}}}"
    )
    assert lease_address(static, held) is None
    assert lease_route(static, held) is None
    assert link_mtu(static, [held]) == 9000
    # another static address lives beside the lease's; a default route in another table does not count
    beside = rule("network: {version: 2, ethernets: {eth0: {dhcp4: true, addresses: [10.0.9.2/24],"
                  " routes: [{to: default, via: 10.0.9.1, table: 7}]}}}")
    assert lease_address(beside, held) == ip("10.0.0.5/24") and lease_route(beside, held) is not None
    netplan_default = rule("network: {version: 2, ethernets: {eth0: {dhcp4: true,"
                           " routes: [{to: 0.0.0.0/0, via: 10.0.0.254}]}}}")
    assert lease_route(netplan_default, held) is None
    # the config's options shape the lease's route
    overrides = "network: {version: 2, ethernets: {eth0: {dhcp4: true, dhcp4-overrides: {%s}}}}"
    tuned = rule(overrides % "route-metric: 50")
    assert lease_route(tuned, held) == route("0.0.0.0/0", "10.0.0.1", metric=50)
    no_routes = rule(overrides % "use-routes: false")
    assert lease_route(no_routes, held) is None
    assert lease_route(plain, lease(gateway=None)) is None
    # an unconfirmed lease's MTU is not taken; lifetimes match within the slack
    assert link_mtu(plain, [lease(mtu=1400, confirmed=False)]) is None
    there = Address("eth0", ip("10.0.0.5/24"), dynamic=True, expires=100.0 + LIFETIME_SLACK)
    assert lifetime_current(there, held)
    assert not lifetime_current(replace(there, expires=100.0 + LIFETIME_SLACK + 1), held)
    # never (beyond the kernel's rounding down) before the lease: a rebind that moved the lease on by
    # less than the slack still gets the address's lifetime moved with it
    assert lifetime_current(replace(there, expires=100.0 - LIFETIME_EARLY), held)
    assert not lifetime_current(replace(there, expires=100.0 - LIFETIME_EARLY - 0.5), held)
    assert not lifetime_current(replace(there, dynamic=False, expires=None), held)
    assert lifetime_current(replace(there, dynamic=False, expires=None), lease(expires=None))


def test_a_lease_brings_its_mtu_address_with_its_lifetime_and_default_route() -> None:
    state = running("eth0")
    held = lease(mtu=1400, expires=1000.0)
    ops, after = converge(Desired(config(DHCP), (held,)), state)
    default = route("0.0.0.0/0", "10.0.0.1", metric=1024)
    assert ops == [
        SetMtu("eth0", 1400),
        AddAddress("eth0", ip("10.0.0.5/24"), lease=True, expires=1000.0),
        AddRoute("eth0", default, lease=True),
    ]
    assert [(a.address, a.dynamic, a.expires) for a in after.addresses] == [(ip("10.0.0.5/24"), True, 1000.0)]
    assert RouteEntry("eth0", default, RTPROT_DHCP) in after.routes
    assert after.owned.addresses == {("eth0", ip("10.0.0.5/24"))}
    assert after.owned.routes == {("eth0", default)}


def test_config_wins_over_the_lease_in_the_plan() -> None:
    desired = config("rancher: {network: {interfaces: {eth0: {dhcp: true, address: 10.0.0.5/24,"
                     " gateway: 10.0.0.254, mtu: 9000}}}}")
    state = converge(desired, Observed(links=nics("eth0", up=True)))[1]
    assert plan(Desired(desired, (lease(mtu=1400, expires=1000.0),)), state) == []  # nothing of the lease's
    side_by_side = Desired(desired, (lease("10.0.0.6/24", mtu=1400, expires=1000.0),))
    ops, _ = converge(side_by_side, state)
    assert ops == [AddAddress("eth0", ip("10.0.0.6/24"), lease=True, expires=1000.0)]
    # the lease's address became the config's: it stays, for good
    _, leased = converge(Desired(config(DHCP), (lease(expires=1000.0),)), running("eth0"))
    ops, after = converge(Desired(desired, (lease(expires=1000.0),)), leased)
    assert AddAddress("eth0", ip("10.0.0.5/24"), replace=True) in ops
    assert RemoveAddress("eth0", ip("10.0.0.5/24")) not in ops
    assert [(a.address, a.dynamic) for a in after.addresses] == [(ip("10.0.0.5/24"), False)]


def test_a_renewal_refreshes_the_lifetime_only_and_runs_no_hooks() -> None:
    desired = config("rancher: {network: {pre_cmds: [/bin/pre], interfaces: {eth0: {dhcp: true,"
                     " post_up: [/bin/up]}}}}")
    state = converge(desired, Observed(links=nics("eth0", up=True)))[1]
    ops, state = converge(Desired(desired, (lease(expires=1000.0),)), state)
    assert [type(op) for op in ops] == [AddAddress, AddRoute]  # what a lease brings runs no hooks
    assert plan(Desired(desired, (lease(expires=1000.0 + LIFETIME_SLACK / 2),)), state) == []
    ops, state = converge(Desired(desired, (lease(expires=1600.0),)), state)
    assert ops == [AddAddress("eth0", ip("10.0.0.5/24"), lease=True, expires=1600.0)]
    # someone made it permanent (or it went): put back with the lease's lifetime
    made_permanent = tuple(replace(a, dynamic=False, expires=None) for a in state.addresses)
    permanent = replace(state, addresses=made_permanent)
    assert plan(Desired(desired, (lease(expires=1600.0),)), permanent) == ops
    # a config change in the same round: the hooks wrap the config's operations
    with_address = config("rancher: {network: {pre_cmds: [/bin/pre], interfaces: {eth0: {dhcp: true,"
                          " address: 10.0.9.2/24, post_up: [/bin/up]}}}}")
    ops = plan(Desired(with_address, (lease(expires=2200.0),)), state)
    assert ops == [
        RunHook(("/bin/pre",), "pre"),
        AddAddress("eth0", ip("10.0.9.2/24")),
        RunHook(("/bin/up",), "post_up", "eth0"),
        AddAddress("eth0", ip("10.0.0.5/24"), lease=True, expires=2200.0),
    ]


def test_a_changed_lease_replaces_its_address_and_route() -> None:
    _, state = converge(Desired(config(DHCP), (lease(expires=1000.0),)), running("eth0"))
    ops, after = converge(Desired(config(DHCP), (lease("10.0.1.7/24", "10.0.1.1", expires=2000.0),)), state)
    assert ops == [
        RemoveRoute("eth0", route("0.0.0.0/0", "10.0.0.1", metric=1024)),
        RemoveAddress("eth0", ip("10.0.0.5/24")),
        AddAddress("eth0", ip("10.0.1.7/24"), lease=True, expires=2000.0),
        AddRoute("eth0", route("0.0.0.0/0", "10.0.1.1", metric=1024), lease=True),
    ]
    assert after.owned.addresses == {("eth0", ip("10.0.1.7/24"))}


def test_a_lease_that_goes_takes_what_it_brought_and_leaves_others_leases() -> None:
    _, state = converge(Desired(config(DHCP), (lease(mtu=1400, expires=1000.0),)), running("eth0"))
    foreign = replace(
        state,
        addresses=(*state.addresses, Address("eth0", ip("10.0.0.77/24"), dynamic=True, expires=50.0)),
        routes=(*state.routes, RouteEntry("eth0", route("10.8.0.0/16", "10.0.0.9"), RTPROT_DHCP)),
    )
    ops, after = converge(config(DHCP), foreign)  # expired, or released: no lease any more
    assert ops == [
        RemoveRoute("eth0", route("0.0.0.0/0", "10.0.0.1", metric=1024)),
        RemoveAddress("eth0", ip("10.0.0.5/24")),
    ]
    assert after.owned == Owned() and after.link("eth0").mtu == 1400  # type: ignore[union-attr]
    assert [a.address for a in after.addresses] == [ip("10.0.0.77/24")]  # not corral's: left alone


def test_dhcp_no_longer_wanted_stops_the_client_and_removes_its_lease_in_one_round() -> None:
    _, state = converge(Desired(config(DHCP), (lease(expires=1000.0),)), running("eth0"))
    static = config("rancher: {network: {interfaces: {eth0: {dhcp: false, gateway: 10.0.0.1}}}}")
    ops, after = converge(Desired(static, (lease(expires=1000.0),)), state)  # not released yet
    assert ops == [
        StopDhcp("eth0", 4),
        RemoveRoute("eth0", route("0.0.0.0/0", "10.0.0.1", metric=1024)),
        RemoveAddress("eth0", ip("10.0.0.5/24")),
        AddRoute("eth0", route("0.0.0.0/0", "10.0.0.1")),
    ]
    assert after.dhcp == () and after.owned.routes == {("eth0", route("0.0.0.0/0", "10.0.0.1"))}
    # new options restart the client, which releases its lease: what it brought goes now
    tuned = config(
        "network: {version: 2, ethernets: {eth0: {dhcp4: true, dhcp4-overrides: {route-metric: 5}}}}"
    )
    ops = plan(Desired(tuned, (lease(expires=1000.0),)), state)  # the next round has no lease any more
    assert ops == [
        StopDhcp("eth0", 4),
        RemoveRoute("eth0", route("0.0.0.0/0", "10.0.0.1", metric=1024)),
        RemoveAddress("eth0", ip("10.0.0.5/24")),
        StartDhcp("eth0", 4, DhcpOptions(route_metric=5)),
    ]


def test_an_unconfirmed_lease_keeps_what_it_brought_and_adds_nothing() -> None:
    _, state = converge(Desired(config(DHCP), (lease(mtu=1400, expires=1000.0),)), running("eth0"))
    kept = lease(mtu=1400, expires=900.0, confirmed=False)  # stored before a restart, asked for again
    assert plan(Desired(config(DHCP), (kept,)), state) == []
    assert plan(config(DHCP), state) != []  # without it, its address and route would go
    rebooted = Observed(links=nics("eth0", up=True), dhcp=state.dhcp, owned=state.owned)
    assert plan(Desired(config(DHCP), (kept,)), rebooted) == []  # nothing there: nothing added before an ACK


def test_a_virtual_link_is_created_with_its_macaddress_and_remade_when_it_changes() -> None:
    desired = config("""
network:
  bridges: {br0: {macaddress: "02:00:00:00:00:02"}}
  dummy-devices: {dm0: {macaddress: "02:00:00:00:00:03"}}
""")
    ops, after = converge(desired, Observed(links=(LO,)))
    assert CreateLink("br0", "bridge", (("address", "02:00:00:00:00:02"), ("br_stp_state", 1))) in ops
    assert CreateLink("dm0", "dummy", (("address", "02:00:00:00:00:03"),)) in ops
    changed = config("network: {dummy-devices: {dm0: {macaddress: '02:00:00:00:00:04'}}}")
    ops, _ = converge(changed, after)
    before(ops, DeleteLink("dm0"), CreateLink("dm0", "dummy", (("address", "02:00:00:00:00:04"),)))


def test_ipv6_settings_are_set_where_they_differ_and_on_links_corral_creates() -> None:
    desired = config("""
network:
  ethernets:
    eth0: {accept-ra: true, ipv6-mtu: 1400}
    eth1: {accept-ra: false}
  bridges: {br0: {dhcp6: true}}
""")
    eth0 = Link(2, "eth0", ipv6_conf=(("accept_ra", 1), ("use_tempaddr", 0), ("mtu", 1500)))
    eth1 = Link(3, "eth1", ipv6_conf=(("accept_ra", 0), ("use_tempaddr", 0), ("mtu", 1500)))
    ops, after = converge(desired, Observed(links=(LO, eth0, eth1)))
    assert [op for op in ops if isinstance(op, SetIPv6)] == [
        SetIPv6("eth0", "accept_ra", 2),
        SetIPv6("eth0", "mtu", 1400),
        SetIPv6("br0", "accept_ra", 2),  # created: whatever the kernel gave it
    ]
    before(ops, CreateLink("br0", "bridge", (("br_stp_state", 1),)), SetIPv6("br0", "accept_ra", 2))
    before(ops, SetIPv6("eth0", "accept_ra", 2), SetUp("eth0"))  # RAs are taken from the start
    assert dict(after.link("eth0").ipv6_conf) == {"accept_ra": 2, "use_tempaddr": 0, "mtu": 1400}  # type: ignore[union-attr]
