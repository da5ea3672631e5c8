"""corral.sysctl: names checked (never out of /proc/sys), the plan (pure), and the keeper against a
directory standing in for /proc/sys (never the host's: see integration/test_modules_sandbox.py for the
real one, in the sandbox's own network namespace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.cloudconfig.sysctl import SANDBOX_SKIP, Skip, SysctlKeeper, Write, parse_sysctl, plan
from supervisor.events.netlink import LinkChanged


def test_names_and_values_are_checked() -> None:
    parsed = parse_sysctl({"corral": {"sysctl": {
        "net.ipv4.ip_forward": 1, "net.ipv4.tcp_rmem": "4096 87380 6291456", "vm.swappiness": "10",
        "net.ipv4.conf.eth0.rp_filter": True,
        "../etc/passwd": 1, "net/ipv4/ip_forward": 1, "net..ipv4": 1, ".net": 1, "kernel.x": "a\nb"}}},
        "f.yml")
    assert parsed.settings == (("net.ipv4.ip_forward", "1"), ("net.ipv4.tcp_rmem", "4096 87380 6291456"),
                               ("vm.swappiness", "10"), ("net.ipv4.conf.eth0.rp_filter", "1"))
    assert parsed.errors == ()
    assert [w.key for w in parsed.warnings] == [
        'corral.sysctl["../etc/passwd"]', 'corral.sysctl["net/ipv4/ip_forward"]',
        'corral.sysctl["net..ipv4"]', 'corral.sysctl[".net"]', 'corral.sysctl["kernel.x"]']
    assert all(w.file == "f.yml" for w in parsed.warnings)


def test_plan_writes_what_differs_and_skips_what_cannot_be() -> None:
    settings = (("net.a", "1"), ("net.b", "4096 87380"), ("net.c", "1"), ("vm.d", "10"))
    observed: dict[str, str | None] = {"net.a": "0\n", "net.b": "4096\t87380\n", "net.c": None,
                                       "vm.d": "60\n"}
    assert plan(settings, observed, sandbox=False) == [
        Write("net.a", "1"), Skip("net.c", "the kernel has no such sysctl"), Write("vm.d", "10")]
    assert plan(settings, observed, sandbox=True) == [
        Write("net.a", "1"), Skip("net.c", "the kernel has no such sysctl"), Skip("vm.d", SANDBOX_SKIP)]


@pytest.fixture
def proc_sys(tmp_path: Path) -> Path:
    for name, value in (("net/ipv4/ip_forward", "0\n"), ("vm/swappiness", "60\n")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(value)
    (tmp_path / "net/ipv4/read_only").mkdir()  # writing it fails, as a refused value does
    return tmp_path


async def test_keeper_applies_reports_and_follows_changes(proc_sys: Path) -> None:
    settings = [("net.ipv4.ip_forward", "1"), ("vm.swappiness", "10"), ("net.ipv4.nope", "1"),
                ("net.ipv4.read_only", "1")]
    reports: list[dict[str, str]] = []
    keeper = SysctlKeeper(lambda: tuple(settings), sandbox=False, root=proc_sys, report=reports.append)
    await keeper.reconcile(full=True)
    assert (proc_sys / "net/ipv4/ip_forward").read_text() == "1\n"
    assert (proc_sys / "vm/swappiness").read_text() == "10\n"
    assert set(reports[-1]) == {"net.ipv4.nope", "net.ipv4.read_only"}
    assert keeper.writes == 2
    await keeper.reconcile(full=True)
    assert keeper.writes == 2  # nothing differs: nothing written
    settings[:] = [("net.ipv4.ip_forward", "0")]
    await keeper.reconcile(full=False)
    assert (proc_sys / "net/ipv4/ip_forward").read_text() == "0\n"
    assert reports[-1] == {}


async def test_a_name_that_comes_later_is_applied_then(proc_sys: Path) -> None:
    """Per-link names (net.ipv4.conf.eth1.*) exist once the link does: a link event wakes the keeper."""
    assert LinkChanged in SysctlKeeper.kinds
    reports: list[dict[str, str]] = []
    keeper = SysctlKeeper(lambda: (("net.ipv4.conf.eth1.forwarding", "1"),), sandbox=False, root=proc_sys,
                          report=reports.append)
    await keeper.reconcile(full=True)
    assert list(reports[-1]) == ["net.ipv4.conf.eth1.forwarding"]
    link = proc_sys / "net/ipv4/conf/eth1/forwarding"
    link.parent.mkdir(parents=True)
    link.write_text("0\n")
    await keeper.reconcile(full=False)
    assert link.read_text() == "1\n" and reports[-1] == {}


async def test_the_sandbox_never_writes_a_host_global_sysctl(proc_sys: Path) -> None:
    keeper = SysctlKeeper(lambda: (("vm.swappiness", "10"), ("net.ipv4.ip_forward", "1")), sandbox=True,
                          root=proc_sys)
    await keeper.reconcile(full=True)
    assert (proc_sys / "vm/swappiness").read_text() == "60\n"
    assert (proc_sys / "net/ipv4/ip_forward").read_text() == "1\n"
    assert keeper.status()["not_applied"] == {"vm.swappiness": SANDBOX_SKIP}
