"""The network handler against real netlink: the supervisor as PID 1 in its own network namespace (the
sandbox), NICs made in a test namespace and moved into it with ``ip link set DEV netns <pid1>``.

Addresses come from 198.18.0.0/15; traffic stays between the tests' own namespaces."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.netns import NetNS
from integration.sandbox import Sandbox

FAST = {"handlers": {"backoff_initial": 0.01, "backoff_cap": 0.5}}


# ---- helpers (the benchmarks use them too) ----------------------------------------------------------
def sb_ip(sb: Sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``ip ARGS`` inside the sandbox's network namespace (only the network namespace is entered)."""
    return subprocess.run(["nsenter", "-t", str(sb.pid1), "-n", "ip", *args], capture_output=True,
                          text=True, check=check, timeout=60)


def _absent(out: subprocess.CompletedProcess[str]) -> bool:
    """``ip`` failed because the device is not there (yet): fine. Anything else is a broken test host."""
    if out.returncode == 0:
        return False
    if "does not exist" in out.stderr or "Cannot find device" in out.stderr:
        return True
    raise AssertionError(f"ip in the sandbox failed: {out.args}: {out.stderr.strip()}")


def addresses(sb: Sandbox, dev: str) -> set[str]:
    out = sb_ip(sb, "-j", "addr", "show", "dev", dev, check=False)
    if _absent(out):
        return set()
    found: set[str] = set()
    for link in json.loads(out.stdout or "[]"):
        for a in link.get("addr_info", []):
            found.add(f"{a['local']}/{a['prefixlen']}")
    return found


def routes(sb: Sandbox, *selector: str) -> list[dict[str, Any]]:
    out = sb_ip(sb, "-j", "-4", "route", "show", *selector, check=False)
    return [] if _absent(out) else list(json.loads(out.stdout or "[]"))


def default_via(sb: Sandbox, dev: str) -> set[str]:
    return {r.get("gateway", "") for r in routes(sb, "default") if r.get("dev") == dev}


def links(sb: Sandbox) -> set[str]:
    return {link["ifname"] for link in json.loads(sb_ip(sb, "-j", "link", "show").stdout)}


def link_info(sb: Sandbox, dev: str) -> dict[str, Any]:
    [info] = json.loads(sb_ip(sb, "-j", "-d", "link", "show", "dev", dev).stdout)
    return dict(info)


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02,
             sb: Sandbox | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}" + diagnose(sb))
        time.sleep(interval)


def diagnose(sb: Sandbox | None) -> str:
    """What the sandbox's network handler was doing, for a failed wait."""
    if sb is None:
        return ""
    lines = ["", "--- diagnosis ---"]
    try:
        status = sb.request("status")
        lines.append(json.dumps({k: status.get(k) for k in ("state", "degraded", "boot_phases", "handlers")}))
        net = sb.request("net.status")
        lines.append(json.dumps({k: net.get(k) for k in ("pending", "failures", "rounds", "source")}))
        lines.append(sb_ip(sb, "-br", "addr").stdout)
    except Exception as exc:  # the diagnosis must not hide the failure
        lines.append(f"status failed: {exc!r}")
    lines += [json.dumps(r)[:300] for r in sb.journal()[-30:]]
    return "\n".join(lines)


def ready(sb: Sandbox) -> None:
    """Boot, and fail at once if the network boot phase did not come up."""
    status = sb.wait_ready()
    assert status["state"] == "ready" and "network" in status["boot_phases"], status


def make_nic(ns: NetNS, name: str, peer: str, mac: str | None = None, peer_addr: str | None = None) -> None:
    """A veth pair in ``ns``: ``name`` (to be moved into a sandbox) and ``peer`` (stays, up)."""
    argv = ["link", "add", name]
    if mac:
        argv += ["address", mac]
    ns.ip(*argv, "type", "veth", "peer", "name", peer)
    if peer_addr:
        ns.ip("addr", "add", peer_addr, "dev", peer)
    ns.ip("link", "set", peer, "up")


def plug(ns: NetNS, sb: Sandbox, name: str) -> None:
    """Move ``name`` from the test namespace into the sandbox: a NIC appears there."""
    ns.ip("link", "set", name, "netns", str(sb.pid1))


def unplug(sb: Sandbox, name: str, ns: NetNS | None = None) -> None:
    """The NIC disappears from the sandbox: moved back into ``ns``, or deleted."""
    if ns is not None:
        sb_ip(sb, "link", "set", name, "netns", ns.name)
    else:
        sb_ip(sb, "link", "del", name)


