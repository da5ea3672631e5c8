"""netplan v2 (the top-level `network:` key) into the model."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network

import pytest
import yaml

from netconf.model import DhcpOptions, Interface, Match, NetworkConfig, Parsed, Route, Vlan
from netconf.parse import parse_config


def parse(text: str) -> Parsed:
    return parse_config({"network": yaml.safe_load(text)}, "50-netplan.yml")


def ok(text: str) -> NetworkConfig:
    parsed = parse(text)
    assert parsed.ok, [str(e) for e in parsed.errors]
    assert parsed.config is not None and parsed.config.format == "netplan"
    return parsed.config


def rules(text: str) -> dict[str, Interface]:
    return {r.id: r for r in ok(text).interfaces}


def warnings(text: str) -> list[str]:
    parsed = parse(text)
    assert parsed.ok, [str(e) for e in parsed.errors]
    return [f"{e.key}: {e.message}" for e in parsed.warnings]


def errors(text: str) -> list[str]:
    parsed = parse(text)
    assert not parsed.ok
    return [f"{e.key}: {e.message}" for e in parsed.errors]


def test_version_defaults_to_2_and_is_1_or_2() -> None:
    """netplan's default is 2 (its docs leave it out); 1 is cloud-init's network-config v1."""
    assert rules("{ethernets: {eth0: {dhcp4: true}}}")["eth0"].dhcp4
    assert warnings("{ethernets: {eth0: {dhcp4: true}}}") == []
    assert errors("{version: 3, ethernets: {eth0: {}}}") == [
        "network.version: 3 is not a supported version (1 or 2)"
    ]
    assert errors("{version: 2, config: disabled, ethernets: {eth0: {dhcp4: true}}}") == [
        "network.config: cloud-init's 'config: disabled' stands alone (with 'version' at most): "
        "remove it, or the other keys"
    ]


def test_unknown_keys_name_the_path() -> None:
    assert errors("{version: 2, ethernets: {eth0: {dhcp: true}}}") == [
        "network.ethernets.eth0.dhcp: unknown key; netplan has 'dhcp4' and 'dhcp6'"
    ]
    assert errors("{version: 2, ethernets: {eth0: {routes: [{to: default, via: 10.0.0.1, weight: 3}]}}}") == [
        "network.ethernets.eth0.routes[0].weight: unknown key "
        "(known here: from, metric, on-link, scope, table, to, type, via)"
    ]
    assert errors("{version: 2, bonds: {bond0: {parameters: {mode: 802.3ad, miimon: 100}}}}") == [
        "network.bonds.bond0.parameters.miimon: unknown key; netplan calls it 'mii-monitor-interval'"
    ]


def test_routing_policy_is_a_warning_and_the_routes_are_still_added() -> None:
    text = (
        "{version: 2, ethernets: {eth0: {addresses: [10.0.0.2/24], routing-policy: [{from: 10.0.0.0/8, "
        "table: 5}], routes: [{to: default, via: 10.0.0.1, table: 5}]}}}"
    )
    assert [r.table for r in rules(text)["eth0"].routes] == [5]
    assert warnings(text) == [
        "network.ethernets.eth0.routing-policy: not implemented; the policy rules are not added: traffic "
        "follows the main table (routes given a 'table' are still added to that table)"
    ]


def test_optional_addresses_are_accepted_and_checked() -> None:
    """netplan's optional-addresses (as Ubuntu servers write it): corral waits for no address at boot,
    so every kind is optional already; the values are still checked, each with a did-you-mean."""
    got = rules("{version: 2, ethernets: {eth0: {dhcp4: true, optional-addresses: [ipv4-ll, dhcp6]}}}")
    assert got["eth0"].dhcp4
    assert rules("{version: 2, bonds: {bond0: {optional-addresses: []}}}")["bond0"].kind == "bond"
    assert errors("{version: 2, ethernets: {eth0: {optional-addresses: [dhcp4, ipv6ra]}}}") == [
        "network.ethernets.eth0.optional-addresses[1]: 'ipv6ra' is not one of: ipv4-ll, ipv6-ra, dhcp4, "
        "dhcp6, static; did you mean 'ipv6-ra'?"
    ]
    assert errors("{version: 2, ethernets: {eth0: {optional-addresses: dhcp4}}}") == [
        "network.ethernets.eth0.optional-addresses: expected a list, got the string 'dhcp4'"
    ]


def test_optional_addresses_in_a_config_file_are_checked_by_the_schema_too() -> None:
    """The key's schema (in schema.json, generated from the parser's table) says the same first."""
    from supervisor.config.layers import check_text
    from supervisor.config.schema import Schema
    from supervisor.config.validate import Validator

    validator = Validator(Schema())
    text = "network:\n  version: 2\n  ethernets:\n    eth0:\n      optional-addresses: [dhcp4, statc]\n"
    _, found = check_text(text, "50-netplan.yml", validator)
    assert [str(e) for e in found] == [
        "50-netplan.yml: network.ethernets.eth0.optional-addresses[1]: 'statc' is not one of: ipv4-ll, "
        "ipv6-ra, dhcp4, dhcp6, static; did you mean 'static'? (line 5)"
    ]
    layer, found = check_text(text.replace("statc", "static"), "50-netplan.yml", validator)
    assert found == [] and layer is not None


def test_addresses_gateways_routes_and_nameservers() -> None:
    eth0 = rules("""
