"""A NoCloud seed ISO attached to the booted OS (QEMU, the real kernel: virtio_blk, isofs), as clouds and
cloud-init's docs make it (``genisoimage -volid cidata``): the config phase runs before the disk driver
is loaded, so the ``datasources`` phase waits for the labelled device, mounts the iso9660 read-only, and
the hostname, the SSH keys, the user-data and the network-config (wrapper-less v2) are applied. One boot.
"""

from __future__ import annotations

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


def seed_iso(directory: Path, files: dict[str, str]) -> Path:
    if shutil.which("genisoimage") is None:
        pytest.skip("genisoimage missing (scripts/install-system-deps.sh installs it)")
    stage = directory / "seed.d"
    stage.mkdir()
    for name, text in files.items():
        (stage / name).write_text(text)
    iso = directory / "seed.iso"
    subprocess.run(["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock",
                    *(str(stage / n) for n in files)], check=True, capture_output=True, timeout=60)
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
