"""integration/fleet.py without booting: what each guest of a fleet gets (its config, its NIC on the LAN),
and the LAN itself (a bridge and taps in a namespace of its own; the host's links untouched)."""

from __future__ import annotations

import yaml

from image import run
from integration import fleet
from integration.guest import GuestSpec
from integration.netns import require_root
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator


def test_each_guest_has_its_own_mac_and_address_on_the_lan() -> None:
    macs = {fleet.lan_mac(i) for i in range(8)}
    addresses = {fleet.lan_address(i) for i in range(8)}
    assert len(macs) == len(addresses) == 8
    assert run.nic_mac(0) not in macs  # the boot NIC's MAC (every guest's, on its own user network)
    assert all(a.startswith("198.18.") for a in addresses)  # RFC 2544's range: on no real network


def test_the_spec_adds_the_lan_nic_and_keeps_the_given_config() -> None:
    given = GuestSpec(config={"hostname": "a", "corral": {"network": {"dns": {"nameservers": ["1.1.1.1"]}}}},
                      qemu_args=["-smp", "1"])
    spec = fleet.fleet_spec(2, "corral-test-1-ab", given)
    assert spec.netns == "corral-test-1-ab"
    assert list(spec.qemu_args) == ["-smp", "1", "-netdev", "tap,id=lan,ifname=tap2,script=no,downscript=no",
                                    "-device", f"virtio-net-pci,netdev=lan,mac={fleet.lan_mac(2)}"]
    network = spec.config["corral"]["network"]
    assert network["dns"] == {"nameservers": ["1.1.1.1"]}
    assert network["interfaces"][f"mac={fleet.lan_mac(2)}"] == {"address": f"{fleet.lan_address(2)}/24"}
    assert network["interfaces"][f"mac={run.nic_mac(0)}"] == {"dhcp": True}
    assert "interfaces" not in given.config["corral"]["network"]  # the caller's dict is not changed
    assert spec.boot_timeout >= fleet.FLEET_BOOT_TIMEOUT


def test_the_config_a_fleet_guest_gets_is_valid_for_corral() -> None:
    spec = fleet.fleet_spec(1, "ns", GuestSpec(config={"hostname": "fleet1"}))
    text = "#cloud-config\n" + yaml.safe_dump(spec.config)
    layer, errors = check_text(text, "user-data", Validator(Schema()))
    assert errors == [] and layer is not None


def test_the_lan_is_a_bridge_with_one_tap_per_guest_in_its_own_namespace() -> None:
    require_root()
    lan = fleet.Lan(3)
    try:
        links = set(lan.ns.links())
        assert {"br0", "tap0", "tap1", "tap2"} <= links
        for tap in ("tap0", "tap1", "tap2"):
            assert "master br0" in lan.ns.ip("link", "show", "dev", tap).stdout
        assert "inet " not in lan.ns.ip("-4", "addr", "show", "dev", "br0").stdout  # no address: no way out
    finally:
        lan.delete()
    assert not lan.ns.exists()
