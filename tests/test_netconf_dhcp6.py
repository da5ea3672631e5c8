"""DHCPv6 (netconf/dhcp6.py): dhcpcd's hook events read into leases, and what a DHCPv6 lease brings in the
plan (pure; the real dhcpcd against a real server is integration/test_network_dhcp6.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from test_netconf_sim import config, converge, nics

from netconf.desired import Desired
from netconf.dhcp6 import CONFIG, HOOK, MARK, MAX_EVENT, Dhcp6Manager, Lease6, argv_for, lease6, parse_event
from netconf.model import DhcpOptions, Dns
from netconf.observed import DhcpClient, DhcpLease, Observed
from netconf.ops import AddAddress, RemoveAddress, SetIPv6, SetUp, StartDhcp, StopDhcp, WriteDns
from netconf.plan import desired_dns, plan
from supervisor.bus import Bus
from supervisor.events.netlink import DhcpLeaseChanged
from supervisor.process import ProcessManager

# What dhcpcd 9.4.1 (Debian's dhcpcd-base) put in its hook's environment for a BOUND6 from dnsmasq 2.90
# (``--dhcp-range=...,64,2m``, a DNS server and a search domain), as integration/test_network_dhcp6.py
# sees it.
BOUND6 = {
    "reason": "BOUND6",
    "interface": "eth6",
    "protocol": "dhcp6",
    "new_dhcp6_client_id": "000300019a7a2d0facae",
    "new_dhcp6_domain_search": "corp6.example",
    "new_dhcp6_ia_na1_ia_addr1": "2001:db8:66::1b6",
    "new_dhcp6_ia_na1_ia_addr1_pltime": "100",
    "new_dhcp6_ia_na1_ia_addr1_vltime": "120",
    "new_dhcp6_ia_na1_iaid": "2d0facae",
    "new_dhcp6_ia_na1_t1": "60",
    "new_dhcp6_ia_na1_t2": "105",
    "new_dhcp6_name_servers": "2001:db8:66::53",
    "new_dhcp6_server_id": "0001000132a9a00812679d387de6",
    "new_dhcp6_status_code": "0",
}
A6 = ipaddress.IPv6Interface("2001:db8:66::1b6/128")
DNS6 = ipaddress.IPv6Address("2001:db8:66::53")
ETH0 = "network: {version: 2, ethernets: {eth0: {%s}}}"
DHCP6 = ETH0 % "dhcp6: true"


def line(event: dict[str, str]) -> bytes:
    return (MARK + json.dumps(event) + "\n").encode()


def test_the_hooks_line_is_read_and_anything_else_is_not_an_event() -> None:
    assert parse_event(line(BOUND6)) == BOUND6
    assert parse_event(b"eth6: soliciting a DHCPv6 lease\n") is None
    assert parse_event(MARK.encode() + b"{not json\n") is None
    assert parse_event(MARK.encode() + b"[1, 2]\n") is None
    assert parse_event(line({"reason": "BOUND6", "x": 1})) == {"reason": "BOUND6"}  # type: ignore[dict-item]
    huge = line({"reason": "BOUND6", "new_dhcp6_domain_search": "a" * MAX_EVENT})
    assert parse_event(huge) is None


def test_a_bound_lease_brings_its_address_lifetimes_dns_and_domains() -> None:
    lease = lease6(BOUND6, now=1000.0, mono=50.0)
    assert lease == Lease6(A6, (DNS6,), ("corp6.example",), "0001000132a9a00812679d387de6", valid=120,
                           preferred=100, obtained=1000.0, ends=170.0)
    assert lease.expires == 1120.0
    assert lease.held("eth6") == DhcpLease("eth6", 6, A6, None, (DNS6,), ("corp6.example",), expires=170.0,
                                           preferred=150.0)


def test_odd_values_in_a_lease_are_left_out() -> None:
    odd = {**BOUND6, "new_dhcp6_ia_na1_ia_addr1": "fe80::1",
           "new_dhcp6_name_servers": "bogus 2001:db8::9 10.0.0.1",
           "new_dhcp6_domain_search": "a.example. b.example a.example"}
    lease = lease6(odd, now=0.0, mono=0.0)
    assert lease.address is None and lease.valid is None and lease.ends is None  # link-local: not a lease's
    assert lease.nameservers == (ipaddress.IPv6Address("2001:db8::9"),)
    assert lease.search == ("a.example", "b.example")
    forever = lease6({**BOUND6, "new_dhcp6_ia_na1_ia_addr1_vltime": "4294967295"}, now=0.0, mono=0.0)
    assert forever.address == A6 and forever.valid is None and forever.ends is None
    stateless = lease6({"reason": "INFORM6", "new_dhcp6_name_servers": "2001:db8:66::53"}, now=0.0, mono=0.0)
    assert stateless.address is None and stateless.nameservers == (DNS6,)


def test_dhcpcd_gets_only_the_checked_interface_name_from_the_config(tmp_path: Path) -> None:
    argv = argv_for("eth6", tmp_path / "c", tmp_path / "h")
    assert argv == ["/usr/sbin/dhcpcd", "--nobackground", "--noconfigure", "--ipv6only", "--config",
                    str(tmp_path / "c"), "--script", str(tmp_path / "h"), "eth6"]
    for bad in ("-k", "--release", "eth 0", "a/b", "x" * 16, ""):
        with pytest.raises(ValueError):
            argv_for(bad, tmp_path / "c", tmp_path / "h")
    assert "noipv6rs" in CONFIG and "ia_na" in CONFIG and "persistent" in CONFIG
    assert MARK in HOOK.format(python="/usr/bin/python3", mark=MARK)


def test_dhcp6_starts_the_client_and_its_lease_brings_a_128_with_its_lifetime_and_dns() -> None:
    desired = config(DHCP6)
    ops, state = converge(desired, Observed(links=nics("eth0")))
    assert ops == [SetIPv6("eth0", "accept_ra", 2), SetUp("eth0"), StartDhcp("eth0", 6, DhcpOptions())]
    held = DhcpLease("eth0", 6, A6, None, (DNS6,), ("corp6.example",), expires=500.0, preferred=400.0)
    ops, after = converge(Desired(desired, (held,)), state)
    assert ops == [AddAddress("eth0", A6, lease=True, expires=500.0, preferred=400.0),
                   WriteDns((DNS6,), ("corp6.example",))]  # no route: IPv6's default comes from the RA
    assert after.owned.addresses == {("eth0", A6)}
    assert plan(Desired(desired, (held,)), after) == []
    # a renewal moves the address's lifetime with the lease
    renewed = DhcpLease("eth0", 6, A6, None, (DNS6,), ("corp6.example",), expires=700.0)
    assert plan(Desired(desired, (renewed,)), after) == [AddAddress("eth0", A6, lease=True, expires=700.0)]


def test_dhcp6_off_stops_the_client_and_the_leases_address_goes() -> None:
    held = DhcpLease("eth0", 6, A6, None, (DNS6,), expires=500.0)
    _, started = converge(config(DHCP6), Observed(links=nics("eth0")))
    _, state = converge(Desired(config(DHCP6), (held,)), started)
    off = config("network: {version: 2, ethernets: {eth0: {dhcp6: false}}}")
    ops = plan(Desired(off, (held,)), state)  # the release is under way: the lease no longer counts
    assert ops[:2] == [StopDhcp("eth0", 6), RemoveAddress("eth0", A6)]


def test_the_configs_dns_and_use_dns_false_win_over_a_dhcpv6_lease() -> None:
    held = DhcpLease("eth0", 6, A6, None, (DNS6,), ("corp6.example",), expires=500.0)
    obs = Observed(links=nics("eth0"))
    assert desired_dns(Desired(config(DHCP6), (held,)), obs) == Dns((DNS6,), ("corp6.example",))
    no_dns = config(ETH0 % "dhcp6: true, dhcp6-overrides: {use-dns: false}")
    assert desired_dns(Desired(no_dns, (held,)), obs) is None
    own = config(ETH0 % "dhcp6: true, nameservers: {addresses: [2001:db8::1]}")
    assert desired_dns(Desired(own, (held,)), obs) == Dns((ipaddress.IPv6Address("2001:db8::1"),), ())
    # the config's own address with the lease's IP wins: no lease address then
    static = config(ETH0 % "dhcp6: true, addresses: [2001:db8:66::1b6/64]")
    ops, _ = converge(Desired(static, (held,)), Observed(links=nics("eth0")))
    assert not any(isinstance(op, AddAddress) and op.lease for op in ops)


# -- the supervision, with a stand-in for dhcpcd that runs corral's real hook ------------------------------

FAKE_DHCPCD = """\
#!{python}
# Stands in for dhcpcd: runs the hook it is given as dhcpcd would (a BOUND6, RELEASE6 on SIGALRM), and
# exits once after binding when told to (a file beside it), so that PID 1 starts it again.
import os, signal, subprocess, sys, time
args = sys.argv[1:]
assert "--noconfigure" in args and "--nobackground" in args, args
hook, link = args[args.index("--script") + 1], args[-1]
def run(reason, **values):
    subprocess.run([hook], env={{"reason": reason, "interface": link, **values}}, check=True)