version: 2
renderer: networkd
ethernets:
  eth0:
    addresses: [10.0.0.2/24, "2001:db8::2/64"]
    gateway4: 10.0.0.1
    gateway6: "2001:db8::1"
    routes:
      - {to: default, via: "2001:db8::fe", metric: 5}
      - {to: 192.168.0.0/16, via: 10.0.0.254, table: 100, on-link: true, from: 10.0.0.2}
      - {to: 172.16.0.0/12, scope: link}
    nameservers: {addresses: [10.0.0.53], search: [lan]}
    mtu: 9000
    optional: true
""")["eth0"]
    assert eth0.addresses == (ip_interface("10.0.0.2/24"), ip_interface("2001:db8::2/64"))
    assert eth0.gateway4 == ip_address("10.0.0.1") and eth0.gateway6 == ip_address("2001:db8::1")
    assert eth0.routes == (
        Route(ip_network("::/0"), ip_address("2001:db8::fe"), metric=5),
        Route(
            ip_network("192.168.0.0/16"),
            ip_address("10.0.0.254"),
            table=100,
            on_link=True,
            source=ip_address("10.0.0.2"),
        ),
        Route(ip_network("172.16.0.0/12"), scope="link"),
    )
    assert eth0.nameservers == (ip_address("10.0.0.53"),) and eth0.search == ("lan",) and eth0.mtu == 9000


def test_route_errors() -> None:
    assert errors("{version: 2, ethernets: {eth0: {routes: [{to: default}]}}}")[0].startswith(
        "network.ethernets.eth0.routes[0].to: 'default' needs 'via'"
    )
    assert errors("{version: 2, ethernets: {eth0: {routes: [{to: 10.0.0.0/8, via: '::1'}]}}}") == [
        "network.ethernets.eth0.routes[0].via: ::1 is IPv6 but 'to' 10.0.0.0/8 is IPv4"
    ]
    [msg] = errors("{version: 2, ethernets: {eth0: {routes: [{to: 10.0.0.1/8, via: 10.0.0.254}]}}}")
    assert msg.startswith("network.ethernets.eth0.routes[0].to: '10.0.0.1/8' is not a network")
    assert errors("{ethernets: {eth0: {routes: [{to: 0.0.0.0, via: 10.0.0.254}]}}}") == [
        "network.ethernets.eth0.routes[0].to: '0.0.0.0' has no prefix length: write 'default' (or "
        "0.0.0.0/0, ::/0) for the default route, 0.0.0.0/32 for one host"
    ]


def test_a_route_to_an_address_without_a_length_is_to_that_host_as_in_networkd() -> None:
    got = rules("{ethernets: {eth0: {routes: [{to: 10.9.0.1, via: 10.0.0.254}, {to: '2001:db8::9'}]}}}")
    assert [str(r.to) for r in got["eth0"].routes] == ["10.9.0.1/32", "2001:db8::9/128"]


def test_match_set_name_and_driver_lists() -> None:
    got = rules("""
