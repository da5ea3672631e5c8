"""A NoCloud seed ISO attached to the booted OS (QEMU, the real kernel: virtio_blk, isofs), as clouds and
cloud-init's docs make it (``genisoimage -volid cidata``): the config phase runs before the disk driver
is loaded, so the ``datasources`` phase waits for the labelled device, mounts the iso9660 read-only, and
the hostname, the SSH keys, the user-data and the network-config (wrapper-less v2) are applied. The
same for an OpenStack ConfigDrive (``config-2``). One boot each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from image.run import nic_mac
from integration.guest import Guest, GuestSpec

pytestmark = pytest.mark.timeout(1800)

EXTRA_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINoCloudGuestTestExtraKey nocloud@guest-test"


def seed_iso(directory: Path, files: dict[str, str], volid: str = "cidata") -> Path:
    if shutil.which("genisoimage") is None:
        pytest.skip("genisoimage missing (scripts/install-system-deps.sh installs it)")
    stage = directory / "seed.d"
    stage.mkdir()
    for name, text in files.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_text(text)
    iso = directory / "seed.iso"
    subprocess.run(["genisoimage", "-quiet", "-output", str(iso), "-volid", volid, "-joliet", "-rock",
                    str(stage)], check=True, capture_output=True, timeout=60)
    return iso


def test_nocloud_iso_configures_hostname_keys_and_network(
        make_guest: Callable[..., Guest], guest_ssh_key: Any, tmp_path: Path) -> None:
    network = (f"version: 2\nethernets:\n  boot:\n    match: {{macaddress: '{nic_mac(0)}'}}\n"
               "    dhcp4: true\ndummy-devices:\n  seed-dm0:\n    addresses: [198.18.61.1/24]\n")
    iso = seed_iso(tmp_path, {
        "user-data": "#cloud-config\ncorral:\n  environment: {FROM_NOCLOUD: 'yes'}\n",
        # the harness's key also comes from the seed directory's user-data (keys add up)
        "meta-data": (f"instance-id: iid-guest-1\nlocal-hostname: nocloud-guest\npublic-keys:\n"
                      f"  - {guest_ssh_key.public}\n  - {EXTRA_KEY}\n"),
        "network-config": network,
    })
    # the state disk is /dev/vda (the image's default config formats it), the seed /dev/vdb
    g = make_guest(GuestSpec(state_disk="1G", images=[iso],
                             append="corral.cloud_init.datasources=[file:/etc/corral/seed,nocloud]"))
    g.wait_ssh()
    assert g.host("hostname").stdout.strip() == "nocloud-guest"
    lines = [str(r.get("event", "")) for r in g.journal()]
    assert "datasource nocloud: /dev/vdb (label cidata): user-data, meta-data, network-config " \
           "(instance-id iid-guest-1)" in lines, [ln for ln in lines if "datasource" in ln]
    assert g.corral("config", "get", "corral.environment.FROM_NOCLOUD") == "yes"
    keys = g.sudo("cat /var/lib/corral/console/authorized_keys").stdout
    assert EXTRA_KEY in keys and guest_ssh_key.public in keys
    g.wait_until(lambda: "198.18.61.1/24" in g.host("ip -o addr show dev seed-dm0", check=False).stdout,
                 timeout=120, what="seed-dm0 from network-config")
    status = g.corral("status")
    assert not any("nocloud" in w for w in status["config"]["warnings"]), status["config"]


def test_configdrive_configures_hostname_keys_and_network(
        make_guest: Callable[..., Guest], guest_ssh_key: Any, tmp_path: Path) -> None:
    """An OpenStack ConfigDrive (iso9660 labelled ``config-2``, as Nova writes it) on a second disk:
    meta_data.json's hostname and keys, network_data.json's links (the boot NIC by DHCP, the second NIC
    static with its MTU and a route) and user_data are applied."""
    meta = json.dumps({"uuid": "9d6b1e0a-guest", "hostname": "configdrive-guest", "name": "cd",
                       "public_keys": {"harness": guest_ssh_key.public, "extra": EXTRA_KEY}})
    net = json.dumps({
        "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": nic_mac(0)},
                  {"id": "tap1", "type": "phy", "ethernet_mac_address": nic_mac(1), "mtu": 1400}],
        "networks": [
            {"id": "n0", "link": "tap0", "type": "ipv4_dhcp"},
            {"id": "n1", "link": "tap1", "type": "ipv4", "ip_address": "198.18.62.10",
             "netmask": "255.255.255.0", "routes": [
                 {"network": "198.18.63.0", "netmask": "255.255.255.0", "gateway": "198.18.62.1"}]}],
        "services": [{"type": "dns", "address": "198.18.62.53"}],
    })
    iso = seed_iso(tmp_path, {
        "openstack/latest/meta_data.json": meta,
        "openstack/latest/network_data.json": net,
        "openstack/latest/user_data": "#cloud-config\ncorral:\n  environment: {FROM_CONFIGDRIVE: 'yes'}\n",
    }, volid="config-2")
    g = make_guest(GuestSpec(state_disk="1G", images=[iso], nics=1,
                             append="corral.cloud_init.datasources=[file:/etc/corral/seed,configdrive]"))
    g.wait_ssh()
    assert g.host("hostname").stdout.strip() == "configdrive-guest"
    lines = [str(r.get("event", "")) for r in g.journal()]
    assert "datasource configdrive: /dev/vdb (label config-2): user_data, meta_data.json, " \
           "network_data.json (uuid 9d6b1e0a-guest)" in lines, [ln for ln in lines if "datasource" in ln]
    assert g.corral("config", "get", "corral.environment.FROM_CONFIGDRIVE") == "yes"
    keys = g.sudo("cat /var/lib/corral/console/authorized_keys").stdout
    assert EXTRA_KEY in keys and guest_ssh_key.public in keys
    nic = next(line.split(":")[1].strip() for line in g.host("ip -o link").stdout.splitlines()
               if nic_mac(1) in line.lower())
    g.wait_until(lambda: "198.18.62.10/24" in g.host(f"ip -o addr show dev {nic}", check=False).stdout,
                 timeout=120, what="the second NIC's address from network_data.json")
    assert "mtu 1400" in g.host(f"ip -o link show dev {nic}").stdout
    g.wait_until(lambda: "198.18.63.0/24 via 198.18.62.1" in g.host("ip route", check=False).stdout,
                 timeout=60, what="the route from network_data.json")
