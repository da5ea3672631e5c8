"""netplan ``dummy-devices`` against real netlink: corral creates the dummy links of its config in the
sandbox's network namespace, configures them, and deletes those it created when they leave the config;
a dummy made by someone else is configured but never deleted (only what corral added on it goes).
Also ``macaddress`` on a link corral creates (a bridge, which every kernel here makes).

Needs a kernel that creates dummy links in a namespace (``CONFIG_DUMMY``); skipped otherwise (the plan is
tested purely in tests/test_netconf_plan.py, and for real in the guest: integration/test_guest_os.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integration.netns import NetNS
from integration.sandbox import Sandbox
from integration.test_network import (
    FAST,
    addresses,
    kernel_supports,
    link_info,
    links,
    make_nic,
    owned,
    plug,
    ready,
    routes,
    sb_ip,
    wait_for,
)


@pytest.fixture
def testns(make_netns: Callable[..., NetNS]) -> NetNS:
    return make_netns()


def test_dummy_devices_created_configured_and_deleted_live(
    sandbox: Any, testns: NetNS, tmp_path: Path
) -> None:
    if not kernel_supports("dummy", testns):
        pytest.skip("this kernel cannot create dummy links (EOPNOTSUPP): corral's dummy support is "
                    "tested purely (tests/test_netconf_plan.py) and in the guest (test_guest_os.py)")
    sb: Sandbox = sandbox({"corral": FAST, "network": {"version": 2, "dummy-devices": {
        "dm0": {"addresses": ["198.18.40.1/24"], "routes": [{"to": "198.18.41.0/24", "via": "198.18.40.254"}],
                "mtu": 9000},
        "dm9": {"addresses": ["198.18.49.1/24"]},
    }}})
    ready(sb)
    sb_ip(sb, "link", "add", "dm9", "type", "dummy")  # not corral's: it finds it and adopts it

    wait_for("dm0 created and configured, dm9 configured", lambda: "198.18.40.1/24" in addresses(sb, "dm0")
             and any(r.get("dev") == "dm0" and r.get("gateway") == "198.18.40.254" for r in routes(sb))
             and "198.18.49.1/24" in addresses(sb, "dm9"), sb=sb)
    info = link_info(sb, "dm0")
    assert info["linkinfo"]["info_kind"] == "dummy" and info["mtu"] == 9000 and "UP" in info["flags"]
    assert owned(sb)["links"] == [["dm0", {"kind": "dummy", "options": [], "refs": []}]]

    # the config changes live: dm0 leaves it, dm1 comes, dm9 stays without an address
    sb.cli("config", "set", "network.dummy-devices", "{dm1: {addresses: [198.18.42.1/24]}, dm9: {}}")
    wait_for("dm0 deleted, dm1 created, dm9's address removed", lambda: "dm0" not in links(sb)
             and "198.18.42.1/24" in addresses(sb, "dm1") and not addresses(sb, "dm9"), sb=sb)
    assert "dm9" in links(sb)
    assert owned(sb)["links"] == [["dm1", {"kind": "dummy", "options": [], "refs": []}]]

    sb.cli("config", "set", "network", "null")  # no netplan document: the default rules (eth*, en*)
    wait_for("dm1 deleted, dm9 left alone", lambda: "dm1" not in links(sb) and owned(sb)["links"] == [],
             sb=sb)
    assert "dm9" in links(sb)
    assert sb.stop() == 0
    sb.assert_clean_journal()



def test_macaddress_of_a_bridge_corral_creates(sandbox: Any, testns: NetNS) -> None:
    """netplan's ``macaddress`` on a bridge: created with it, kept when a NIC joins as a port (a bridge
    otherwise takes its ports' lowest MAC), and a new one re-creates the bridge."""
    make_nic(testns, "eth8", "peer-eth8", mac="02:00:5e:18:00:81")
    sb: Sandbox = sandbox({"corral": FAST, "network": {"version": 2, "ethernets": {"eth8": {}}, "bridges": {
        "br8": {"interfaces": ["eth8"], "macaddress": "02:00:5e:10:00:02", "parameters": {"stp": False},
                "addresses": ["198.18.48.2/24"]}}}})
    ready(sb)
    plug(testns, sb, "eth8")
    wait_for("br8 created with its MAC, eth8 its port", lambda: "198.18.48.2/24" in addresses(sb, "br8")
             and link_info(sb, "eth8").get("master") == "br8", sb=sb)
    assert link_info(sb, "br8")["address"] == "02:00:5e:10:00:02"  # not its port's
    options = [["address", "02:00:5e:10:00:02"], ["br_stp_state", 0]]
    assert owned(sb)["links"] == [["br8", {"kind": "bridge", "options": options, "refs": []}]]

    sb.cli("config", "set", "network.bridges.br8.macaddress", "02:00:5e:10:00:03")
    wait_for("br8 re-created with the new MAC, eth8 its port again", lambda: "br8" in links(sb)
             and link_info(sb, "br8")["address"] == "02:00:5e:10:00:03"
             and link_info(sb, "eth8").get("master") == "br8" and "198.18.48.2/24" in addresses(sb, "br8"),
             sb=sb)
    assert sb.stop() == 0
    sb.assert_clean_journal()