version: 2
ethernets:
  lan:
    match: {macaddress: "DE:AD:BE:EF:CA:FE"}
    set-name: lan0
  fast:
    match: {name: "en*", driver: [ixgbe, "mlx5*"]}
""")
    assert got["lan"].match == Match(mac="de:ad:be:ef:ca:fe") and got["lan"].set_name == "lan0"
    assert got["fast"].match == Match(name="en*", drivers=("ixgbe", "mlx5*"))
    assert errors("{version: 2, ethernets: {x: {set-name: y}}}")[-1] == (
        "network.ethernets.x.set-name: 'set-name' needs 'match' (which link to rename)"
    )
    assert errors("{version: 2, ethernets: {'en*': {dhcp4: true}}}")[0].startswith(
        "network.ethernets[\"en*\"]: without 'match', the id is the interface name"
    )


def test_an_unquoted_mac_read_as_a_number_says_quote_it() -> None:
    [msg] = errors("{version: 2, ethernets: {x: {match: {macaddress: 11:22:33:44:55:56}}}}")
    assert msg.startswith("network.ethernets.x.match.macaddress: expected a string, got the number")
    assert "quote it" in msg


def test_bond_parameters_in_kernel_terms() -> None:
    got = rules("""
version: 2
ethernets: {eno1: {}, eno2: {}}
bonds:
  bond0:
    interfaces: [eno1, eno2]
    parameters:
      mode: 802.3ad
      lacp-rate: fast
      mii-monitor-interval: 100ms
      up-delay: 2s
      down-delay: 200
      transmit-hash-policy: layer3+4
      gratuitious-arp: 5
      min-links: 1
      all-members-active: true
      learn-packet-interval: 3
      primary: eno2
""")
    bond = got["bond0"]
    assert bond.kind == "bond" and bond.match == Match(name="bond0") and bond.bond is not None
    assert dict(bond.bond.options) == {
        "bond_mode": 4,
        "bond_ad_lacp_rate": 1,
        "bond_miimon": 100,
        "bond_updelay": 2000,
        "bond_downdelay": 200,
        "bond_xmit_hash_policy": 1,
        "bond_num_peer_notif": 5,
        "bond_min_links": 1,
        "bond_all_slaves_active": 1,
        "bond_lp_interval": 3,
    }
    assert bond.bond.refs == (("bond_primary", "eno2"),)
    assert got["eno1"].master == "bond0" and got["eno2"].master == "bond0"


def test_bridge_parameters_stp_on_unless_off_and_times_in_centiseconds() -> None:
    got = rules("""
version: 2
ethernets: {eth0: {}}
bridges:
  br0: {interfaces: [eth0], parameters: {forward-delay: 4, hello-time: 2s, ageing-time: 300, priority: 100}}
  br1: {parameters: {stp: false}}
""")
    assert got["br0"].bridge is not None and got["br1"].bridge is not None
    assert dict(got["br0"].bridge.options) == {
        "br_stp_state": 1,
        "br_forward_delay": 400,
        "br_hello_time": 200,
        "br_ageing_time": 30000,
        "br_priority": 100,
    }
    assert dict(got["br1"].bridge.options) == {"br_stp_state": 0}
    assert got["eth0"].master == "br0"


def test_vlans_refer_to_definitions() -> None:
    got = rules("""
