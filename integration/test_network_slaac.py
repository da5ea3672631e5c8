"""IPv6 SLAAC through the kernel's router-advertisement handling, against a real router: dnsmasq sending
router advertisements (``--enable-ra``, a prefix ``ra-only``) in a peer namespace. netplan's
``accept-ra`` sets the link's ``accept_ra`` (0, or 2: accepted even while the host forwards IPv6)
before the link goes up; with it off the link gets no address from the router, with it on the kernel
configures one from the advertised prefix, and so does ``dhcp6: true`` (whose DHCPv6 client,
integration/test_network_dhcp6.py, finds no DHCPv6 server here). And ``link-local: []``: no IPv6
link-local address."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.netns import NetNS, unavailable
from integration.sandbox import Sandbox
from integration.test_network import FAST, addresses, link_info, make_nic, plug, ready, wait_for

PREFIX = "2001:db8:63:0:"


class Router:
    """dnsmasq sending router advertisements for 2001:db8:63::/64 on one link, and nothing else."""

    def __init__(self, ns: NetNS, dev: str, directory: Path) -> None:
        self.ns, self.dev = ns, dev
        self.log = directory / "dnsmasq-ra.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [
            "ip", "netns", "exec", self.ns.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
            "--port=0", f"--interface={self.dev}", "--bind-interfaces", "--user=root", "--pid-file=",
            f"--log-facility={self.log}", "--enable-ra", "--dhcp-range=2001:db8:63::,ra-only,64,1h",
            f"--ra-param={self.dev},4",  # an advertisement every 4 s, not only on solicitation
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("dnsmasq advertising", lambda: "router advertisement enabled" in self.text(), timeout=10)

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

    def adverts(self) -> int:
        return sum(1 for line in self.text().splitlines() if "RTR-ADVERT" in line)


@pytest.fixture
def router(make_netns: Callable[..., NetNS], tmp_path: Path) -> Iterator[tuple[NetNS, Router]]:
    if shutil.which("dnsmasq") is None:
        unavailable("dnsmasq is not installed")
    ns = make_netns()
    make_nic(ns, "eth3", "rtr3")
    ns.ip("addr", "add", "2001:db8:63::1/64", "dev", "rtr3", "nodad")
    server = Router(ns, "rtr3", tmp_path)
    server.start()
    try:
        yield ns, server
    finally:
        server.stop()


def slaac(sb: Sandbox, dev: str) -> set[str]:
    return {a for a in addresses(sb, dev) if a.startswith(PREFIX)}


def accept_ra(sb: Sandbox, dev: str) -> str:
    return sysctl(sb, dev, "accept_ra")


def sysctl(sb: Sandbox, dev: str, name: str) -> str:
    """The link's IPv6 setting as the sandbox's network namespace has it ('' while the link is not there)."""
    path = f"/proc/sys/net/ipv6/conf/{dev}/{name}"
    out = subprocess.run(["nsenter", "-t", str(sb.pid1), "-n", "cat", path],
                         capture_output=True, text=True, timeout=30, check=False)
    return out.stdout.strip()


@pytest.mark.timeout(240)
def test_accept_ra_off_then_on_gives_a_slaac_address(sandbox: Any, router: tuple[NetNS, Router]) -> None:
    ns, server = router
    sb: Sandbox = sandbox({"corral": FAST, "network": {"ethernets": {"eth3": {"accept-ra": False}}}})
    ready(sb)
    plug(ns, sb, "eth3")
    wait_for("eth3 up with accept_ra 0", lambda: accept_ra(sb, "eth3") == "0"
             and any(a.startswith("fe80:") for a in addresses(sb, "eth3")), sb=sb)
    seen = server.adverts()
    # dnsmasq's interval is 4 s, but after the link's carrier change it may wait longer before its next
    # unsolicited advertisement: a generous bound, and its own log in the failure if it never comes
    try:
        wait_for("two router advertisements since", lambda: server.adverts() >= seen + 2, timeout=90, sb=sb)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- dnsmasq's log ---\n{server.text()[-4000:]}") from None
    assert slaac(sb, "eth3") == set()  # the router was heard, and ignored

    sb.cli("config", "set", "network.ethernets.eth3.accept-ra", "true")
    wait_for("accept_ra 2 and an address from the router's prefix",
             lambda: accept_ra(sb, "eth3") == "2" and slaac(sb, "eth3"), timeout=30, sb=sb)
    [address] = slaac(sb, "eth3")
    assert address.endswith("/64")
    assert sb.stop() == 0
    sb.assert_clean_journal()


@pytest.mark.timeout(120)
def test_dhcp6_brings_slaac_up(sandbox: Any, router: tuple[NetNS, Router]) -> None:
    ns, _ = router
    sb: Sandbox = sandbox({"corral": FAST, "network": {"ethernets": {"eth3": {"dhcp6": True}}}})
    status = sb.wait_ready()
    assert status["state"] == "ready" and "network" in status["boot_phases"], status
    assert status["config"]["warnings"] == []
    plug(ns, sb, "eth3")
    wait_for("an address from the router's prefix", lambda: accept_ra(sb, "eth3") == "2"
             and slaac(sb, "eth3"), timeout=30, sb=sb)
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_link_local_empty_means_no_ipv6_link_local_address(
    sandbox: Any, make_netns: Callable[..., NetNS]
) -> None:
    """netplan's ``link-local: []``: ``addr_gen_mode`` 1 before the link goes up, so the kernel makes
    no fe80:: address on it; the link beside it, without the key, has one."""
    ns = make_netns()
    make_nic(ns, "eth4", "peer4")
    make_nic(ns, "eth5", "peer5")
    sb: Sandbox = sandbox({"corral": FAST, "network": {"ethernets": {
        "eth4": {"link-local": [], "addresses": ["198.18.64.2/24"]},
        "eth5": {"addresses": ["198.18.65.2/24"]},
    }}})
    ready(sb)
    plug(ns, sb, "eth4")
    plug(ns, sb, "eth5")
    wait_for("both configured and up, eth5 with its link-local address", lambda: "198.18.64.2/24"
             in addresses(sb, "eth4") and any(a.startswith("fe80:") for a in addresses(sb, "eth5"))
             and "LOWER_UP" in link_info(sb, "eth4")["flags"], sb=sb)
    assert not any(a.startswith("fe80:") for a in addresses(sb, "eth4")), addresses(sb, "eth4")
    assert sysctl(sb, "eth4", "addr_gen_mode") == "1"
    assert sb.stop() == 0
    sb.assert_clean_journal()
