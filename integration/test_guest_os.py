"""The corral OS booted in QEMU (TCG): one boot shared by the tests of this module, in file order.

The first test reads the journal of the whole boot before anything else runs, so its clean-boot assertion
covers exactly the boot. Network config is set live in the tests (`corral config merge/set`), never in the
boot's user-data: the datasource layer is above `cloud-config.yml` and would win over a live change.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from image import busybox
from integration.guest import (
    SHELL_PROMPT,
    USER,
    Guest,
    GuestSpec,
    SshKey,
    boot,
    make_ext4,
    make_ssh_key,
)

pytestmark = pytest.mark.timeout(1800)  # the boot (with its one retry) happens in the first test's setup

DATA_LABEL = "GUESTDATA"
DATA_PATH = "/mnt/guestdata"
BOND_MACS = ("52:54:00:c0:ff:01", "52:54:00:c0:ff:02")  # the two extra NICs of the boot (--nic 2)
DHCP_NIC_MAC = "52:54:00:c0:ff:10"  # hot-plugged, no rule of its own: eth*/en* → DHCP
STATIC_NIC_MAC = "52:54:00:c0:ff:20"  # hot-plugged, matched by MAC → static address
STATIC_NIC_ADDR = "198.18.70.2/24"
HOTPLUG_NET = "10.0.3.0/24"  # the hot-plugged NICs' own QEMU user network (its DHCP server leases .15)
STATE_SIZE = "1G"  # a state disk (/dev/vda, formatted at boot): without one the OS runs from RAM, degraded

# The boot's user-data (a datasource: it wins over `corral config set/merge`, which refuse to change what
# it gives) holds nothing the tests change. No corral.state: the image's own defaults format and mount
# the zeroed state disk, as on `make run`. What the tests build on is set live once the guest is up.
BOOT_CONFIG: dict[str, Any] = {}
LIVE_CONFIG: dict[str, Any] = {
    "hostname": "corral-guest",
    "mounts": [{"match": {"label": DATA_LABEL}, "path": DATA_PATH}],
}


@pytest.fixture(scope="module")
def guest(guest_image: Path, guest_ssh_key: SshKey,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guest]:
    g = boot(tmp_path_factory.mktemp("guest-os"),
             GuestSpec(config=BOOT_CONFIG, nics=len(BOND_MACS), state_disk=STATE_SIZE, out=guest_image),
             guest_ssh_key)
    try:
        g.wait_ssh()
        g.sudo("corral config merge -", input=yaml.safe_dump(LIVE_CONFIG))
        yield g
    finally:
        g.stop()


# ---- helpers ----------------------------------------------------------------------------------------

def problems(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal records that a clean boot must not have: errors, criticals, tracebacks."""
    return [r for r in records if r.get("level") in ("error", "critical") or "traceback" in r
            or "Traceback (most recent call last)" in str(r.get("event", ""))]