def owned(sb: Sandbox) -> dict[str, Any]:
    path = sb.paths.state_dir / "network-owned.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def net_status(sb: Sandbox) -> dict[str, Any]:
    return dict(json.loads(sb.cli("net", "status", "-o", "json").stdout))


def status_link(sb: Sandbox, name: str) -> dict[str, Any] | None:
    return next((link for link in net_status(sb)["links"] if link["name"] == name), None)


def settled(sb: Sandbox) -> bool:
    """Nothing left to change."""
    return bool(sb.request("net.plan")["changes"] == [])


def config_merge(sb: Sandbox, doc: dict[str, Any], tmp: Path) -> None:
    path = tmp / f"merge-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(doc))
    sb.cli("config", "merge", str(path))


def kernel_supports(kind: str, ns: NetNS) -> bool:
    probe = ns.ip("link", "add", "probe0", "type", kind, check=False)
    if probe.returncode == 0:
        ns.ip("link", "del", "probe0", check=False)
        return True
    return False


@pytest.fixture
def testns(make_netns: Callable[..., NetNS]) -> NetNS:
    return make_netns()


# ---- NICs appear, go, come back -----------------------------------------------------------------------
def test_nic_configured_by_glob_and_mac_forgotten_when_removed_and_configured_again(
    sandbox: Any, testns: NetNS
) -> None:
    mac = "02:00:5e:18:00:21"
    make_nic(testns, "lan0", "peer-lan0", peer_addr="198.18.10.1/24")
    make_nic(testns, "xnic", "peer-xnic", mac=mac, peer_addr="198.18.11.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "lan*": {"address": "198.18.10.2/24", "gateway": "198.18.10.1"},
        f"mac={mac}": {"addresses": ["198.18.11.2/24"], "mtu": 1400},
    }}}})
    ready(sb)
    plug(testns, sb, "lan0")
    plug(testns, sb, "xnic")
    wait_for("lan0 configured by glob", lambda: "198.18.10.2/24" in addresses(sb, "lan0")
             and default_via(sb, "lan0") == {"198.18.10.1"}, sb=sb)
    wait_for("xnic configured by MAC", lambda: "198.18.11.2/24" in addresses(sb, "xnic"), sb=sb)
    assert link_info(sb, "xnic")["mtu"] == 1400
    testns.run(["busybox", "ping", "-c1", "-W2", "198.18.10.2"])  # it really works
    link = status_link(sb, "xnic")
    assert link is not None and link["rule"]["key"].endswith(f'interfaces["mac={mac}"]')
    assert link["managed"] and link["carrier"] and link["state"] == "up"
    assert ["lan0", "198.18.10.2/24"] in owned(sb)["addresses"]

    unplug(sb, "lan0", testns)  # gone from the sandbox
    wait_for("lan0 forgotten", lambda: not any(a[0] == "lan0" for a in owned(sb).get("addresses", []))
             and status_link(sb, "lan0") is None, sb=sb)
    assert "198.18.11.2/24" in addresses(sb, "xnic")  # the other NIC is untouched

    plug(testns, sb, "lan0")  # back again
    wait_for("lan0 configured again", lambda: "198.18.10.2/24" in addresses(sb, "lan0")
             and default_via(sb, "lan0") == {"198.18.10.1"}, sb=sb)
    wait_for("settled", lambda: settled(sb), sb=sb)
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_nic_configured_by_netplan_match(sandbox: Any, testns: NetNS) -> None:
    mac = "02:00:5e:18:00:31"
    make_nic(testns, "np-a", "peer-np-a")
    make_nic(testns, "odd9", "peer-odd9", mac=mac)
    make_nic(testns, "docker0x", "peer-dkr")  # no rule matches it
    sb: Sandbox = sandbox({"corral": FAST, "network": {"version": 2, "ethernets": {
        "by-driver": {"match": {"name": "np-*", "driver": "veth"}, "addresses": ["198.18.12.2/24"],
                      "routes": [{"to": "198.18.100.0/24", "via": "198.18.12.1", "metric": 50}]},
        "by-mac": {"match": {"macaddress": mac}, "set-name": "uplink0", "addresses": ["198.18.13.2/24"]},
    }}})
    ready(sb)
    for nic in ("np-a", "odd9", "docker0x"):
        plug(testns, sb, nic)
    sb_ip(sb, "addr", "add", "198.18.14.2/24", "dev", "docker0x")  # someone else's
    wait_for("np-a configured by netplan match", lambda: "198.18.12.2/24" in addresses(sb, "np-a")
             and any(r["dst"] == "198.18.100.0/24" for r in routes(sb, "dev", "np-a")), sb=sb)
    wait_for("odd9 renamed by set-name and configured", lambda: "uplink0" in links(sb)
             and "198.18.13.2/24" in addresses(sb, "uplink0"), sb=sb)
    wait_for("settled", lambda: settled(sb), sb=sb)
    info = link_info(sb, "docker0x")
    assert "UP" not in info["flags"] and addresses(sb, "docker0x") == {"198.18.14.2/24"}  # never touched
    assert status_link(sb, "docker0x")["managed"] is False  # type: ignore[index]
    assert sb.stop() == 0
    sb.assert_clean_journal()