version: 2
ethernets: {mainif: {match: {macaddress: "de:ad:be:ef:ca:fe"}, set-name: mainif}}
vlans: {vlan15: {id: 15, link: mainif, addresses: [10.3.99.5/24]}}
""")
    assert got["vlan15"].kind == "vlan" and got["vlan15"].vlan == Vlan(15, "mainif")
    assert errors("{version: 2, vlans: {v: {id: 5, link: nowhere}}}") == [
        "network.vlans.v.link: 'nowhere' is not defined (give the id of an ethernet, bond, bridge or dummy "
        "device)"
    ]


def test_membership_errors() -> None:
    assert errors("{version: 2, bridges: {br0: {interfaces: [eth9]}}}") == [
        "network.bridges.br0.interfaces[0]: 'eth9' is not defined (list ids of ethernets, bonds, vlans or "
        "dummy-devices)"
    ]
    [msg] = errors(
        "{version: 2, ethernets: {e: {}}, bonds: {b: {interfaces: [e]}}, bridges: {r: {interfaces: [e]}}}"
    )
    assert msg == "network.bridges.r.interfaces[0]: 'e' is already a member of b"
    [msg] = errors("{version: 2, ethernets: {e: {dhcp4: true}}, bonds: {b: {interfaces: [e]}}}")
    assert msg == "network.ethernets.e.dhcp4: e is a member of b; set addresses on b"
    [msg] = errors("{version: 2, ethernets: {e: {}}, bonds: {e: {}}}")
    assert msg == "network.bonds.e: 'e' is already defined in ethernets"


def test_dhcp_overrides() -> None:
    got = rules(
        "{version: 2, ethernets: {e: {dhcp4: yes, dhcp4-overrides: {route-metric: 100, use-dns: false}}}}"
    )
    assert got["e"].dhcp4 and got["e"].dhcp4_options == DhcpOptions(route_metric=100, use_dns=False)
    text = "{version: 2, ethernets: {e: {dhcp4: true, dhcp4-overrides: {use-ntp: false, use-mtu: true}}}}"
    assert rules(text)["e"].dhcp4
    assert warnings(text) == [
        "network.ethernets.e.dhcp4-overrides.use-ntp: not implemented; corral has no NTP client that "
        "would use the lease's servers"
    ]
    # the overrides whose value is what corral always does are quiet; the other value warns
    text = (
        "{ethernets: {e: {dhcp4: true, "
        "dhcp4-overrides: {send-hostname: yes, use-hostname: no, use-mtu: no}}}}"
    )
    assert warnings(text) == [
        "network.ethernets.e.dhcp4-overrides.use-mtu: not implemented; corral always gives the link the "
        "MTU a lease offers (unless 'mtu' is set)"
    ]
    assert errors("{ethernets: {e: {dhcp4-overrides: {use-mtu: sometimes}}}}")[0].startswith(
        "network.ethernets.e.dhcp4-overrides.use-mtu: expected a boolean"
    )


def test_addresses_with_options_are_added_and_the_options_warned() -> None:
    text = (
        "{version: 2, ethernets: {e: {addresses: [{10.0.0.2/24: {lifetime: 0, label: maas}}, 10.0.1.2/24]}}}"
    )
    assert rules(text)["e"].addresses == (ip_interface("10.0.0.2/24"), ip_interface("10.0.1.2/24"))
    assert warnings(text) == [
        "network.ethernets.e.addresses[0]: address options (lifetime, label) are not implemented; the "
        "address is added without them (permanent, no label)"
    ]
    assert errors("{ethernets: {e: {addresses: [{10.0.0.2: {}}]}}}")[0].startswith(
        "network.ethernets.e.addresses[0]: "
    )


def test_dummy_devices_are_created_under_their_id_with_the_common_properties() -> None:
    got = rules("""
version: 2
dummy-devices:
  dm0:
    addresses: [10.1.2.3/24, "2001:cafe::1/64"]
    routes: [{to: 10.9.0.0/16, via: 10.1.2.254}]
    mtu: 9000
    nameservers: {addresses: [10.1.2.53]}
  dm1: null
