"""corral's DHCP client (pyroute2's, in PID 1) against a real dnsmasq in a peer namespace: lease, renewal,
expiry when the server is gone, a new exchange after carrier down/up, release when unconfigured."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.netns import NetNS, unavailable
from integration.sandbox import Sandbox
from integration.test_network import (
    FAST,
    addresses,
    default_via,
    link_info,
    make_nic,
    net_status,
    plug,
    ready,
    routes,
    sb_ip,
    settled,
    status_link,
    wait_for,
)

LEASE_TIME = 20  # dnsmasq's own minimum is 2 minutes; option 51 given explicitly overrides it
T1, T2 = 4, 12
MTU = 1400


class Dnsmasq:
    """dnsmasq serving DHCP (no DNS) on one link of a test namespace; its log is a file."""

    def __init__(self, ns: NetNS, dev: str, prefix: str, directory: Path) -> None:
        self.ns, self.dev, self.prefix, self.dir = ns, dev, prefix, directory
        self.log = directory / "dnsmasq.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        p = self.prefix
        argv = [
            "ip", "netns", "exec", self.ns.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
            "--port=0", f"--interface={self.dev}", "--bind-interfaces", "--no-ping", "--user=root",
            "--pid-file=", f"--dhcp-leasefile={self.dir / 'leases'}", "--log-dhcp",
            f"--log-facility={self.log}",
            f"--dhcp-range={p}.50,{p}.99,255.255.255.0,2m",
            f"--dhcp-option=option:router,{p}.1", f"--dhcp-option=option:dns-server,{p}.53",
            "--dhcp-option=option:domain-search,corp.example", f"--dhcp-option=51,{LEASE_TIME}",
            f"--dhcp-option=option:T1,{T1}", f"--dhcp-option=option:T2,{T2}",
            f"--dhcp-option=option:mtu,{MTU}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("dnsmasq listening", lambda: "DHCP, sockets bound" in self.text(), timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def count(self, what: str) -> int:
        return sum(1 for line in self.text().splitlines() if what in line)


@pytest.fixture
def dhcp_server(make_netns: Callable[..., NetNS], tmp_path: Path) -> Iterator[tuple[NetNS, Dnsmasq]]:
    if shutil.which("dnsmasq") is None:
        unavailable("dnsmasq is not installed")
    ns = make_netns()
    make_nic(ns, "eth2", "srv2", peer_addr="198.18.60.1/24")
    server = Dnsmasq(ns, "srv2", "198.18.60", tmp_path)
    server.start()
    try:
        yield ns, server
    finally:
        server.stop()


def dhcp_state(sb: Sandbox, link: str) -> dict[str, Any]:
    info = status_link(sb, link)
    assert info is not None and info["dhcp"], info
    return dict(info["dhcp"][0])


def bound_count(sb: Sandbox) -> int:
    return sum(1 for r in sb.journal() if r.get("event") == "DHCP lease bound")


def leased(sb: Sandbox, link: str) -> set[str]:
    return {a for a in addresses(sb, link) if a.startswith("198.18.60.")}


@pytest.mark.timeout(180)
def test_lease_renewal_carrier_and_expiry(sandbox: Any, dhcp_server: tuple[NetNS, Dnsmasq]) -> None:
    ns, server = dhcp_server
    sb: Sandbox = sandbox({"hostname": "corral-dhcp", "corral": {**FAST, "network": {"interfaces": {
        "eth2": {"dhcp": True}}}}})
    ready(sb)
    plug(ns, sb, "eth2")

    # Lease obtained: address with the lease's lifetime, default route proto dhcp, resolv.conf.
    wait_for("lease", lambda: leased(sb, "eth2") and default_via(sb, "eth2") == {"198.18.60.1"}, sb=sb)
    [address] = leased(sb, "eth2")
    [info] = json.loads(sb_ip(sb, "-j", "addr", "show", "dev", "eth2").stdout)
    v4 = next(a for a in info["addr_info"] if a["family"] == "inet")
    assert 0 < v4["valid_life_time"] <= LEASE_TIME and v4.get("dynamic"), v4
    [route] = [r for r in json.loads(sb_ip(sb, "-j", "route", "show", "default").stdout)]
    assert route["protocol"] == "dhcp" and route["metric"] == 1024, route
    resolv = sb.dir / "etc" / "resolv.conf"
    wait_for("resolv.conf from the lease", lambda: resolv.exists() and "198.18.60.53" in resolv.read_text())
    assert "search corp.example" in resolv.read_text()
    assert "client provides name: corral-dhcp" in server.text()  # the hostname is sent
    assert link_info(sb, "eth2")["mtu"] == MTU  # offered, and the config sets none
    lease = dhcp_state(sb, "eth2")["lease"]
    assert lease["address"] == address and lease["lease_time"] == LEASE_TIME
    assert lease["expires"] > time.time()

    # Renewal (T1 = 4 s): a unicast REQUEST, acknowledged; the lifetime goes back up.
    acks = server.count("DHCPACK")
    wait_for("renewal", lambda: server.count("DHCPACK") > acks, timeout=15)
    sb.wait_journal(lambda r: r.get("event") == "DHCP lease renewed")
    assert leased(sb, "eth2") == {address}

    # Carrier down: the client pauses, the address stays; carrier up: a new exchange.
    ns.ip("link", "set", "srv2", "down")
    wait_for("paused", lambda: dhcp_state(sb, "eth2")["state"] == "paused")
    assert leased(sb, "eth2") == {address}
    requests = server.count("DHCPREQUEST")
    bound = bound_count(sb)
    ns.ip("link", "set", "srv2", "up")
    wait_for("new exchange after carrier up", lambda: server.count("DHCPREQUEST") > requests, timeout=15)
    wait_for("bound again (INIT-REBOOT: REQUEST, ACK)", lambda: bound_count(sb) > bound)
    assert dhcp_state(sb, "eth2")["state"] == "running"
    assert leased(sb, "eth2") == {address}

    # The server goes away: renew and rebind fail, the lease expires, the address and route go.
    server.stop()
    expired_at = dhcp_state(sb, "eth2")["lease"]["expires"]
    wait_for("lease expired, address gone", lambda: not leased(sb, "eth2"), timeout=LEASE_TIME + 15)
    assert time.time() >= expired_at - 1
    wait_for("route gone", lambda: not default_via(sb, "eth2"))
    wait_for("the client forgot the lease", lambda: dhcp_state(sb, "eth2")["lease"] is None, timeout=10)
    sb.wait_journal(lambda r: r.get("event") == "DHCP lease expired")
    assert sb.stop() == 0
    sb.assert_clean_journal()


@pytest.mark.timeout(120)
def test_release_when_unconfigured_and_static_gateway_wins(
    sandbox: Any, dhcp_server: tuple[NetNS, Dnsmasq]
) -> None:
    ns, server = dhcp_server
    sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {
        "eth2": {"dhcp": True, "address": "198.18.61.2/24"}}}}})
    ns.ip("addr", "add", "198.18.61.1/24", "dev", "srv2")
    ready(sb)
    plug(ns, sb, "eth2")
    wait_for("lease", lambda: leased(sb, "eth2"))
    assert "198.18.61.2/24" in addresses(sb, "eth2")  # static and DHCP side by side
    sb.cli("config", "set", "corral.network.interfaces.eth2", "{dhcp: false, gateway: 198.18.61.1}")
    wait_for("released", lambda: server.count("DHCPRELEASE") >= 1, timeout=15)
    wait_for("lease address removed", lambda: not leased(sb, "eth2"))
    # The lease's default route goes with the release; the static one comes with the next reconcile.
    wait_for("static gateway", lambda: default_via(sb, "eth2") == {"198.18.61.1"})
    assert "198.18.61.2/24" in addresses(sb, "eth2")
    assert net_status(sb)["links"][-1]["dhcp"] == []
    assert not (sb.paths.state_dir / "dhcp" / "eth2.json").exists()
    assert sb.stop() == 0
    sb.assert_clean_journal()


@pytest.mark.timeout(120)
def test_lease_survives_a_restart_of_pid1(
    sandbox: Any, dhcp_server: tuple[NetNS, Dnsmasq], tmp_path: Path
) -> None:
    """The lease is kept in the state directory: after a restart, the client asks for it again
    (INIT-REBOOT: a REQUEST, no DISCOVER)."""
    ns, server = dhcp_server
    config = {"corral": {**FAST, "network": {"interfaces": {"eth2": {"dhcp": True}}}}}
    sb: Sandbox = sandbox(config)
    ready(sb)
    plug(ns, sb, "eth2")
    wait_for("lease", lambda: leased(sb, "eth2"))
    [address] = leased(sb, "eth2")
    stored = sb.paths.state_dir / "dhcp" / "eth2.json"
    wait_for("lease stored", stored.exists)
    assert oct(stored.stat().st_mode & 0o777) == "0o600"
    saved = stored.read_bytes()  # the state directory, as a reboot would find it
    sb_ip(sb, "link", "set", "eth2", "netns", ns.name)  # keep the NIC for the next PID 1
    wait_for("a link that goes away is forgotten, its lease too", lambda: not stored.exists())
    assert sb.stop() == 0
    discovers = server.count("DHCPDISCOVER")

    def keep_state(directory: Path) -> None:
        target = directory / "var" / "lib" / "corral" / "dhcp"
        target.mkdir(parents=True, exist_ok=True)
        (target / "eth2.json").write_bytes(saved)

    sb2: Sandbox = sandbox(config, setup=keep_state, name="again")
    ready(sb2)
    plug(ns, sb2, "eth2")
    wait_for("same lease again", lambda: leased(sb2, "eth2") == {address})
    assert server.count("DHCPDISCOVER") == discovers  # it asked for its lease, no discovery
    assert sb2.stop() == 0
    sb2.assert_clean_journal()


@pytest.mark.timeout(120)
def test_two_leases_with_the_same_metric_keep_both_default_routes(
    sandbox: Any, dhcp_server: tuple[NetNS, Dnsmasq], make_netns: Callable[..., NetNS], tmp_path: Path
) -> None:
    """Every NIC on DHCP (the default) on two networks: two default routes with the same metric. The
    kernel keeps both side by side (the first one is used); corral neither fights over the one key (a
    replace flipped it from link to link, each flip waking the next reconcile) nor leaves one pending
    for good, and when a NIC goes the other's route is there already."""
    ns, _ = dhcp_server
    ns3 = make_netns()
    make_nic(ns3, "eth3", "srv3", peer_addr="198.18.62.1/24")
    server3 = Dnsmasq(ns3, "srv3", "198.18.62", tmp_path / "srv3")
    (tmp_path / "srv3").mkdir()
    server3.start()
    try:
        sb: Sandbox = sandbox({"corral": {**FAST, "network": {"interfaces": {"eth*": {"dhcp": True}}}}})
        ready(sb)
        plug(ns, sb, "eth2")
        plug(ns3, sb, "eth3")

        def both() -> bool:
            return default_via(sb, "eth2") == {"198.18.60.1"} and default_via(sb, "eth3") == {"198.18.62.1"}

        wait_for("both leases' default routes", both)
        wait_for("nothing left to change", lambda: settled(sb))
        rounds = net_status(sb)["rounds"]
        for _ in range(20):  # no flip-flop: the routes stay and nothing is pending
            assert both() and settled(sb), net_status(sb)["pending"]
            time.sleep(0.05)
        assert net_status(sb)["rounds"] - rounds < 5  # a renewal may wake a round; a fight wakes dozens
        sb_ip(sb, "link", "set", "eth2", "netns", ns.name)
        wait_for("eth3's route alone", lambda: default_via(sb, "eth3") == {"198.18.62.1"} and settled(sb))
        assert {r.get("dev") for r in routes(sb, "default")} == {"eth3"}
        assert sb.stop() == 0
        sb.assert_clean_journal()
    finally:
        server3.stop()