# ---- config changes ------------------------------------------------------------------------------------
def test_config_change_replaces_address_and_route_and_drops_a_bridge(
    sandbox: Any, testns: NetNS, tmp_path: Path
) -> None:
    make_nic(testns, "eth5", "peer-eth5", peer_addr="198.18.20.1/24")
    testns.ip("addr", "add", "198.18.21.1/24", "dev", "peer-eth5")
    make_nic(testns, "docker0y", "peer-dky")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth5": {"address": "198.18.20.2/24", "gateway": "198.18.20.1"},
    }}}})
    ready(sb)
    plug(testns, sb, "eth5")
    plug(testns, sb, "docker0y")
    sb_ip(sb, "addr", "add", "198.18.29.2/24", "dev", "docker0y")
    wait_for("eth5 configured", lambda: default_via(sb, "eth5") == {"198.18.20.1"}, sb=sb)

    sb.cli("config", "set", "corral.network.interfaces.eth5",
           "{address: 198.18.21.2/24, gateway: 198.18.21.1}")
    wait_for("new address and route, old ones gone", lambda: addresses(sb, "eth5") >= {"198.18.21.2/24"}
             and "198.18.20.2/24" not in addresses(sb, "eth5")
             and default_via(sb, "eth5") == {"198.18.21.1"}, sb=sb)
    assert not any(r["dst"] == "198.18.20.0/24" for r in routes(sb))  # its prefix route went too

    config_merge(sb, {"corral": {"network": {"interfaces": {
        "br9": {"bridge": True, "address": "198.18.22.1/24"},
    }}}}, tmp_path)
    wait_for("bridge created and configured", lambda: "198.18.22.1/24" in addresses(sb, "br9"), sb=sb)
    assert link_info(sb, "br9")["linkinfo"]["info_kind"] == "bridge"
    assert ["br9", {"kind": "bridge", "options": [], "refs": []}] in owned(sb)["links"]

    export = yaml.safe_load(sb.cli("config", "export").stdout)
    del export["corral"]["network"]["interfaces"]["br9"]
    replacement = tmp_path / "without-bridge.yml"
    replacement.write_text("#cloud-config\n" + yaml.safe_dump(export))
    (sb.paths.config_dir / "cloud-config.yml").write_text(replacement.read_text())
    sb.request("reload")
    wait_for("bridge dropped from the config is deleted and forgotten", lambda: "br9" not in links(sb)
             and owned(sb)["links"] == [], sb=sb)
    assert addresses(sb, "eth5") >= {"198.18.21.2/24"}
    assert addresses(sb, "docker0y") == {"198.18.29.2/24"}  # the unmatched link was never touched
    assert "UP" not in link_info(sb, "docker0y")["flags"]
    assert sb.stop() == 0
    sb.assert_clean_journal()


@pytest.mark.parametrize("kind", ["bond", "vlan"])
def test_bond_vlan_need_kernel_support(kind: str, testns: NetNS) -> None:
    if not kernel_supports(kind, testns):
        pytest.skip(f"this kernel cannot create {kind} links (EOPNOTSUPP): corral's {kind} support is "
                    "planned and tested purely (tests/test_netconf_sim.py), not against this kernel")
    pytest.skip(f"{kind} links work on this kernel: an integration test for them is still to be written")