""")
    dm0 = got["dm0"]
    assert dm0.kind == "dummy" and dm0.match == Match(name="dm0") and dm0.key == "network.dummy-devices.dm0"
    assert dm0.addresses == (ip_interface("10.1.2.3/24"), ip_interface("2001:cafe::1/64"))
    assert dm0.routes == (Route(ip_network("10.9.0.0/16"), ip_address("10.1.2.254")),)
    assert dm0.mtu == 9000 and dm0.nameservers == (ip_address("10.1.2.53"),)
    assert got["dm1"].kind == "dummy" and got["dm1"].addresses == ()


def test_a_dummy_device_can_be_a_bridge_port_and_a_vlan_parent() -> None:
    got = rules("""
version: 2
dummy-devices: {dm0: {}, dm1: {}}
bridges: {br0: {interfaces: [dm0]}}
vlans: {dm1.7: {id: 7, link: dm1}}
""")
    assert got["dm0"].master == "br0" and got["dm1.7"].vlan == Vlan(7, "dm1")


def test_dummy_device_errors_name_the_key() -> None:
    known = (
        " (known here: accept-ra, addresses, critical, dhcp-identifier, dhcp4, dhcp4-overrides, dhcp6, "
        "dhcp6-overrides, gateway4, gateway6, ipv6-mtu, ipv6-privacy, link-local, macaddress, mtu, "
        "nameservers, optional, optional-addresses, renderer, routes)"
    )
    assert errors("{version: 2, dummy-devices: {dm0: {match: {name: x}}}}") == [
        "network.dummy-devices.dm0.match: unknown key" + known
    ]
    assert errors("{version: 2, dummy-devices: {dm0: {parameters: {}}}}") == [
        "network.dummy-devices.dm0.parameters: unknown key" + known
    ]
    assert errors("{version: 2, dummy-devices: {'dm 0': {}}}") == [
        "network.dummy-devices[\"dm 0\"]: 'dm 0' is not a valid interface name (1 to 15 characters, no "
        "spaces, '/' or ':')"
    ]
    assert errors("{version: 2, dummy-devices: [dm0]}") == [
        "network.dummy-devices: expected a map of id to dummy device settings, got a list"
    ]
    [msg] = errors("{version: 2, ethernets: {dm0: {}}, dummy-devices: {dm0: {}}}")
    assert msg == "network.dummy-devices.dm0: 'dm0' is already defined in ethernets"


# -- keys corral accepts and does not implement: warnings naming the key and what corral does instead --

IGNORED_COMMON = {
    "ra-overrides": "{use-dns: false}",
    "ignore-carrier": "true",
    "activation-mode": "manual",
    "ipv6-address-generation": "eui64",
    "ipv6-address-token": "'::2'",
    "neigh-suppress": "true",
    "hairpin": "true",
    "port-mac-learning": "false",
    "openvswitch": "{}",
    "routing-policy": "[]",
}
IGNORED_ETHERNET = {
    "wakeonlan": "true",
    "emit-lldp": "true",
    "receive-checksum-offload": "false",
    "large-receive-offload": "false",
    "infiniband-mode": "connected",
    "auth": "{key-management: 802.1x}",
    "link": "enp1",
    "virtual-function-count": "4",
    "embedded-switch-mode": "switchdev",
    "delay-virtual-functions-rebind": "true",
}


@pytest.mark.parametrize("key", [*IGNORED_COMMON, *IGNORED_ETHERNET])
def test_a_key_corral_does_not_implement_is_a_warning_and_the_rest_applies(key: str) -> None:
    value = {**IGNORED_COMMON, **IGNORED_ETHERNET}[key]
    text = f"{{ethernets: {{eth0: {{dhcp4: true, {key}: {value}}}}}}}"
    assert rules(text)["eth0"].dhcp4
    [warning] = warnings(text)
    assert warning.startswith(f"network.ethernets.eth0.{key}: not implemented; ")
    if key in IGNORED_COMMON:  # on every kind
        [warning] = warnings(f"{{bonds: {{bond0: {{{key}: {value}}}}}}}")
        assert warning.startswith(f"network.bonds.bond0.{key}: not implemented; ")


def test_keys_whose_value_is_what_corral_does_are_quiet_and_the_others_warn() -> None:
    quiet = (
        "{ethernets: {eth0: {dhcp4: true, optional: true, critical: true, dhcp-identifier: mac, "
        "link-local: [ipv6], ipv6-privacy: false}}}"
    )
    assert rules(quiet)["eth0"].dhcp4 and warnings(quiet) == []
    loud = "{ethernets: {eth0: {dhcp-identifier: duid, link-local: [ipv4, ipv6]}}}"
    assert [w.split(":")[0] for w in warnings(loud)] == [
        "network.ethernets.eth0.dhcp-identifier",
        "network.ethernets.eth0.link-local",
    ]
    assert warnings("{ethernets: {eth0: {link-local: [ipv4]}}}") == [
        "network.ethernets.eth0.link-local: IPv4 link-local addressing is not implemented: the link gets none"
    ]
    assert rules("{ethernets: {eth0: {link-local: []}}}")["eth0"].ipv6_conf == (("addr_gen_mode", 1),)
    assert rules("{ethernets: {eth0: {link-local: [ipv6]}}}")["eth0"].ipv6_conf == ()
    assert errors("{ethernets: {eth0: {link-local: [ipv5]}}}")[0].startswith(
        "network.ethernets.eth0.link-local[0]: 'ipv5' is not one of: ipv4, ipv6"
    )
    assert errors("{ethernets: {eth0: {dhcp-identifier: serial}}}")[0].startswith(
        "network.ethernets.eth0.dhcp-identifier: 'serial' is not one of: mac, duid"
    )


def test_dhcp6_runs_dhcpv6_without_a_warning() -> None:
    text = "{ethernets: {eth0: {dhcp4: true, dhcp6: true}}}"
    assert rules(text)["eth0"].dhcp6
    assert warnings(text) == []
    assert not rules("{ethernets: {eth0: {dhcp6: false}}}")["eth0"].dhcp6


def test_wifis_and_other_sections_are_skipped_with_a_warning_and_the_rest_applied() -> None:
    text = """
