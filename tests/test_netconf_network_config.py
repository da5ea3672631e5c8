"""cloud-init network-config (v1 and v2, with or without the `network:` wrapper) into netplan v2:
``netconf.network_config.to_netplan`` for datasources, and a v1 document under a cloud-config's
`network:` key."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import yaml

from netconf.model import DhcpOptions, Interface, Match, Parsed, Route, Vlan
from netconf.network_config import to_netplan
from netconf.parse import parse_config
from supervisor.config.errors import Problems


def translate(text: str) -> tuple[dict[str, Any] | None, Problems]:
    return to_netplan(yaml.safe_load(text), "/media/cidata/network-config")


def parsed(text: str) -> Parsed:
    """A cloud-config with the network-config document under `network:`."""
    return parse_config({"network": yaml.safe_load(text)}, "user-data")


def rules(text: str) -> dict[str, Interface]:
    got = parsed(text)
    assert got.ok, [str(e) for e in got.errors]
    assert got.config is not None
    return {r.id: r for r in got.config.interfaces}


def warnings(text: str) -> list[str]:
    return [f"{w.key}: {w.message}" for w in parsed(text).warnings]


def errors(text: str) -> list[str]:
    got = parsed(text)
    assert not got.ok
    return [f"{e.key}: {e.message}" for e in got.errors]


def test_v2_with_or_without_the_wrapper_and_version_comes_back_unwrapped() -> None:
    for text in (
        "network: {version: 2, ethernets: {eth0: {dhcp4: true}}}",
        "{version: 2, ethernets: {eth0: {dhcp4: true}}}",
        "ethernets: {eth0: {dhcp4: true}}",
    ):
        netplan, problems = translate(text)
        assert netplan is not None and not problems.errors and not problems.warnings
        assert netplan["ethernets"] == {"eth0": {"dhcp4": True}}
        assert parse_config({"network": netplan}).ok
    assert translate("network: {config: disabled}")[0] == {"config": "disabled"}


def test_what_cannot_be_read_is_an_error_naming_the_file() -> None:
    netplan, problems = translate("[eth0]")
    assert netplan is None
    assert [str(e) for e in problems.errors] == [
        "/media/cidata/network-config: (document): expected a network-config document "
        "{version: 1 or 2, ...}, got a list"
    ]
    netplan, problems = translate("network: {version: 3}")
    assert netplan is None
    assert [f"{e.key}: {e.message}" for e in problems.errors] == [
        "network.version: 3 is not a network-config version (1 or 2)"
    ]


V1_PHYSICAL = """
version: 1
config:
  - type: physical
    name: interface0
    mac_address: '00:11:22:33:44:55'
    mtu: 9000
    subnets:
      - type: dhcp
        metric: 200
      - type: static
        address: 10.184.225.122
        netmask: 255.255.255.252
        gateway: 10.184.225.121
        dns_nameservers: [10.184.225.1]
        dns_search: [example.org]
        routes:
          - {gateway: 10.184.225.121, netmask: 255.240.0.0, destination: 10.176.0.0}
          - {gateway: 10.184.225.121, network: 10.208.0.0, prefix: 12, metric: 5}
      - type: static6
        address: 2001:db8::5/64
  - type: physical
    name: eth1
    subnets: [{type: dhcp6}]
