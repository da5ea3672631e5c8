"""The test fixtures themselves: namespaces, veth pairs, a private dockerd, and that they leave no trace."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.dockerd import IMAGE_CACHE, TEST_IMAGE, Dockerd, dockerd_factory
from integration.netns import (
    NetNS,
    create_netns,
    host_net_snapshot,
    list_netns,
    netns_factory,
    sweep_stale,
    unavailable,
    veth_pair,
)


def ping(ns: NetNS, address: str) -> subprocess.CompletedProcess[str]:
    if Path("/bin/busybox").exists():
        argv = ["/bin/busybox", "ping"]
    elif shutil.which("ping"):
        argv = ["ping"]
    else:
        unavailable("no ping: busybox-static is not installed (`make venv` installs it)")
    return ns.run([*argv, "-c", "1", "-W", "2", address], check=False)


def same_netns(pid: int, ns: NetNS) -> bool:
    return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(ns.path).st_ino


def host_run_entries() -> set[str]:
    return set(os.listdir("/run"))


# -- network namespaces --------------------------------------------------------------------------------


def test_netns_is_named_has_lo_up_and_runs_commands(netns: NetNS) -> None:
    assert netns.name.startswith(f"corral-test-{os.getpid()}-")
    assert netns.path == Path("/run/netns") / netns.name and netns.path.exists()
    assert netns.links() == ["lo"]
    assert "UP" in netns.ip("-o", "link", "show", "lo").stdout.split(">")[0]
    assert "127.0.0.1/8" in netns.run(["ip", "-o", "addr", "show", "lo"]).stdout
    assert netns.run(["false"], check=False).returncode == 1


def test_veth_pair_connects_two_namespaces(make_netns: Callable[..., NetNS]) -> None:
    before = host_net_snapshot()
    a, b = make_netns(), make_netns()
    pair = veth_pair(a, b, "ct-a", "ct-b", addr_a="198.18.0.1/24", addr_b="198.18.0.2/24")
    assert pair.names == ("ct-a", "ct-b")
    assert pair.a.netns is a and pair.b.netns is b
    assert pair.a.ip == "198.18.0.1" and pair.b.ip == "198.18.0.2"
    assert len(set(pair.macs)) == 2 and all(len(m.split(":")) == 6 for m in pair.macs)
    assert a.links() == ["lo", "ct-a"] and b.links() == ["lo", "ct-b"]
    assert ping(a, "198.18.0.2").returncode == 0
    assert ping(b, "198.18.0.1").returncode == 0
    assert a.mac("ct-a") == pair.a.mac
    # Both ends live only in the test namespaces: the host saw nothing.
    assert host_net_snapshot() == before


def test_veth_pair_without_addresses_and_bad_names(make_netns: Callable[..., NetNS]) -> None:
    a, b = make_netns(), make_netns()
    pair = veth_pair(a, b, "x" * 15, "y", up=False)
    assert pair.a.address is None and pair.a.ip is None
    assert "UP" not in a.ip("-o", "link", "show", "x" * 15).stdout.split(">")[0]
    with pytest.raises(ValueError):
        veth_pair(a, b, "x" * 16, "z")


def test_netns_delete_kills_what_runs_inside_and_is_idempotent() -> None:
    ns = create_netns()
    try:
        sleeper = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "600"])
        deadline = time.monotonic() + 5
        while sleeper.pid not in ns.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sleeper.pid in ns.pids()
    finally:
        ns.delete()
    assert sleeper.wait(5) == -signal.SIGTERM
    assert not ns.exists() and ns.name not in list_netns()
    ns.delete()  # a second delete is harmless


def test_factory_cleans_up_even_when_the_test_body_fails() -> None:
    before = host_net_snapshot()
    made: list[NetNS] = []
    with pytest.raises(RuntimeError, match="boom"), netns_factory() as make:
        a, b = make(), make()
        made += [a, b]
        veth_pair(a, b, "ct-a", "ct-b", addr_a="198.18.1.1/30", addr_b="198.18.1.2/30")
        raise RuntimeError("boom")
    assert made and not any(ns.exists() for ns in made)
    assert host_net_snapshot() == before


def test_sweep_removes_namespaces_of_dead_runs_only(netns: NetNS) -> None:
    proc = subprocess.Popen(["true"])  # its pid is dead once waited for
    proc.wait()
    stale = create_netns(f"corral-test-{proc.pid}-0badcafe")
    try:
        removed = sweep_stale()
        assert stale.name in removed
        assert not stale.exists()
        assert netns.exists()  # ours: its pid is alive
    finally:
        stale.delete()


# -- private dockerd -----------------------------------------------------------------------------------


@pytest.mark.docker
def test_dockerd_answers_ping_inside_its_namespace(dockerd: Dockerd) -> None:
    assert dockerd.ping()
    version = dockerd.api_json("/version")
    assert isinstance(version, dict) and version["Version"].startswith("20.10")
    assert int((dockerd.root / "docker.pid").read_text()) == dockerd.pid
    assert same_netns(dockerd.pid, dockerd.netns)
    assert (dockerd.root / "exec" / "containerd" / "containerd.sock").is_socket()  # its own containerd
    assert dockerd.bridge in dockerd.netns.links()
    info = dockerd.docker(["info", "--format", "{{.DockerRootDir}} {{.Driver}}"]).stdout.split()
    assert info[0] == str(dockerd.root / "data")
    print(f"dockerd answered /_ping {dockerd.start_seconds:.2f} s after start")


@pytest.mark.docker
def test_docker_run_prints_hi(dockerd: Dockerd) -> None:
    assert IMAGE_CACHE.exists()
    out = dockerd.docker(["run", "--rm", TEST_IMAGE, "echo", "hi"])
    assert out.stdout == "hi\n"


@pytest.mark.docker
def test_containers_are_networked_inside_the_test_namespace(dockerd: Dockerd) -> None:
    script = f"ip -o -4 addr show eth0; cat /etc/resolv.conf; ping -c 1 -W 2 {dockerd.gateway}"
    out = dockerd.docker(["run", "--rm", TEST_IMAGE, "sh", "-c", script]).stdout
    assert "inet 198.19.0." in out
    assert f"nameserver {dockerd.gateway}" in out
    assert "1 packets received" in out
    nat = dockerd.netns.run(["iptables", "-t", "nat", "-S", "POSTROUTING"]).stdout
    assert f"-s {dockerd.subnet}" in nat  # docker's iptables rules went into the namespace's tables
    assert dockerd.netns.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip() == "1"


@pytest.mark.docker
def test_dockerd_leaves_no_trace(make_netns: Callable[..., NetNS]) -> None:
    before, run_before = host_net_snapshot(), host_run_entries()
    with dockerd_factory(make_netns) as make:
        d = make()
        d.docker(["run", "-d", "--name", "sleeper", TEST_IMAGE, "sleep", "600"])
        assert d.docker(["ps", "-q"]).stdout.strip()
        assert d.cgroup_dirs(), "containers run under the daemon's own cgroup parent"
        pid, root, cgroups = d.pid, d.root, d.cgroup_dirs()
    assert not Path(f"/proc/{pid}").exists()
    assert not root.exists()
    assert not any(c.exists() for c in cgroups)
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    assert not d.leftover_pids()
    assert host_net_snapshot() == before
    assert "docker0" not in before["link"] + host_net_snapshot()["link"]
    assert host_run_entries() <= run_before | {"netns"}


@pytest.mark.docker
def test_teardown_cleans_up_after_a_killed_daemon(make_netns: Callable[..., NetNS]) -> None:
    with dockerd_factory(make_netns) as make:
        d = make()
        d.docker(["run", "-d", TEST_IMAGE, "sleep", "600"])
        os.kill(d.pid, signal.SIGKILL)  # containerd, the shim and the container outlive it
        d.process.wait(5)
        assert d.leftover_pids()
    assert not d.leftover_pids()
    assert not d.root.exists()
    assert not any(c.exists() for c in d.cgroup_dirs())


@pytest.mark.docker
def test_two_daemons_run_side_by_side(make_dockerd: Callable[..., Dockerd]) -> None:
    a, b = make_dockerd(load_image=False), make_dockerd(load_image=False)
    assert a.netns.name != b.netns.name and a.socket != b.socket
    assert a.ping() and b.ping()
    a.docker(["network", "create", "only-in-a"])
    assert "only-in-a" not in b.docker(["network", "ls", "--format", "{{.Name}}"]).stdout