version: 2
wifis:
  wlan0: {dhcp4: true, access-points: {home: {password: secret}}}
tunnels:
  he-ipv6: {mode: sit, remote: 10.0.0.1, local: 10.0.0.2}
ethernets:
  eth0: {}
bridges:
  br0: {interfaces: [eth0, wlan0], dhcp4: true}
vlans:
  tun.5: {id: 5, link: he-ipv6}
"""
    got = rules(text)
    assert set(got) == {"eth0", "br0"} and got["eth0"].master == "br0"
    assert warnings(text) == [
        "network.wifis: not implemented; Wi-Fi links are not set up: this section is skipped, the rest is "
        "applied",
        "network.tunnels: not implemented; tunnels are not set up: this section is skipped, the rest is "
        "applied",
        "network.bridges.br0.interfaces[1]: 'wlan0' is in wifis, which is skipped: not made a member",
        "network.vlans[\"tun.5\"].link: 'he-ipv6' is in tunnels, which is skipped: this VLAN is skipped too",
    ]
    assert not any("secret" in w for w in warnings(text))


def test_route_types_and_options_corral_does_not_implement_are_warnings() -> None:
    text = (
        "{ethernets: {eth0: {addresses: [10.0.0.2/24], routes: [{to: 10.9.0.0/16, type: blackhole}, "
        "{to: 10.8.0.0/16, via: 10.0.0.1, mtu: 1400}]}}}"
    )
    assert [str(r.to) for r in rules(text)["eth0"].routes] == ["10.8.0.0/16"]
    assert warnings(text) == [
        "network.ethernets.eth0.routes[0].type: route type 'blackhole' is not implemented (only unicast); "
        "this route is not added",
        "network.ethernets.eth0.routes[1].mtu: route option 'mtu' is not implemented; the route is added "
        "without it",
    ]


def test_bridge_port_and_vlan_parameters_are_warnings() -> None:
    text = (
        "{ethernets: {e: {}}, bridges: {br0: {interfaces: [e], "
        "parameters: {stp: false, path-cost: {e: 50}, vlan-filtering: true}}}}"
    )
    assert rules(text)["br0"].bridge is not None
    assert [w.split(":")[0] for w in warnings(text)] == [
        "network.bridges.br0.parameters.path-cost",
        "network.bridges.br0.parameters.vlan-filtering",
    ]


def test_a_warned_key_is_let_through_by_the_schema_of_a_config_file() -> None:
    from supervisor.config.schema import Schema
    from supervisor.config.validate import Validator
    from supervisor.config.yamlload import load_document

    text = "network:\n  ethernets:\n    eth0:\n      accept-ra: true\n      wakeonlan: true\n  wifis: {}\n"
    doc, errs = load_document(text, "x.yml")
    assert doc is not None and not errs
    assert Validator(Schema()).validate(doc) == []


def test_macaddress_is_set_on_the_links_corral_creates_and_warned_on_ethernets() -> None:
    text = """