"""


def test_v1_physical_with_subnets_translates_like_cloud_inits_renderer() -> None:
    netplan, problems = translate(V1_PHYSICAL)
    assert not problems.errors and not problems.warnings
    assert netplan == {
        "version": 2,
        "ethernets": {
            "interface0": {
                "match": {"macaddress": "00:11:22:33:44:55"},
                "set-name": "interface0",
                "mtu": 9000,
                "dhcp4": True,
                "dhcp4-overrides": {"route-metric": 200},
                "addresses": ["10.184.225.122/30", "2001:db8::5/64"],
                "routes": [
                    {"to": "default", "via": "10.184.225.121"},
                    {"to": "10.176.0.0/12", "via": "10.184.225.121"},
                    {"to": "10.208.0.0/12", "via": "10.184.225.121", "metric": 5},
                ],
                "nameservers": {"addresses": ["10.184.225.1"], "search": ["example.org"]},
            },
            "eth1": {"dhcp6": True},
        },
    }
    got = rules(V1_PHYSICAL)
    rule = got["interface0"]
    assert rule.match == Match(mac="00:11:22:33:44:55") and rule.set_name == "interface0"
    assert rule.dhcp4 and rule.dhcp4_options == DhcpOptions(route_metric=200)
    assert rule.addresses == (ip_interface("10.184.225.122/30"), ip_interface("2001:db8::5/64"))
    assert rule.routes[1] == Route(ip_network("10.176.0.0/12"), ip_address("10.184.225.121"))
    assert rule.nameservers == (ip_address("10.184.225.1"),) and rule.search == ("example.org",)
    assert got["eth1"].match == Match(name="eth1") and got["eth1"].dhcp6


def test_v1_under_a_cloud_configs_network_key_is_translated_and_problems_name_the_v1_entry() -> None:
    assert rules("{version: 1, config: [{type: physical, name: eth0, subnets: [{type: dhcp}]}]}")[
        "eth0"
    ].dhcp4
    assert errors("{version: 1, config: [{type: physical, name: eth0, mtu: 20}]}") == [
        "network.config[0]: mtu (in netplan terms): 20 is out of range (68 to 65535)"
    ]
    assert errors("{version: 1, config: [{type: physical, name: eth0, accept-ra: maybe}]}")[0].startswith(
        "network.config[0]: accept-ra (in netplan terms): expected a boolean"
    )


def test_v1_bond_bridge_and_vlan() -> None:
    text = """
version: 1
config:
  - {type: physical, name: gbe0, mac_address: 'cd:11:22:33:44:00'}
  - {type: physical, name: gbe1, mac_address: 'cd:11:22:33:44:02'}
  - type: bond
    name: bond0
    bond_interfaces: [gbe0, gbe1]
    params: {bond-mode: 802.3ad, bond-lacp_rate: fast, bond_miimon: 100, xmit_hash_policy: layer3+4}
  - type: vlan
    name: bond0.200
    vlan_link: bond0
    vlan_id: 200
  - type: bridge
    name: br0
    bridge_interfaces: [bond0.200]
    params: {bridge_stp: 'off', bridge_fd: 1, bridge_maxwait: 0}
    subnets: [{type: static, address: 192.168.200.2/24}]
"""
    got = rules(text)
    assert got["gbe0"].master == "bond0" and got["gbe1"].master == "bond0"
    assert got["bond0"].bond is not None
    assert dict(got["bond0"].bond.options) == {
        "bond_mode": 4,
        "bond_ad_lacp_rate": 1,
        "bond_miimon": 100,
        "bond_xmit_hash_policy": 1,
    }
    assert got["bond0.200"].vlan == Vlan(200, "bond0") and got["bond0.200"].master == "br0"
    assert got["br0"].bridge is not None
    assert dict(got["br0"].bridge.options) == {"br_stp_state": 0, "br_forward_delay": 100}
    assert warnings(text) == [
        "network.config[4].params.bridge_maxwait: not implemented; corral waits for no port"
    ]


def test_v1_unknown_bond_parameters_are_warnings() -> None:
    text = (
        "{version: 1, config: [{type: bond, name: bond0, bond_interfaces: [], params: {bond-queue_id: 3}}]}"
    )
    assert rules(text)["bond0"].kind == "bond"
    assert warnings(text) == [
        "network.config[0].params.bond-queue_id: not implemented; the bond is made without this parameter"
    ]


def test_v1_nameservers_global_and_per_interface_and_routes_attached_by_gateway() -> None:
    text = """
version: 1
config:
  - type: physical
    name: eth0
    subnets: [{type: static, address: 192.168.23.14/27, gateway: 192.168.23.1}]
  - type: physical
    name: eth1
    subnets: [{type: static, address: 10.0.0.2/24}]
  - type: physical
    name: eth2
    subnets: [{type: static, address: 10.0.1.2/24, dns_nameservers: [10.0.1.1]}]
  - {type: nameserver, address: [8.8.8.8], search: [lan]}
  - {type: nameserver, address: 4.4.4.4}
  - {type: nameserver, interface: eth1, address: [10.0.0.1]}
  - {type: route, destination: 172.16.0.0/12, gateway: 10.0.0.254, metric: 3}
  - {type: route, destination: 192.0.2.0, netmask: 255.255.255.0, gateway: 203.0.113.1}
