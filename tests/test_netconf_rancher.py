"""The RancherOS format (`corral.network`, `rancher.network`) into the model, and where netplan comes
from (`parse_config`)."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface
from typing import Any

import yaml

from netconf.model import Interface, Match, NetworkConfig, Parsed, VlanDef
from netconf.parse import parse_config


def parse(text: str, source: Any = "cloud-config.yml") -> Parsed:
    doc = yaml.safe_load(text)
    if "rancher" in doc:
        doc["corral"] = doc.pop("rancher")
    return parse_config(doc, source)


def ok(text: str) -> NetworkConfig:
    parsed = parse(text)
    assert parsed.ok, [str(e) for e in parsed.errors]
    assert parsed.config is not None
    return parsed.config


def rules(text: str) -> dict[str, Interface]:
    return {r.id: r for r in ok(text).interfaces}


def errors(text: str) -> list[str]:
    parsed = parse(text)
    assert not parsed.ok and parsed.config is None
    return [f"{e.key}: {e.message}" for e in parsed.errors]


def test_static_interface() -> None:
    eth1 = rules("""
rancher:
  network:
    interfaces:
      eth1:
        {address: 172.68.1.100/24, gateway: 172.68.1.1, gateway_ipv6: "fe00:1234::", mtu: 1500, dhcp: false}
""")["eth1"]
    assert eth1.match == Match(name="eth1") and eth1.kind == "link"
    assert eth1.addresses == (ip_interface("172.68.1.100/24"),)
    assert (eth1.gateway4, eth1.gateway6) == (ip_address("172.68.1.1"), ip_address("fe00:1234::"))
    assert eth1.mtu == 1500 and not eth1.dhcp4
    assert [str(r.to) for r in eth1.all_routes()] == ["0.0.0.0/0", "::/0"]


def test_errors_name_the_key_and_say_what_is_expected() -> None:
    assert errors("corral: {network: {interfaces: {eth0: {address: x}}}}") == [
        "corral.network.interfaces.eth0.address: 'x' is not an IP interface (expected 10.0.0.2/24)"
    ]
    assert errors("corral: {network: {interfaces: {eth0: {address: 10.0.0.2}}}}") == [
        "corral.network.interfaces.eth0.address: '10.0.0.2' has no prefix length "
        "(expected 10.0.0.2/24 or similar)"
    ]
    [typo] = errors("corral: {network: {interfaces: {eth0: {adress: 10.0.0.2/24}}}}")
    assert typo == (
        "corral.network.interfaces.eth0.adress: unknown key; "
        "did you mean 'corral.network.interfaces.eth0.address'?"
    )
    [glob] = errors("corral: {network: {interfaces: {eth*: {mtu: 20}}}}")
    assert glob == 'corral.network.interfaces["eth*"].mtu: 20 is out of range (68 to 65535)'


def test_errors_name_the_file_the_key_came_from() -> None:
    parsed = parse("corral: {network: {interfaces: {eth0: {mtu: x}}}}", lambda key: f"file-of:{key}")
    assert [e.file for e in parsed.errors] == ["file-of:corral.network.interfaces.eth0.mtu"]


def test_keys_by_mac_and_match() -> None:
    got = rules("""
corral:
  network:
    interfaces:
      mac=AA:bb:cc:dd:ee:01: {dhcp: true}
      "mac:aa:bb:cc:*": {dhcp: true}
      anything: {match: eth3, dhcp: true}
      other: {match: "mac=aa:bb:cc:dd:ee:02"}
""")
    assert got["mac=AA:bb:cc:dd:ee:01"].match == Match(mac="aa:bb:cc:dd:ee:01")
    assert got["mac:aa:bb:cc:*"].match == Match(mac="aa:bb:cc:*")
    assert got["anything"].match == Match(name="eth3")
    assert got["other"].match == Match(mac="aa:bb:cc:dd:ee:02")


def test_bridge_true_makes_the_key_a_bridge_and_a_name_makes_a_port() -> None:
    got = rules("corral: {network: {interfaces: {br0: {bridge: true, dhcp: true}, eth0: {bridge: br0}}}}")
    assert got["br0"].kind == "bridge" and got["br0"].bridge is not None and got["br0"].dhcp4
    assert got["eth0"].master == "br0" and got["eth0"].kind == "link"


def test_a_bridge_named_only_by_its_ports_is_created_too() -> None:
    got = rules("corral: {network: {interfaces: {eth*: {bridge: br1}}}}")
    assert got["br1"].kind == "bridge" and got["br1"].match == Match(name="br1")
    assert got["br1"].key == 'corral.network.interfaces["eth*"].bridge'


def test_bridge_true_needs_an_exact_name() -> None:
    [msg] = errors("corral: {network: {interfaces: {br*: {bridge: true}}}}")
    assert msg.startswith('corral.network.interfaces["br*"].bridge: ') and "exact name" in msg


def test_bond_members_and_bond_opts_in_sysfs_terms() -> None:
    got = rules("""