ethernets:
  eth0: {macaddress: '52:54:00:00:00:09'}
  eth1: {}
bonds:
  bond0: {interfaces: [eth1], macaddress: '02:00:00:00:00:01'}
bridges:
  br0: {macaddress: 02-00-00-00-00-02}
vlans:
  br0.5: {id: 5, link: br0, macaddress: '02:00:00:00:00:03'}
dummy-devices:
  dm0: {macaddress: random}
"""
    got = rules(text)
    assert got["eth0"].macaddress is None
    assert got["bond0"].macaddress == "02:00:00:00:00:01" and got["br0"].macaddress == "02:00:00:00:00:02"
    assert got["br0.5"].macaddress == "02:00:00:00:00:03" and got["dm0"].macaddress is None
    assert warnings(text) == [
        "network.ethernets.eth0.macaddress: not implemented on ethernets; the link keeps its own MAC "
        "address (corral sets the MAC of the bonds, bridges, VLANs and dummy devices it creates)",
        "network.dummy-devices.dm0.macaddress: not implemented; 'random': the link keeps its MAC address",
    ]
    assert warnings("{bonds: {bond0: {macaddress: '01:00:00:00:00:01'}}}") == [
        "network.bonds.bond0.macaddress: 01:00:00:00:00:01 is a multicast address, which no link can have: "
        "the kernel's MAC is kept"
    ]
    assert errors("{bonds: {bond0: {macaddress: '02:00:00:00:00'}}}")[0].startswith(
        "network.bonds.bond0.macaddress: '02:00:00:00:00' is not a MAC address"
    )


def test_accept_ra_ipv6_privacy_and_ipv6_mtu_are_the_links_ipv6_settings() -> None:
    got = rules("""
ethernets:
  eth0: {accept-ra: true, ipv6-privacy: true, ipv6-mtu: 1400}
  eth1: {accept-ra: false, ipv6-privacy: false}
  eth2: {dhcp6: true}
  eth3: {dhcp6: true, accept-ra: no}
  eth4: {}
""")
    assert got["eth0"].ipv6_conf == (("accept_ra", 2), ("use_tempaddr", 2), ("mtu", 1400))
    assert got["eth1"].ipv6_conf == (("accept_ra", 0),)
    assert got["eth2"].ipv6_conf == (("accept_ra", 2),)  # netplan: dhcp6 brings SLAAC up too
    assert got["eth3"].ipv6_conf == (("accept_ra", 0),)
    assert got["eth4"].ipv6_conf == ()  # the kernel's defaults, untouched
    assert errors("{ethernets: {eth0: {ipv6-mtu: 1000}}}") == [
        "network.ethernets.eth0.ipv6-mtu: 1000 is out of range (1280 to 65535)"
    ]
    assert errors("{ethernets: {eth0: {accept-ra: maybe}}}")[0].startswith(
        "network.ethernets.eth0.accept-ra: expected a boolean"
    )