"""
    got = rules(text)
    assert got["eth0"].nameservers == (ip_address("8.8.8.8"), ip_address("4.4.4.4"))
    assert got["eth0"].search == ("lan",)
    assert got["eth1"].nameservers == (ip_address("10.0.0.1"),)  # its own (cloud-init's rule too)
    assert got["eth2"].nameservers == (ip_address("10.0.1.1"),)  # its own: the global ones are not added
    assert got["eth1"].routes == (Route(ip_network("172.16.0.0/12"), ip_address("10.0.0.254"), metric=3),)
    assert warnings(text) == [
        "network.config[7]: not applied: no interface has a static address on the gateway's network "
        "(give the route in that interface's subnet instead)"
    ]


def test_v1_errors_name_the_entry() -> None:
    assert errors("{version: 1, config: [{type: ethernet, name: eth0}]}") == [
        "network.config[0].type: 'ethernet' is not a network-config v1 type "
        "(one of: physical, bond, bridge, vlan, nameserver, route)"
    ]
    assert errors("{version: 1, config: [{type: physical}]}") == [
        "network.config[0].name: required: the interface's name"
    ]
    assert errors("{version: 1, config: [{type: physical, name: eth0, subnets: [{type: dhcp7}]}]}")[
        0
    ].startswith("network.config[0].subnets[0].type: 'dhcp7' is not a subnet type")
    assert errors("{version: 1, config: [{type: physical, name: eth0, mac_adress: x}]}")[0].startswith(
        "network.config[0].mac_adress: unknown key; did you mean"
    )
    assert errors(
        "{version: 1, config: [{type: physical, name: eth0, subnets: [{type: static, address: 10.0.0.300}]}]}"
    )[0].startswith("network.config[0].subnets[0].address: '10.0.0.300' is not an IP address")
    assert errors("{version: 1, config: [{type: vlan, name: v5, vlan_id: 5}]}")[0] == (
        "network.config[0].vlan_link: required: the VLAN's parent link name"
    )


def test_v1_subnet_keys_corral_does_not_implement_are_warnings() -> None:
    text = """
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - {type: static, address: 10.0.0.2/24, broadcast: 10.0.0.255, control: manual, ipv4: true}
      - {type: ipv6_slaac}
"""
    got = rules(text)["eth0"]
    assert got.addresses == (ip_interface("10.0.0.2/24"),)
    assert got.ipv6_conf == (("accept_ra", 2),)  # ipv6_slaac: netplan's accept-ra
    assert [w.split(":")[0] for w in warnings(text)] == [
        "network.config[0].subnets[0].broadcast",
        "network.config[0].subnets[0].control",
    ]


def test_v1_subnet_routes_take_cloud_inits_type_and_warn_on_another() -> None:
    text = """
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: static
        address: 10.0.0.2/24
        routes:
          - {type: route, network: 10.1.0.0/16, gateway: 10.0.0.1}
          - {type: blackhole, destination: 10.2.0.0/16, gateway: 10.0.0.1}
"""
    got = rules(text)["eth0"]
    assert got.routes == (Route(ip_network("10.1.0.0/16"), ip_address("10.0.0.1")),
                          Route(ip_network("10.2.0.0/16"), ip_address("10.0.0.1")))
    assert warnings(text) == [
        "network.config[0].subnets[0].routes[1].type: 'blackhole' is not a route type corral knows "
        "(cloud-init's is 'route'); the route is added as a plain route"
    ]


def test_v1_in_a_config_file_passes_the_schema() -> None:
    from supervisor.config.schema import Schema
    from supervisor.config.validate import Validator
    from supervisor.config.yamlload import load_document

    text = (
        "network:\n  version: 1\n  config:\n"
        "    - type: physical\n      name: eth0\n      subnets: [{type: dhcp}]\n"
    )
    doc, errs = load_document(text, "user-data")
    assert doc is not None and not errs
    assert Validator(Schema()).validate(doc) == []


def test_the_document_given_is_not_changed() -> None:
    doc = yaml.safe_load(V1_PHYSICAL)
    before = yaml.safe_dump(doc)
    netplan, _ = to_netplan({"network": doc})
    assert netplan is not None and netplan["version"] == 2
    assert yaml.safe_dump(doc) == before
