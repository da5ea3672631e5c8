"""The disk datasources through the real PID 1 (the sandbox), on real block devices: loop devices on
images made here, labelled ``cidata`` (NoCloud) and ``config-2`` (OpenStack ConfigDrive), found by label,
mounted read-only, read and unmounted by storage/media.py; the hostname, the SSH keys and the network
they give applied. ext4 images (``mkfs.ext4 -d`` fills them without a mount): the host kernel these tests
run on may lack vfat and iso9660, which the guest's kernel has (image/definition.yml); the reader mounts
whatever filesystem type the label is on."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.netns import NetNS
from integration.sandbox import Sandbox
from integration.test_network import FAST, addresses, make_nic, plug, sb_ip, wait_for
from integration.test_storage import Loops, need_root_and_tools

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDatasourceTestKeyOnlyForThisTest datasource@test"
MAC = "fa:16:3e:5e:ed:01"
NOCLOUD_MAC = "52:54:00:5e:ed:02"


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    need_root_and_tools()
    directory = tmp_path / "images"
    directory.mkdir()
    made = Loops(directory)
    yield made
    made.cleanup()


@pytest.fixture
def testns(make_netns: Callable[..., NetNS]) -> NetNS:
    return make_netns()


def seed_image(loops: Loops, name: str, label: str, files: dict[str, str]) -> Path:
    """An ext4 image labelled ``label`` holding ``files`` (relative path -> text)."""
    content = loops.root / f"{name}.d"
    for rel, text in files.items():
        (content / rel).parent.mkdir(parents=True, exist_ok=True)
        (content / rel).write_text(text)
    image = loops.root / f"{name}.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(content), str(image)], check=True,
                   capture_output=True)
    loops.images.append(image)
    return image


def journal_line(sb: Sandbox, prefix: str) -> str:
    line = sb.wait_journal(lambda m: str(m.get("event", "")).startswith(prefix))
    return str(line["event"])


def keys_file(sb: Sandbox) -> Path:
    return sb.dir / "var/lib/corral/console/authorized_keys"


def link_mtu(sb: Sandbox, name: str) -> int:
    [info] = json.loads(sb_ip(sb, "-j", "link", "show", "dev", name).stdout)
    return int(info["mtu"])


def not_mounted(sb: Sandbox, dev: str) -> bool:
    return f" {dev} " not in Path(f"/proc/{sb.pid1}/mountinfo").read_text()


def test_nocloud_disk_gives_hostname_keys_and_network(sandbox: Any, loops: Loops, testns: NetNS) -> None:
    # cloud-init's wrapper-less network-config v2 (its NoCloud docs' example, our addresses)
    network = (f"version: 2\nethernets:\n  interface0:\n    match:\n      macaddress: '{NOCLOUD_MAC}'\n"
               "    addresses: [198.18.55.10/24]\n    mtu: 1300\n")
    dev = loops.attach(seed_image(loops, "seed", "cidata", {
        "user-data": "#cloud-config\ncorral:\n  log: {level: debug}\n",
        "meta-data": f"instance-id: iid-sandbox-1\nlocal-hostname: nocloud-host\npublic-keys:\n  - {KEY}\n",
        "network-config": network,
    }), read_only=True)
    sb: Sandbox = sandbox({"corral": FAST}, cmdline="corral.cloud_init.datasources=[nocloud]")
    status = sb.wait_ready()
    assert status["state"] == "ready", status
    assert status["hostname"] == "nocloud-host"
    line = journal_line(sb, "datasource nocloud:")
    assert line == (f"datasource nocloud: {dev} (label cidata): user-data, meta-data, network-config "
                    "(instance-id iid-sandbox-1)")
    assert sb.cli("config", "get", "corral.log.level").stdout.strip() == "debug"
    wait_for("the key written", lambda: keys_file(sb).exists() and KEY in keys_file(sb).read_text(), sb=sb)
    make_nic(testns, "ncnic", "peer-ncnic", mac=NOCLOUD_MAC)
    plug(testns, sb, "ncnic")  # the NIC network-config names by its MAC address
    wait_for("the NIC configured from network-config", lambda: "198.18.55.10/24" in addresses(sb, "ncnic"),
             sb=sb)
    assert link_mtu(sb, "ncnic") == 1300
    assert not_mounted(sb, dev)  # read, then unmounted
    assert sb.stop() == 0


def test_configdrive_disk_gives_hostname_keys_and_network(sandbox: Any, loops: Loops, testns: NetNS) -> None:
    meta = json.dumps({"uuid": "0c2f1d2e-sandbox", "hostname": "configdrive-host", "name": "cd",
                       "public_keys": {"mykey": KEY}})
    net = json.dumps({
        "links": [{"id": "tap1", "type": "ovs", "ethernet_mac_address": MAC, "mtu": 1400}],
        "networks": [{"id": "n0", "link": "tap1", "type": "ipv4", "ip_address": "198.18.56.10",
                      "netmask": "255.255.255.0", "routes": [
                          {"network": "198.18.57.0", "netmask": "255.255.255.0", "gateway": "198.18.56.1"}]}],
        "services": [{"type": "dns", "address": "198.18.56.53"}],
    })
    dev = loops.attach(seed_image(loops, "drive", "config-2", {
        "openstack/latest/meta_data.json": meta,
        "openstack/latest/network_data.json": net,
        "openstack/latest/user_data": "#cloud-config\ncorral:\n  log: {level: debug}\n",
    }), read_only=True)
    sb: Sandbox = sandbox({"corral": FAST}, cmdline="rancher.cloud_init.datasources=[configdrive]")
    status = sb.wait_ready()
    assert status["state"] == "ready", status
    assert status["hostname"] == "configdrive-host"
    assert journal_line(sb, "datasource configdrive:") == (
        f"datasource configdrive: {dev} (label config-2): user_data, meta_data.json, network_data.json "
        "(uuid 0c2f1d2e-sandbox)")
    wait_for("the key written", lambda: keys_file(sb).exists() and KEY in keys_file(sb).read_text(), sb=sb)
    make_nic(testns, "cdnic", "peer-cdnic", mac=MAC)
    plug(testns, sb, "cdnic")  # the NIC with the link's MAC address
    wait_for("the NIC configured from network_data.json", lambda: "198.18.56.10/24" in addresses(sb, "cdnic"),
             sb=sb)
    assert link_mtu(sb, "cdnic") == 1400
    wait_for("its route", lambda: "198.18.57.0/24 via 198.18.56.1" in sb_ip(sb, "route").stdout, sb=sb)
    assert not_mounted(sb, dev)
    assert sb.stop() == 0


def test_nothing_found_is_a_warning_and_the_boot_goes_on(sandbox: Any, loops: Loops) -> None:
    sb: Sandbox = sandbox({"corral": {"cloud_init": {"wait": 1}}},
                          cmdline="corral.cloud_init.datasources=[nocloud] corral.log.level=debug")
    status = sb.wait_ready()
    assert "datasources" in status["boot_phases"]
    assert any(w.startswith("nocloud: ") and w.endswith("no device labelled cidata or CIDATA after waiting "
                                                        "1 s: skipped") for w in status["config"]["warnings"])
    assert journal_line(sb, "datasource nocloud: nothing") == (
        "datasource nocloud: nothing found (no device labelled cidata or CIDATA after waiting 1 s)")
    assert sb.cli("config", "get", "corral.log.level").stdout.strip() == "debug"  # the rest applied
    assert sb.stop() == 0


def test_a_device_that_comes_late_is_waited_for(sandbox: Any, loops: Loops) -> None:
    image = seed_image(loops, "late", "cidata", {"meta-data": "local-hostname: late-host\n"})
    sb: Sandbox = sandbox({"corral": {"cloud_init": {"wait": 60}}},
                          cmdline="corral.cloud_init.datasources=[nocloud]")
    # the journal reaches its file after the wait: the console shows the line as it comes
    first_look = "nocloud: no device labelled cidata or CIDATA yet"
    wait_for("the first look", lambda: first_look in sb.console_text(), sb=sb)
    dev = loops.attach(image, read_only=True)  # while the datasources phase waits
    status = sb.wait_ready()
    assert status["hostname"] == "late-host"
    assert re.fullmatch(rf"datasource nocloud: {dev} \(label cidata\): meta-data",
                        journal_line(sb, f"datasource nocloud: {dev}"))
    assert sb.stop() == 0