def sysfs(g: Guest, path: str) -> str | None:
    """A file under /sys/class/net of the guest (the console shares the host's network namespace)."""
    done = g.ssh(f"cat /sys/class/net/{path}", check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def link_names(g: Guest) -> set[str]:
    return set(g.ssh("ls /sys/class/net").stdout.split())


def net_links(g: Guest) -> dict[str, dict[str, Any]]:
    return {link["name"]: link for link in g.corral("net", "status")["links"]}


def link_by_mac(g: Guest, mac: str) -> dict[str, Any] | None:
    """The NIC with ``mac`` (bonds, VLANs and bridges may copy a member's MAC: not them)."""
    return next((x for x in net_links(g).values()
                 if x["mac"] == mac and x["kind"] not in ("bond", "vlan", "bridge")), None)


def addresses(link: dict[str, Any]) -> set[str]:
    return {a["address"] for a in link["addresses"]}


def merge_config(g: Guest, doc: dict[str, Any]) -> None:
    g.sudo("corral config merge -", input=yaml.safe_dump(doc))


def service_snapshot(g: Guest) -> dict[str, tuple[Any, ...]]:
    """System units by name: (state, restarts, container) — what must not change."""
    return {u["name"]: (u["state"], u["restarts"], u["container"])
            for u in g.corral("units", "list") if u["scope"] == "system"}


# ---- boot -------------------------------------------------------------------------------------------

def test_boot_is_clean(guest: Guest) -> None:
    """Every journal record of the whole boot: no errors, no tracebacks; the boot reached ready."""
    records = guest.journal()
    assert any(re.search(r"corral \S+ ready", str(r.get("event"))) for r in records), \
        "no ready record in the journal"
    bad = problems(records)
    assert not bad, "error records in the journal of the boot:\n" + "\n".join(json.dumps(r) for r in bad)


def test_status_healthy(guest: Guest) -> None:
    status = guest.corral("status")
    assert status["state"] == "ready", status.get("degraded")
    assert status["version"] == guest.version
    assert not status["degraded"]
    assert not status["emergency"]
    assert all(h["failures"] == 0 for h in status["handlers"]), status["handlers"]
    assert status["units"] is not None, "the system dockerd is off"
    units = {u["name"]: u for u in guest.corral("units", "list")}
    assert units["console"]["state"] == "running", units["console"]
    assert units["docker"]["state"] == "running", units["docker"]


def test_system_and_user_docker_answer(guest: Guest) -> None:
    system = guest.sudo("system-docker version --format '{{.Server.Version}}'").stdout.strip()
    user = guest.sudo("docker version --format '{{.Server.Version}}'").stdout.strip()
    assert system and user
    # two daemons, not one: the system one runs the OS's containers, the user one does not
    system_names = guest.sudo("system-docker ps --format '{{.Names}}'").stdout.split()
    assert "console" in system_names
    assert "console" not in guest.sudo("docker ps -a --format '{{.Names}}'").stdout.split()


def test_busybox_ships_in_the_user_dockerd(guest: Guest) -> None:
    """docs/console.md's first command works with no registry: the OS preloads busybox:latest into the user
    dockerd once it answers (handlers/user_images.py)."""
    deadline = time.monotonic() + 120
    while guest.sudo("docker image inspect busybox:latest", check=False).returncode != 0:
        assert time.monotonic() < deadline, guest.corral("status").get("user_docker")
        time.sleep(2)
    assert guest.sudo("docker run --rm busybox echo hi", timeout=180).stdout == "hi\n"
    assert guest.corral("status")["user_docker"]["preload"]["failed"] == {}


def test_user_container_runs(guest: Guest) -> None:
    archive = busybox.ensure()
    guest.sudo("docker load", input=archive.read_bytes(), timeout=180)
    done = guest.sudo(f"docker run --rm {busybox.IMAGE} sh -c 'echo hello from $(hostname -s); uname -r'",
                      timeout=180)
    assert "hello from" in done.stdout


def test_user_containers_get_memory_and_cpu_limits(guest: Guest) -> None:
    """The user dockerd runs in a container with its own cgroup namespace: its image's /cgroup-nest moves
    the container's processes out of its cgroup root, so the user's containers get the v2 controllers
    (without it dockerd logged "failed to enable controllers" and these limits were not applied)."""
    if guest.sudo(f"docker image inspect {busybox.IMAGE}", check=False, timeout=60).returncode != 0:
        guest.sudo("docker load", input=busybox.ensure().read_bytes(), timeout=180)  # run alone (-k)
    done = guest.sudo(f"docker run --rm -m 32m --cpus 0.5 {busybox.IMAGE} "
                      "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max", timeout=180)
    assert done.stdout.splitlines() == ["33554432", "50000 100000"], done
    failed = guest.sudo("corral logs -u docker -g 'failed to enable controllers' -o json", timeout=120)
    assert failed.stdout.strip() == "", failed.stdout


def test_user_docker_rm_all_leaves_the_os_alone(guest: Guest) -> None:
    """Issue 3's user-docker test (skipped on the development host for lack of CAP_SYS_RESOURCE)."""
    guest.sudo(f"docker image inspect {busybox.IMAGE}", timeout=60)  # loaded by the test before
    guest.sudo(f"docker run -d --name doomed {busybox.IMAGE} sleep 1000", timeout=120)
    before = service_snapshot(guest)
    system_before = guest.sudo("system-docker ps -q --no-trunc").stdout.split()
    guest.sudo("sh -c 'docker rm -f $(docker ps -qa)'", timeout=120)
    assert guest.sudo("docker ps -qa").stdout.strip() == ""
    time.sleep(2)  # a wrong reaction (a unit restarted by the policy) would show by now
    assert service_snapshot(guest) == before
    assert guest.sudo("system-docker ps -q --no-trunc").stdout.split() == system_before
    assert guest.corral("status")["state"] == "ready"
    assert guest.sudo("docker version --format '{{.Server.Version}}'").stdout.strip()


# ---- access -------------------------------------------------------------------------------------------

def test_ssh_with_key_from_config(guest: Guest, tmp_path: Path) -> None:
    assert guest.ssh("id -un").stdout.strip() == USER  # key auth only (BatchMode): the key from config
    assert guest.sudo("id -u").stdout.strip() == "0"  # passwordless sudo
    stranger = make_ssh_key(tmp_path / "stranger")  # a key the config does not list
    refused = guest.ssh("true", check=False, timeout=60, key=stranger)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused


def test_serial_login_with_password_from_cmdline(guest: Guest) -> None:
    shown = guest.serial_login()
    assert "job control turned off" not in shown, shown  # the getty gave the shell a controlling tty
    guest.serial_type("echo serial-$((6*7))-$(id -un) $(tty)\n", f"serial-42-{USER} /dev/ttyS0".encode())
    guest.serial_type("exit\n")


def running(guest: Guest, pattern: str) -> list[str]:
    """Processes of the host (the console shares its pid namespace) whose command line matches the
    busybox ``grep -E`` pattern (python's show as ``{corral} /usr/bin/python3 /usr/bin/corral ...``)."""
    done = guest.ssh(f"ps -o pid,args | grep -E {shlex.quote(pattern)} | grep -v grep", check=False)
    return done.stdout.splitlines()


def test_ctrl_c_on_the_serial_console_interrupts_the_command(guest: Guest) -> None:
    """Issue 11: the serial shell has a controlling terminal, so Ctrl-C interrupts the foreground job
    (sleep), and through the `corral` wrapper (sudo, nsenter) the host's corral."""
    guest.serial_login()
    for command, pattern in (("sleep 100", "^ *[0-9]+ sleep 100$"),
                             ("corral logs -f -n 1", "corral logs -f -n 1$")):
        guest.serial_type(f"{command}\n")
        guest.wait_until(lambda p=pattern: running(guest, p), timeout=60, what=f"{command!r} running")
        guest.serial_type("\x03", SHELL_PROMPT, timeout=30)  # the prompt is back long before sleep's 100 s
        guest.serial_type("echo status=$?\n", b"status=130")  # 128 + SIGINT
        assert not running(guest, pattern), f"{command!r} still running after Ctrl-C"
    guest.serial_type("exit\n")


def test_a_signal_to_a_host_command_wrapper_reaches_the_command(guest: Guest) -> None:
    """`corral` in the console (sudo, then nsenter into PID 1's namespaces): SIGTERM or SIGHUP to the
    wrapper's pid ends the host's `corral logs -f` (nothing is left behind) and the wrapper's status is
    the command's (128 + the signal)."""
    follow = "corral logs -f -n 0"
    for prefix, signal_name, status in (("", "TERM", 143), ("", "HUP", 129), ("sudo ", "TERM", 143)):
        script = (f"{prefix}{follow} >/dev/null 2>&1 & w=$!; "
                  f"until ps -o args | grep -q '^[{{]corral[}}].*{follow}$'; do sleep 0.2; done; "
                  f"kill -{signal_name} $w; wait $w; echo status=$?")
        done = guest.ssh(script, timeout=120)
        assert done.stdout.strip() == f"status={status}", (prefix, signal_name, done)
        assert not running(guest, f"{follow}$"), f"{prefix}{follow} left behind after SIG{signal_name}"


def test_hostname_changes_live_everywhere(guest: Guest) -> None:
    """Issue 11: `corral config set hostname` reaches the kernel, the host's /etc/hostname and /etc/hosts
    and the console's, without a restart; sudo resolves the name all along (it warned "unable to resolve
    host" before)."""
    new = "corral-renamed"
    console_restarts = {u["name"]: u for u in guest.corral("units", "list")}["console"]["restarts"]
    # sudo in a loop in the console while the name changes: not one warning
    done = guest.ssh(f"(i=0; while [ $(hostname) != {new} ] && [ $i -lt 1000 ]; do sudo true; i=$((i+1)); "
                     f"done; sudo true) 2>/tmp/sudo.err & sudo corral config set hostname {new}; wait; "
                     "cat /tmp/sudo.err", timeout=300)
    assert "changed: hostname" in done.stdout and "unable to resolve" not in done.stdout + done.stderr, done

    def console_view() -> str:
        return guest.ssh("hostname; cat /etc/hostname; grep ^127.0.1.1 /etc/hosts").stdout

    expected = f"{new}\n{new}\n127.0.1.1\t{new}\n"
    guest.wait_until(lambda: console_view() == expected, timeout=60, what="the console names the new name")
    host = guest.host("busybox sh -c 'busybox hostname; busybox cat /etc/hostname; "
                      "busybox grep ^127.0.1.1 /etc/hosts'").stdout
    assert host == expected
    sudo = guest.ssh("sudo true")
    assert sudo.stderr == "", sudo.stderr
    assert guest.corral("status")["hostname"] == new
    assert {u["name"]: u for u in guest.corral("units", "list")}["console"]["restarts"] == console_restarts


def test_dns_changes_reach_the_console_live(guest: Guest) -> None:
    """A DNS server set at runtime reaches the console's /etc/resolv.conf with no restart (it kept docker's
    copy from its start before: a link to /var/lib/corral/console/resolv.conf now), and goes when unset."""
    server = "198.51.100.53"  # TEST-NET-2: written, never asked

    def views() -> tuple[str, str]:
        return (guest.ssh("cat /etc/resolv.conf").stdout,
                guest.host("busybox cat /etc/resolv.conf").stdout)

    guest.sudo(f"corral config set corral.network.dns.nameservers '[\"{server}\"]'")
    try:
        guest.wait_until(lambda: (v := views())[0] == v[1] and f"nameserver {server}" in v[0], timeout=60,
                         what="the console's resolv.conf names the new server")
    finally:
        guest.sudo("corral config unset corral.network.dns.nameservers")
    guest.wait_until(lambda: (v := views())[0] == v[1] and server not in v[0], timeout=60,
                     what="the console's resolv.conf is the host's again")


# ---- hotplug -------------------------------------------------------------------------------------------

def test_disk_hotplug_mounts_and_unplug_unmounts(guest: Guest, tmp_path: Path) -> None:
    image = make_ext4(tmp_path / "data.img", DATA_LABEL, files={"hello.txt": "from the host\n"})

    def mounted() -> bool:
        return DATA_PATH in guest.sudo("cat /proc/1/mountinfo").stdout.split()

    assert not mounted()
    guest.qmp("add_disk", "hpdisk", image.resolve(), "hotplug-data")
    guest.wait_until(mounted, timeout=60, what=f"{DATA_PATH} mounted")
    assert guest.host(f"cat {DATA_PATH}/hello.txt").stdout == "from the host\n"
    guest.qmp("remove_disk", "hpdisk")
    guest.wait_until(lambda: not mounted(), timeout=60, what=f"{DATA_PATH} unmounted")


def test_nic_hotplug_dhcp_static_and_forgotten(guest: Guest) -> None:
    merge_config(guest, {"corral": {"network": {"interfaces": {
        "eth*": {"dhcp": True},  # as with no rules at all: every NIC, whatever udev names it
        "en*": {"dhcp": True},
        f"mac={STATIC_NIC_MAC}": {"address": STATIC_NIC_ADDR},
    }}}})
    guest.qmp("add_nic", "nicdhcp", DHCP_NIC_MAC, {"net": HOTPLUG_NET})
    guest.qmp("add_nic", "nicstatic", STATIC_NIC_MAC, {"net": HOTPLUG_NET})

    def leased() -> dict[str, Any] | None:
        link = link_by_mac(guest, DHCP_NIC_MAC)
        return link if link and any(a.startswith("10.0.3.") for a in addresses(link)) else None

    dhcp_link = guest.wait_until(leased, timeout=90, what="DHCP lease on the hot-plugged NIC")
    assert any(d.get("lease") for d in dhcp_link["dhcp"]), dhcp_link["dhcp"]

    def static() -> dict[str, Any] | None:
        link = link_by_mac(guest, STATIC_NIC_MAC)
        return link if link and STATIC_NIC_ADDR in addresses(link) else None

    static_link = guest.wait_until(static, timeout=60, what="static address on the NIC matched by MAC")
    assert static_link["rule"]["key"].endswith(f'["mac={STATIC_NIC_MAC}"]'), static_link["rule"]
    names = (dhcp_link["name"], static_link["name"])

    guest.qmp("remove_nic", "nicdhcp")
    guest.qmp("remove_nic", "nicstatic")

    def forgotten() -> bool:
        links = net_links(guest)
        status = guest.corral("net", "status")
        leases = [d for link in links.values() for d in link["dhcp"] if d["link"] in names]
        left = {"links": sorted(set(names) & set(links)), "leases": leases, "pending": status["pending"]}
        if any(left.values()):
            raise AssertionError(f"still there: {left}")  # wait_until keeps it as the last answer
        return True

    guest.wait_until(forgotten, timeout=60, what="the unplugged NICs forgotten")
    assert not set(names) & link_names(guest)


# ---- netconf in the guest's kernel ----------------------------------------------------------------------

USER_CONFIG = "/var/lib/corral/conf/cloud-config.yml"  # what `corral config set/merge` persist

NETPLAN: dict[str, Any] = {
    "version": 2,
    "ethernets": {
        "uplinks-eth": {"match": {"name": "eth*"}, "dhcp4": True},  # as before: every NIC (ssh's too)
        "uplinks-en": {"match": {"name": "en*"}, "dhcp4": True},
        "bond-a": {"match": {"macaddress": BOND_MACS[0]}},
        "bond-b": {"match": {"macaddress": BOND_MACS[1]}},
    },
    "bonds": {"bond0": {"interfaces": ["bond-a", "bond-b"],
                        "parameters": {"mode": "active-backup", "mii-monitor-interval": 100}}},
    "vlans": {"bond0.100": {"id": 100, "link": "bond0", "addresses": ["198.18.71.2/24"]}},
    "bridges": {"br0": {"addresses": ["198.18.72.1/24"]}},
    "dummy-devices": {"corral-dm0": {"addresses": ["198.18.73.1/24"]}},
}


def test_bond_vlan_bridge_dummy_then_removed_live(guest: Guest) -> None:
    # netplan (the only format with dummy devices) in place of the RancherOS interfaces set before
    merge_config(guest, {"corral": {"network": {"interfaces": None}}, "network": NETPLAN})

    def built() -> bool:
        links = net_links(guest)

        def has(name: str, address: str) -> bool:
            return name in links and address in addresses(links[name])

        return (
            (sysfs(guest, "bond0/bonding/mode") or "").startswith("active-backup")
            and len((sysfs(guest, "bond0/bonding/slaves") or "").split()) == 2
            and sysfs(guest, "bond0.100/operstate") is not None
            and sysfs(guest, "br0/bridge/stp_state") is not None
            and has("bond0.100", "198.18.71.2/24")
            and has("br0", "198.18.72.1/24")
            and has("corral-dm0", "198.18.73.1/24")
        )

    guest.wait_until(built, timeout=120, what="bond0 (active-backup, 2 members), bond0.100, br0, dummy")
    links = net_links(guest)
    assert links["bond0"]["kind"] == "bond" and links["bond0.100"]["kind"] == "vlan"
    assert links["br0"]["kind"] == "bridge" and links["corral-dm0"]["kind"] == "dummy"
    assert len([x for x in links.values() if x["master"] == "bond0"]) == 2

    # the config changes live: the netplan document goes (no interfaces configured: the default rules,
    # DHCP on eth*/en*) → what corral made goes away.
    guest.sudo("corral config unset network")
    assert "network" not in (yaml.safe_load(guest.host(f"busybox cat {USER_CONFIG}").stdout) or {})

    def removed() -> bool:
        return not {"bond0", "bond0.100", "br0", "corral-dm0"} & link_names(guest)

    guest.wait_until(removed, timeout=120, what="bond0, bond0.100, br0 and corral-dm0 removed")
    assert not guest.corral("net", "status")["failures"]


def test_docs_examples_that_need_the_booted_os_run_as_shown(guest: Guest, tmp_path: Path) -> None:
    """The examples of README.md and docs/*.md that need the OS (the console's `sudo corral ...`, docker,
    system-docker, disks: integration/docs_examples.py) run in the guest as rancher would type them over
    ssh, each with the exit status its doc shows. What they name is set up first, as the docs assume: a USB
    stick (label USB) whose rule is mounts[0] (docs/storage.md), a user container (docs/units.md's
    `docker rm -f $(docker ps -qa)`)."""
    from integration.docs_examples import all_examples

    examples = [e for e in all_examples() if e.guest]
    assert examples
    stick = make_ext4(tmp_path / "usb.img", "USB")
    merge_config(guest, {"mounts": [{"match": {"label": "USB"}, "path": "/mnt/usb"},
                                    {"match": {"label": DATA_LABEL}, "path": DATA_PATH}]})
    guest.qmp("add_disk", "usbstick", stick.resolve(), "usb-stick")
    guest.wait_until(lambda: "/mnt/usb" in guest.sudo("cat /proc/1/mountinfo").stdout.split(), timeout=60,
                     what="/mnt/usb mounted")
    guest.sudo("docker run -d --name docs-example busybox sleep 600", timeout=180)
    failures = []
    for example in examples:
        command = f"timeout -s INT 3 {example.command}" if example.follows else example.command
        done = guest.ssh(command, check=False, timeout=240)
        status = 0 if example.follows and done.returncode in (0, 124, 130) else done.returncode
        if status != example.exits:
            failures.append(f"{example.where}: `{example.command}` exited {done.returncode} "
                            f"(the doc shows {example.exits}): {done.stderr.strip()[-600:]}")
    guest.qmp("remove_disk", "usbstick")
    assert not failures, f"{len(failures)} of {len(examples)} doc examples fail in the guest:\n" + \
        "\n".join(failures)


def test_journal_has_no_unexpected_errors_after_everything(guest: Guest) -> None:
    """After the hotplug and netconf tests: still no tracebacks anywhere (errors may be expected ones)."""
    tracebacks = [r for r in guest.journal() if "traceback" in r]
    assert not tracebacks, "\n".join(json.dumps(r) for r in tracebacks)
    status = guest.corral("status")
    assert all(h["failures"] == 0 for h in status["handlers"]), status["handlers"]