corral:
  network:
    interfaces:
      bond0:
        addresses: [192.168.101.33/31]
        bond_opts: {downdelay: "200", lacp_rate: "1", miimon: "100", mode: "4", updelay: "200",
                    xmit_hash_policy: layer3+4, primary: eth6, arp_ip_target: "10.0.0.1,10.0.0.2"}
      mac=0c:c4:d7:b2:14:d2: {bond: bond0}
      eth7: {bond: bond0}
""")
    bond = got["bond0"]
    assert bond.kind == "bond" and bond.bond is not None
    assert dict(bond.bond.options) == {
        "bond_mode": 4,
        "bond_ad_lacp_rate": 1,
        "bond_miimon": 100,
        "bond_updelay": 200,
        "bond_downdelay": 200,
        "bond_xmit_hash_policy": 1,
        "bond_arp_ip_target": ("10.0.0.1", "10.0.0.2"),
    }
    assert bond.bond.refs == (("bond_primary", "eth6"),)
    assert got["mac=0c:c4:d7:b2:14:d2"].master == "bond0" and got["eth7"].master == "bond0"


def test_bond_mode_by_name_and_bad_options() -> None:
    got = rules("corral: {network: {interfaces: {b: {bond_opts: {mode: active-backup}}, eth0: {bond: b}}}}")
    assert got["b"].bond is not None and dict(got["b"].bond.options)["bond_mode"] == 1
    [bad] = errors("corral: {network: {interfaces: {b: {bond_opts: {mode: fastest}}, eth0: {bond: b}}}}")
    assert bad.startswith("corral.network.interfaces.b.bond_opts.mode: 'fastest' is not one of: balance-rr")
    [typo] = errors("corral: {network: {interfaces: {b: {bond_opts: {mode: activ-backup}}, e: {bond: b}}}}")
    assert typo.endswith("; did you mean 'active-backup'?")


def test_bond_opts_without_members_is_a_warning() -> None:
    parsed = parse("corral: {network: {interfaces: {bond0: {bond_opts: {mode: 1}}}}}")
    assert parsed.ok
    assert [(w.key, w.message) for w in parsed.warnings] == [
        ("corral.network.interfaces.bond0.bond_opts", "ignored: no interface joins this bond (bond: bond0)")
    ]


def test_members_cannot_have_addresses_and_masters_one_kind() -> None:
    [msg] = errors("corral: {network: {interfaces: {eth0: {bond: bond0, address: 10.0.0.2/24}}}}")
    assert msg.startswith("corral.network.interfaces.eth0.address: this interface joins bond0")
    [msg] = errors("corral: {network: {interfaces: {eth0: {bond: x}, eth1: {bridge: x}}}}")
    assert msg.startswith("corral.network.interfaces.eth1.bridge: x is used as a bond")


def test_vlans_syntax() -> None:
    got = rules("corral: {network: {interfaces: {eth0: {vlans: '100,200:foobar'}, br0: {vlans: 100}}}}")
    assert got["eth0"].vlans == (VlanDef(100), VlanDef(200, "foobar"))
    assert got["br0"].vlans == (VlanDef(100),)
    [msg] = errors("corral: {network: {interfaces: {eth0: {vlans: '100,5000'}}}}")
    assert msg.startswith("corral.network.interfaces.eth0.vlans: 5000 is out of range (1 to 4094)")


def test_hooks_are_argv_lists_split_like_words_never_a_shell() -> None:
    net = ok("""
corral:
  network:
    pre_cmds: ["/bin/echo 'two words' $iface"]
    post_cmds: [[/bin/true, a b]]
    interfaces:
      eth0: {pre_up: "ip link set $iface promisc on", post_up: ["", "/sbin/x --y=1"]}
