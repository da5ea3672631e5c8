"""netplan ``dummy-devices`` against real netlink: corral creates the dummy links of its config in the
sandbox's network namespace, configures them, and deletes those it created when they leave the config;
a dummy made by someone else is configured but never deleted (only what corral added on it goes).

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
    owned,
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