# ---- drift ---------------------------------------------------------------------------------------------
def test_drift_is_corrected_and_foreign_addresses_left_unless_exclusive(
    sandbox: Any, testns: NetNS, tmp_path: Path
) -> None:
    make_nic(testns, "eth6", "peer-eth6", peer_addr="198.18.30.1/24")
    make_nic(testns, "eth7", "peer-eth7", peer_addr="198.18.31.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth6": {"address": "198.18.30.2/24", "gateway": "198.18.30.1"},
        "eth7": {"address": "198.18.31.2/24", "exclusive": True},
    }}}})
    ready(sb)
    plug(testns, sb, "eth6")
    plug(testns, sb, "eth7")
    wait_for("configured", lambda: default_via(sb, "eth6") == {"198.18.30.1"}
             and "198.18.31.2/24" in addresses(sb, "eth7"), sb=sb)

    sb.nsenter(["ip", "addr", "del", "198.18.30.2/24", "dev", "eth6"])  # by hand, inside the sandbox
    wait_for("address put back", lambda: "198.18.30.2/24" in addresses(sb, "eth6")
             and default_via(sb, "eth6") == {"198.18.30.1"}, sb=sb)
    sb.nsenter(["ip", "route", "del", "default", "via", "198.18.30.1", "dev", "eth6"])
    wait_for("route put back", lambda: default_via(sb, "eth6") == {"198.18.30.1"}, sb=sb)
    sb.nsenter(["ip", "link", "set", "eth6", "down"])
    wait_for("link set up again, route back", lambda: "UP" in link_info(sb, "eth6")["flags"]
             and default_via(sb, "eth6") == {"198.18.30.1"}, sb=sb)
    link = status_link(sb, "eth6")
    assert link is not None and link["drift"]["corrected"] >= 3

    sb.nsenter(["ip", "addr", "add", "198.18.30.77/24", "dev", "eth6"])  # not exclusive: stays
    sb.nsenter(["ip", "addr", "add", "198.18.31.77/24", "dev", "eth7"])  # exclusive: removed
    wait_for("foreign address removed from the exclusive link",
             lambda: "198.18.31.77/24" not in addresses(sb, "eth7"), sb=sb)
    wait_for("settled", lambda: settled(sb), sb=sb)
    assert "198.18.30.77/24" in addresses(sb, "eth6")
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_storm_of_10000_flaps_converges(sandbox: Any, testns: NetNS, tmp_path: Path) -> None:
    make_nic(testns, "eth8", "peer-eth8", peer_addr="198.18.40.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth8": {"address": "198.18.40.2/24", "gateway": "198.18.40.1", "routes": [
            {"to": "198.18.41.0/24", "via": "198.18.40.254"}]},
    }}}})
    ready(sb)
    plug(testns, sb, "eth8")
    wait_for("configured", lambda: default_via(sb, "eth8") == {"198.18.40.1"}, sb=sb)
    batch = tmp_path / "storm.batch"
    batch.write_text("link set eth8 down\nlink set eth8 up\n" * 10_000 + "addr flush dev eth8\n")
    started = time.monotonic()
    sb_ip(sb, "-force", "-batch", str(batch))
    stormed = time.monotonic()
    wait_for("converged after the storm", lambda: "198.18.40.2/24" in addresses(sb, "eth8")
             and default_via(sb, "eth8") == {"198.18.40.1"}
             and any(r["dst"] == "198.18.41.0/24" for r in routes(sb, "dev", "eth8"))
             and "UP" in link_info(sb, "eth8")["flags"], timeout=60, sb=sb)
    converged = time.monotonic()
    wait_for("settled", lambda: settled(sb), sb=sb)
    status = net_status(sb)
    print(f"storm {stormed - started:.2f}s, converged {converged - stormed:.3f}s after it; "
          f"netlink {status['source']['messages']} messages, {status['source']['overflows']} overflows, "
          f"{status['rounds']} reconciles")
    assert status["handler"]["failures"] == 0
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_enobufs_with_a_small_buffer_still_converges(
    sandbox: Any, testns: NetNS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_NETLINK_RCVBUF", "4096")  # the sandbox's PID 1 inherits it
    make_nic(testns, "eth9", "peer-eth9", peer_addr="198.18.42.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth9": {"address": "198.18.42.2/24", "gateway": "198.18.42.1"},
    }}}})
    ready(sb)
    plug(testns, sb, "eth9")
    wait_for("configured", lambda: default_via(sb, "eth9") == {"198.18.42.1"}, sb=sb)
    batch = tmp_path / "storm.batch"
    batch.write_text("link set eth9 down\nlink set eth9 up\n" * 2000 + "addr flush dev eth9\n")
    sb_ip(sb, "-force", "-batch", str(batch))
    wait_for("converged", lambda: "198.18.42.2/24" in addresses(sb, "eth9")
             and default_via(sb, "eth9") == {"198.18.42.1"}, timeout=60, sb=sb)
    source = net_status(sb)["source"]
    assert source["overflows"] >= 1 and source["sockets_opened"] >= 2, source
    sb_ip(sb, "addr", "del", "198.18.42.2/24", "dev", "eth9")  # the new socket hears this
    wait_for("drift corrected on the new socket", lambda: "198.18.42.2/24" in addresses(sb, "eth9"), sb=sb)
    sb.wait_journal(lambda r: r.get("event") == "netlink messages lost; reopening the socket and resyncing")
    assert sb.stop() == 0
    sb.assert_clean_journal()


