"""Cloud metadata shaped as config (supervisor/config/cloudmeta.py), on real files: OpenStack
ConfigDrive's meta_data.json and network_data.json, NoCloud's meta-data and network-config (from
cloud-init's tests and docs: tests/datasource_corpus/SOURCES). The network documents they give are
checked by corral's own netplan parser, as boot checks them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from netconf.network_config import to_netplan
from supervisor.config import cloudmeta
from supervisor.domain_checks import config_store
from supervisor.paths import Paths

CORPUS = Path(__file__).parent / "datasource_corpus"
PUBKEY = "ssh-rsa AAAAB3NzaC1....sIkJhq8wdX+4I3A4cYbYP ubuntu@server-460"


def text(name: str) -> str:
    return (CORPUS / name).read_text()


def verdict(config: dict[str, Any], tmp_path: Path) -> list[str]:
    """The errors corral gives the config as a user's whole config (schema and the network parser)."""
    store = config_store(Paths.sandbox(tmp_path), "")
    return [str(e) for e in store.verdict(yaml.safe_dump(config), "translated").errors]


def test_openstack_meta_data() -> None:
    (config, problems), uuid = cloudmeta.openstack_meta_to_config(text("configdrive_meta_data.json"), "md")
    assert problems == []
    assert config == {"hostname": "sm-foo-test.novalocal", "ssh_authorized_keys": [PUBKEY]}
    assert uuid == "b0fa911b-69d4-4476-bbe2-1c92bff6535c"


def test_openstack_meta_data_broken() -> None:
    (config, problems), uuid = cloudmeta.openstack_meta_to_config("{not json", "md")
    assert config == {} and uuid is None
    assert [(p.file, p.message.split(":")[0]) for p in problems] == [("md", "not JSON")]
    (config, problems), _ = cloudmeta.openstack_meta_to_config('{"hostname": 5, "public_keys": 7}', "md")
    assert config == {} and [p.key for p in problems] == ["hostname", "public_keys"]


def test_network_data_dhcp_links_by_mac(tmp_path: Path) -> None:
    config, problems = cloudmeta.network_data_to_config(text("network_data_1.json"), "nd")
    assert problems == []
    assert config == {"network": {"version": 2, "ethernets": {
        "nic0": {"match": {"macaddress": "fa:16:3e:69:b0:58"}, "dhcp4": True},
        "nic1": {"match": {"macaddress": "fa:16:3e:d4:57:ad"}, "dhcp4": True},
        "nic2": {"match": {"macaddress": "fa:16:3e:05:30:fe"}, "dhcp4": True},
    }}}
    assert verdict(config, tmp_path) == []


def test_network_data_static_with_routes_mtu_and_dns(tmp_path: Path) -> None:
    config, problems = cloudmeta.network_data_to_config(text("network_data_2.json"), "nd")
    assert problems == []
    dns = {"addresses": ["1.1.1.191", "1.1.1.4"]}
    assert config["network"]["ethernets"] == {
        "nic0": {"match": {"macaddress": "fa:16:3e:dd:50:9a"}, "mtu": 1500, "addresses": ["2.2.2.10/29"],
                 "routes": [{"to": "default", "via": "2.2.2.9"}], "nameservers": dns},
        "nic1": {"match": {"macaddress": "fa:16:3e:a8:14:69"}, "mtu": 1500, "addresses": ["3.3.3.24/27"],
                 "nameservers": dns},
    }
    assert verdict(config, tmp_path) == []


def test_network_data_ipv4_and_ipv6_on_one_link(tmp_path: Path) -> None:
    config, problems = cloudmeta.network_data_to_config(text("network_data_3.json"), "nd")
    assert problems == []
    nic0, nic1 = config["network"]["ethernets"]["nic0"], config["network"]["ethernets"]["nic1"]
    assert nic0["addresses"] == ["172.17.48.18/25", "fdb8:52d0:9d14:0:f816:3eff:fe9f:70d/64"]
    assert nic0["routes"] == [{"to": "default", "via": "172.17.48.1"},
                              {"to": "default", "via": "fdb8:52d0:9d14::1"}]
    assert nic1["routes"] == [{"to": "default", "via": "172.16.48.1"},
                              {"to": "172.16.0.0/16", "via": "172.16.48.1"}]
    assert "mtu" not in nic0  # "mtu": null
    assert verdict(config, tmp_path) == []


def test_network_data_bonds_and_unknown_networks_are_left_out_with_warnings() -> None:
    doc = """{"links": [{"id": "b0", "type": "bond", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                        {"id": "e0", "type": "phy", "ethernet_mac_address": "FA:16:3E:00:00:02"}],
              "networks": [{"id": "n0", "link": "b0", "type": "ipv4_dhcp"},
                           {"id": "n1", "link": "e0", "type": "ipv6_slaac"},
                           {"id": "n2", "link": "e0", "type": "ipv4", "ip_address": "x", "netmask": "y"},
                           {"id": "n3", "link": "e0", "type": "infiniband"}]}"""
    config, problems = cloudmeta.network_data_to_config(doc, "nd")
    assert config == {"network": {"version": 2, "ethernets": {
        "nic0": {"match": {"macaddress": "fa:16:3e:00:00:02"}, "dhcp6": True}}}}
    assert [p.key for p in problems] == ["links[0].type", "networks[0].link", "networks[2]", "networks[3]"]


def test_nocloud_meta_data_from_the_docs() -> None:
    config, problems = cloudmeta.metadata_to_config(text("nocloud_meta-data"), "meta-data")
    assert config == {"hostname": "myhost"}
    assert [p.key for p in problems] == ["network-interfaces"]  # a warning: ENI text is not read
    assert cloudmeta.instance_id(text("nocloud_meta-data")) == "iid-abcdefg"


def test_local_hostname_wins_over_hostname() -> None:
    config, _ = cloudmeta.metadata_to_config("hostname: a\nlocal-hostname: b\n", "md")
    assert config == {"hostname": "b"}


@pytest.mark.parametrize("wrapped", [False, True])
def test_nocloud_network_config_v2_with_or_without_the_wrapper(wrapped: bool) -> None:
    doc = text("nocloud_network-config_v2")
    if wrapped:
        doc = "network:\n" + "".join(f"  {line}\n" for line in doc.splitlines())
    config, problems = cloudmeta.network_config_to_config(doc, "network-config")
    assert problems == []
    assert config["network"]["version"] == 2
    assert config["network"]["ethernets"]["interface0"]["match"] == {"macaddress": "52:54:00:12:34:00"}


def test_nocloud_network_config_v1_goes_under_network_for_the_netplan_parser_to_translate() -> None:
    config, problems = cloudmeta.network_config_to_config(text("nocloud_network-config_v1"), "nc")
    assert problems == []
    assert config["network"]["version"] == 1
    netplan, parsed = to_netplan(config["network"], "nc")
    assert not parsed.errors, parsed.errors
    assert netplan is not None and netplan["version"] == 2