def release(*_):
    run("RELEASE6")
    sys.exit(0)
signal.signal(signal.SIGALRM, release)
run("PREINIT")
print(link + ": soliciting a DHCPv6 lease", file=sys.stderr, flush=True)
run("BOUND6", new_dhcp6_ia_na1_ia_addr1="2001:db8::5", new_dhcp6_ia_na1_ia_addr1_vltime="300",
    new_dhcp6_ia_na1_ia_addr1_pltime="200", new_dhcp6_name_servers="2001:db8::53",
    new_dhcp6_domain_search="corp6.example")
die = sys.argv[0] + ".die"
if os.path.exists(die):
    os.unlink(die)
    sys.exit(3)
while True:
    time.sleep(1)
"""


async def wait_until(predicate: Callable[[], object], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def processes() -> AsyncIterator[ProcessManager]:
    pm = ProcessManager()
    pm.attach(asyncio.get_running_loop())
    yield pm
    await pm.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def test_the_lease_comes_through_the_hook_dhcpcd_is_restarted_and_released(
    tmp_path: Path, processes: ProcessManager
) -> None:
    fake = tmp_path / "dhcpcd"
    fake.write_text(FAKE_DHCPCD.format(python=sys.executable))
    fake.chmod(0o755)
    (tmp_path / "dhcpcd.die").touch()
    bus = Bus()
    events = bus.subscribe("test", DhcpLeaseChanged)
    m = Dhcp6Manager(bus, processes, tmp_path / "run", program=str(fake))
    await m.start("eth6", DhcpOptions())
    assert m.clients() == (DhcpClient("eth6", 6, DhcpOptions()),)
    await wait_until(lambda: m.leases())
    [held] = m.leases()
    assert (held.link, held.family, held.address, held.nameservers, held.search) == (
        "eth6", 6, ipaddress.IPv6Interface("2001:db8::5/128"), (ipaddress.IPv6Address("2001:db8::53"),),
        ("corp6.example",))
    event = await asyncio.wait_for(events.get(), 5)
    assert isinstance(event, DhcpLeaseChanged) and (event.state, event.family, event.lease_time) == (
        "bound", 6, 300)
    # it exits (status 3): started again after the backoff's first delay, and binds again
    await wait_until(lambda: m.status()["eth6/6"]["restarts"] == 1)
    assert [le.address for le in m.leases()] == [held.address]  # kept while dhcpcd is down
    again = await asyncio.wait_for(events.get(), 10)
    assert isinstance(again, DhcpLeaseChanged) and again.state == "bound"
    assert m.status()["eth6/6"]["state"] == "running"
    # the config no longer wants it: SIGALRM, dhcpcd releases (its hook says RELEASE6) and exits
    await m.stop("eth6", release=True)
    assert m.clients() == () and m.leases() == ()
    states = []
    while (e := events.get_nowait()) is not None:
        assert isinstance(e, DhcpLeaseChanged)
        states.append(e.state)
    assert states == ["released"], states
    assert (tmp_path / "run" / "dhcpcd6.conf").read_text() == CONFIG
