"""corral's DHCPv6 client (dhcpcd, supervised by PID 1, configuring nothing itself) against a real DHCPv6
server: dnsmasq with a stateful range in a peer namespace. The lease's address comes with its lifetime
and its DNS server lands in resolv.conf; a dhcpcd that is killed is started again and the lease stays;
turning dhcp6 off releases the lease (the server sees the RELEASE) and the address goes. (resolv.conf is
then left as it is: with no DNS from the config or a lease, the plan writes nothing, as for DHCPv4.)"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.netns import NetNS, unavailable
from integration.sandbox import Sandbox
from integration.test_network import FAST, addresses, make_nic, net_status, plug, sb_ip, wait_for
from netconf.dhcp6 import DHCPCD

PREFIX = "2001:db8:66::"
DNS6 = "2001:db8:66::53"
LINK = "eth6"  # dhcpcd keeps its pid file and lease under the host's /run/dhcpcd and /var/lib/dhcpcd
LEASE = 600


class Dnsmasq6:
    """dnsmasq serving DHCPv6 (stateful, no RA, no DNS) on one link of a test namespace."""

    def __init__(self, ns: NetNS, dev: str, directory: Path) -> None:
        self.ns, self.dev = ns, dev
        self.log = directory / "dnsmasq6.log"
        self.leases = directory / "leases6"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            "ip", "netns", "exec", self.ns.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
            "--port=0", f"--interface={self.dev}", "--bind-interfaces", "--user=root", "--pid-file=",
            f"--dhcp-leasefile={self.leases}", "--log-dhcp", f"--log-facility={self.log}",
            f"--dhcp-range={PREFIX}100,{PREFIX}1ff,64,{LEASE}",
            f"--dhcp-option=option6:dns-server,[{DNS6}]", "--dhcp-option=option6:domain-search,corp6.example",
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("dnsmasq listening", lambda: "DHCPv6, IP range" in self.text(), timeout=10)

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
def dhcp6_server(make_netns: Callable[..., NetNS], tmp_path: Path) -> Iterator[tuple[NetNS, Dnsmasq6]]:
    if shutil.which("dnsmasq") is None:
        unavailable("dnsmasq is not installed")
    if not Path(DHCPCD).exists():
        unavailable("dhcpcd is not installed (Debian's dhcpcd-base)")
    ns = make_netns()
    make_nic(ns, LINK, "srv6")
    ns.ip("addr", "add", f"{PREFIX}1/64", "dev", "srv6", "nodad")
    server = Dnsmasq6(ns, "srv6", tmp_path)
    server.start()
    try:
        yield ns, server
    finally:
        server.stop()
        Path(f"/var/lib/dhcpcd/{LINK}.lease6").unlink(missing_ok=True)


def leased6(sb: Sandbox) -> set[str]:
    return {a for a in addresses(sb, LINK) if a.startswith(PREFIX)}


def dhcp6_state(sb: Sandbox) -> dict[str, Any] | None:
    link = next((x for x in net_status(sb)["links"] if x["name"] == LINK), None)
    assert link is not None
    return next((dict(d) for d in link["dhcp"] if d["family"] == 6), None)


@pytest.mark.timeout(180)
def test_dhcpv6_lease_dns_restart_and_release(sandbox: Any, dhcp6_server: tuple[NetNS, Dnsmasq6]) -> None:
    ns, server = dhcp6_server
    sb: Sandbox = sandbox({"corral": FAST, "network": {"ethernets": {LINK: {"dhcp6": True}}}})
    status = sb.wait_ready()
    assert status["state"] == "ready" and status["config"]["warnings"] == [], status  # no DHCPv6 warning
    plug(ns, sb, LINK)

    # The lease: a /128 from the range, with the lease's lifetime; its DNS server and domain.
    wait_for("a DHCPv6 address", lambda: leased6(sb), timeout=40, sb=sb)
    [address] = leased6(sb)
    assert address.endswith("/128") and 0x100 <= int(address.split("::")[1].split("/")[0], 16) <= 0x1FF
    [info] = json.loads(sb_ip(sb, "-j", "addr", "show", "dev", LINK).stdout)
    v6 = next(a for a in info["addr_info"] if f"{a['local']}/{a['prefixlen']}" == address)
    assert 0 < v6["preferred_life_time"] <= v6["valid_life_time"] <= LEASE and v6.get("dynamic"), v6
    resolv = sb.dir / "etc" / "resolv.conf"
    wait_for("resolv.conf from the lease", lambda: resolv.exists() and DNS6 in resolv.read_text())
    assert "search corp6.example" in resolv.read_text()
    state = dhcp6_state(sb)
    assert state is not None and state["state"] == "running" and state["lease"]["address"] == address, state
    assert state["lease"]["nameservers"] == [DNS6] and state["lease"]["lease_time"] == LEASE

    # dhcpcd dies: PID 1 starts it again (the backoff's first delay), it confirms the lease.
    pid = state["pid"]
    assert sb.nsenter(["kill", "-9", str(pid)]).returncode == 0  # the pid is the sandbox's
    wait_for("dhcpcd started again", lambda: (s := dhcp6_state(sb)) is not None and s["restarts"] == 1
             and s["pid"] not in (None, pid) and s["state"] == "running", timeout=30, sb=sb)
    sb.wait_journal(lambda r: r.get("event") == "DHCPv6 lease confirmed")
    assert leased6(sb) == {address}

    # dhcp6 off: the client releases the lease and stops; the address and the DNS server go.
    sb.cli("config", "set", f"network.ethernets.{LINK}.dhcp6", "false")
    wait_for("released", lambda: server.count("DHCPRELEASE") >= 1, timeout=15)
    wait_for("the DHCPv6 address removed", lambda: not leased6(sb), timeout=15, sb=sb)
    wait_for("no DHCPv6 client", lambda: dhcp6_state(sb) is None)
    assert sb.stop() == 0
    sb.assert_clean_journal()