# ---- try / confirm -------------------------------------------------------------------------------------
@pytest.fixture
def tried(sandbox: Any, testns: NetNS, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    make_nic(testns, "eth4", "peer-eth4", peer_addr="198.18.50.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth4": {"address": "198.18.50.2/24", "gateway": "198.18.50.1"},
    }}}})
    ready(sb)
    plug(testns, sb, "eth4")
    wait_for("configured", lambda: default_via(sb, "eth4") == {"198.18.50.1"}, sb=sb)
    change = tmp_path / "change.yml"
    change.write_text(yaml.safe_dump({"corral": {"network": {"interfaces": {
        "eth4": {"address": "198.18.51.2/24", "gateway": "198.18.51.1"},
    }}}}))
    yield sb, change
    assert sb.stop() == 0


def test_net_try_without_confirm_rolls_back(tried: tuple[Sandbox, Path]) -> None:
    sb, change = tried
    plan = sb.cli("net", "plan", str(change)).stdout
    assert "add address 198.18.51.2/24 to eth4" in plan and "remove address 198.18.50.2/24 from eth4" in plan
    out = sb.cli("net", "try", "--timeout", "2", str(change)).stdout
    assert "add address 198.18.51.2/24 to eth4" in out and "net confirm" in out
    assert addresses(sb, "eth4") >= {"198.18.51.2/24"} and default_via(sb, "eth4") == {"198.18.51.1"}
    assert net_status(sb)["try"]["remaining"] > 0
    wait_for("rolled back", lambda: "198.18.50.2/24" in addresses(sb, "eth4")
             and "198.18.51.2/24" not in addresses(sb, "eth4") and default_via(sb, "eth4") == {"198.18.50.1"},
             timeout=15, sb=sb)
    assert sb.request("config.get", key="corral.network.interfaces.eth4.address") == "198.18.50.2/24"
    assert net_status(sb)["try"] is None
    sb.wait_journal(lambda r: r.get("event") == "network try rolled back")
    assert sb.cli("net", "confirm", check=False).returncode == 1  # nothing to confirm


def test_net_try_with_confirm_keeps_and_persists(tried: tuple[Sandbox, Path]) -> None:
    sb, change = tried
    sb.cli("net", "try", "--timeout", "3", str(change))
    assert "198.18.51.2/24" in addresses(sb, "eth4")
    assert sb.cli("net", "try", str(change), check=False).returncode == 1  # one try at a time
    assert "confirmed" in sb.cli("net", "confirm").stdout
    time.sleep(4)  # past the deadline: nothing is rolled back
    assert addresses(sb, "eth4") >= {"198.18.51.2/24"} and "198.18.50.2/24" not in addresses(sb, "eth4")
    assert default_via(sb, "eth4") == {"198.18.51.1"}
    assert sb.request("config.get", key="corral.network.interfaces.eth4.address") == "198.18.51.2/24"
    assert "198.18.51.2" in (sb.paths.config_dir / "cloud-config.yml").read_text()
    assert settled(sb)


def test_net_apply_and_status_text(sandbox: Any, testns: NetNS, tmp_path: Path) -> None:
    make_nic(testns, "eth3", "peer-eth3", peer_addr="198.18.52.1/24")
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {
        "interfaces": {"eth3": {"address": "198.18.52.2/24"}}, "dns": {"nameservers": ["198.18.52.53"]}}}})
    ready(sb)
    plug(testns, sb, "eth3")
    wait_for("configured", lambda: "198.18.52.2/24" in addresses(sb, "eth3"), sb=sb)
    resolv = sb.dir / "etc" / "resolv.conf"
    wait_for("resolv.conf under the sandbox", lambda: resolv.exists())
    assert "nameserver 198.18.52.53" in resolv.read_text()
    change = tmp_path / "more.yml"
    change.write_text(yaml.safe_dump({"corral": {"network": {"interfaces": {
        "eth3": {"addresses": ["198.18.52.2/24", "198.18.53.2/24"]}}}}}))
    out = sb.cli("net", "apply", str(change)).stdout
    assert out.strip() == "add address 198.18.53.2/24 to eth3"  # whichever round applied it
    assert "198.18.53.2/24" in addresses(sb, "eth3")
    text = sb.cli("net", "status").stdout
    assert "eth3" in text and "address 198.18.53.2/24*" in text and "198.18.52.53" in text
    assert sb.cli("net", "apply").stdout.strip() == "nothing to change"
    assert sb.stop() == 0
    sb.assert_clean_journal()