""")
    assert net.pre_cmds == (("/bin/echo", "two words", "$iface"),)
    assert net.post_cmds == (("/bin/true", "a b"),)
    assert net.interfaces[0].pre_up == (("ip", "link", "set", "$iface", "promisc", "on"),)
    assert net.interfaces[0].post_up == (("/sbin/x", "--y=1"),)
    [msg] = errors('corral: {network: {pre_cmds: ["echo \'unterminated"]}}')
    assert msg.startswith("corral.network.pre_cmds[0]: cannot split")


def test_dns_and_unsupported_keys() -> None:
    net = ok(
        "corral: {network: {dns: {nameservers: [8.8.8.8, '2001:4860:4860::8888'], search: [a.example]}}}"
    )
    assert [str(n) for n in net.dns.nameservers] == ["8.8.8.8", "2001:4860:4860::8888"]
    assert net.dns.search == ("a.example",)
    assert errors("corral: {network: {dns: {domain: example.com}}}") == [
        "corral.network.dns.domain: 'domain' is not supported: list the domain under 'search'"
    ]


def test_rancheros_keys_corral_does_not_implement_are_warnings_naming_them() -> None:
    """RancherOS's Wi-Fi, modem and IPv4 link-local settings (its docs' examples): RancherOS applied
    them; corral has no Wi-Fi, modem or ipv4ll support, so each is a warning and the rest applies."""
    parsed = parse("corral: {network: {wifi_networks: {home: {ssid: x, psk: y}}, modem_networks: {m: {}},"
                   " interfaces: {wlan0: {wifi_network: home, dhcp: true}, eth0: {ipv4ll: true}}}}")
    assert parsed.ok, [str(e) for e in parsed.errors]
    assert sorted(w.key for w in parsed.warnings) == [
        "corral.network.interfaces.eth0.ipv4ll", "corral.network.interfaces.wlan0.wifi_network",
        "corral.network.modem_networks", "corral.network.wifi_networks"]
    assert all("ignored" in w.message or "no such address" in w.message for w in parsed.warnings)


def test_dhcp_args_is_ignored_with_a_warning() -> None:
    parsed = parse("corral: {network: {interfaces: {eth0: {dhcp: true, dhcp_args: -4 -d}}}}")
    assert parsed.ok and [w.key for w in parsed.warnings] == ["corral.network.interfaces.eth0.dhcp_args"]


def test_exclusive_defaults_false_can_be_set_for_all_and_per_interface() -> None:
    assert not rules("corral: {network: {interfaces: {eth0: {}}}}")["eth0"].exclusive
    got = rules("corral: {network: {exclusive: true, interfaces: {eth0: {}, eth1: {exclusive: false}}}}")
    assert got["eth0"].exclusive and not got["eth1"].exclusive


def test_without_interfaces_eth_and_en_links_run_dhcp() -> None:
    net = ok("corral: {network: {dns: {nameservers: [1.1.1.1]}}}")
    assert net.format == "default"
    assert [(r.match.name, r.dhcp4) for r in net.interfaces] == [("eth*", True), ("en*", True)]
    assert ok("{}").format == "default"


def test_netplan_is_the_top_level_network_key() -> None:
    net = ok(
        "network: {version: 2, ethernets: {eth0: {dhcp4: true}}}\ncorral: {network: {dns: {search: [x]}}}"
    )
    assert net.format == "netplan" and net.interfaces[0].dhcp4 and net.dns.search == ("x",)
    assert ok("network: {config: disabled}").interfaces == ()
    both = "network: {version: 2, ethernets: {eth0: {}}}\ncorral: {network: {interfaces: {}}}"
    assert ok(both).format == "netplan"
    [msg] = errors(
        "network: {version: 2, ethernets: {eth0: {}}}\ncorral: {network: {interfaces: {eth1: {}}}}"
    )
    assert msg.startswith(
        "network: interfaces are given both here (netplan) and in corral.network.interfaces"
    )


def test_dhcp6_runs_dhcpv6_without_a_warning() -> None:
    parsed = parse("corral: {network: {interfaces: {eth0: {dhcp: true, dhcp6: true}}}}")
    assert parsed.ok and parsed.config is not None and parsed.config.interfaces[0].dhcp6
    assert parsed.warnings == ()
