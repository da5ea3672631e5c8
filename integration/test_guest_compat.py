"""A RancherOS user's cloud-config booted as it is (QEMU, the real image; one boot): SSH keys,
``write_files``, ``runcmd``, ``rancher.sysctl``, an unsupported ``rancher.docker.engine`` and a broken
``rancher.network``. The boot keeps what is valid (issue 13): the keys are in place, the files written,
the commands run, the sysctl set; the engine key and the container-bound file are warnings; the network
section's error costs only the network, which stays on the image's defaults (DHCP on the boot NIC, which
is how the test reaches the guest at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integration.guest import Guest, GuestSpec

pytestmark = pytest.mark.timeout(1800)

# As RancherOS users wrote them (rancher: spelling; the engine and console switching of RancherOS's
# docs; a write_files entry for a system container; a typo'd address in the network section).
RANCHEROS_CONFIG: dict[str, Any] = {
    "hostname": "compat-guest",
    "write_files": [
        {"path": "/etc/compat/motd", "permissions": "0640", "owner": "root",
         "content": "hello from a RancherOS cloud-config\n"},
        {"path": "/etc/compat/b64", "encoding": "b64", "content": "aGkgZnJvbSBiNjQK"},  # "hi from b64\n"
        {"container": "ntp", "path": "/etc/ntp.conf", "permissions": "0644", "owner": "root",
         "content": "server 0.pool.ntp.org iburst\n"},
    ],
    "runcmd": [
        ["sh", "-c", "echo argv-ran > /run/compat-runcmd-argv"],
        "echo shell-ran > /run/compat-runcmd-shell",
    ],
    "rancher": {
        "sysctl": {"vm.swappiness": 13},
        "docker": {"engine": "docker-17.03.2-ce"},
        "network": {"interfaces": {"eth0": {"address": "10.0.2.300/24"}}},
    },
}


def test_a_rancheros_cloud_config_boots_with_what_is_valid_applied(
        make_guest: Callable[..., Guest]) -> None:
    g = make_guest(GuestSpec(config=RANCHEROS_CONFIG, state_disk="1G"))
    g.wait_ssh()  # the harness's key, from ssh_authorized_keys of this config: the keys are in place
    assert g.host("hostname").stdout.strip() == "compat-guest"
    motd = g.host("stat -c '%a %U' /etc/compat/motd").stdout.split()
    assert motd == ["640", "root"]
    assert g.host("cat /etc/compat/motd").stdout == "hello from a RancherOS cloud-config\n"
    assert g.host("cat /etc/compat/b64").stdout == "hi from b64\n"
    assert g.host("test -e /etc/ntp.conf", check=False).returncode != 0  # bound for a container: skipped
    g.wait_until(lambda: g.host("cat /run/compat-runcmd-argv /run/compat-runcmd-shell",
                                check=False).stdout == "argv-ran\nshell-ran\n",
                 timeout=120, what="runcmd's two commands")
    assert g.host("cat /proc/sys/vm/swappiness").stdout.strip() == "13"

    status = g.corral("status")
    assert status["degraded"].get("config") == "corral.network: 1 error(s); on defaults", status["degraded"]
    errors = [e.split(": ")[1] for e in status["config"]["errors"]]
    assert errors == ["corral.network.interfaces.eth0.address"], status["config"]["errors"]
    warnings = status["config"]["warnings"]
    assert any(": rancher.docker.engine: not implemented: " in w for w in warnings), warnings
    assert any("write_files[2]" in w and "container" in w for w in warnings), warnings
    assert g.corral("config", "get", "corral.sysctl") == {"vm.swappiness": 13}
