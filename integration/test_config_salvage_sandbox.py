"""Boot never loses what is valid (issue 13), against a real PID 1: a RancherOS cloud-config with SSH keys,
an engine key corral does not implement and a broken network section boots with the keys written, the
engine key a warning, the network on the defaults (status degraded, naming it) and a kernel command
line key of another domain applied. On reload, a drop-in that breaks only the network leaves the
network on the last good config while its host name change is applied."""

from __future__ import annotations

import signal
import time
from typing import Any

from handlers.authorized_keys import keys_path
from integration.sandbox import Sandbox

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ0c2VjcmV0a2V5Zm9ydGVzdHNvbmx5MTIzNDU2Nzg5MA me@laptop"

RANCHEROS = {
    "hostname": "salvaged",
    "ssh_authorized_keys": [KEY],
    "rancher": {
        "docker": {"engine": "docker-17.03.2-ce"},
        "network": {"interfaces": {"eth0": {"address": "10.1.2.300/24"}}},
    },
}


def wait_status(sb: Sandbox, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = sb.request("status")
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_a_rancheros_config_with_a_broken_network_boots_with_everything_else(sandbox: Any) -> None:
    sb: Sandbox = sandbox(RANCHEROS, cmdline="corral.log.level=debug")
    status = sb.wait_ready()
    assert status["state"] == "degraded"
    assert status["degraded"]["config"] == "corral.network: 1 error(s); on defaults"
    assert status["config"]["salvaged"] == {"corral.network": "defaults"}
    keys_with_errors = [e.split(": ")[1] for e in status["config"]["errors"]]
    assert keys_with_errors == ["corral.network.interfaces.eth0.address"]
    engine = [w for w in status["config"]["warnings"] if ": rancher.docker.engine: not implemented: " in w]
    assert len(engine) == 1 and "Debian's docker.io" in engine[0]
    # the SSH keys are written: no lockout
    keys = keys_path(sb.paths)
    deadline = time.monotonic() + 20
    while not keys.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert KEY in keys.read_text()
    assert status["hostname"] == "salvaged"
    # the kernel command line's key, of another domain, is applied
    assert sb.request("config.get", key="corral.log.level") == "debug"
    # the network is on the defaults: nothing of the broken section is in force
    assert sb.request("config.get", key="corral.docker.engine") == "docker-17.03.2-ce"  # kept, ignored
    text = sb.cli("status").stdout
    assert "degraded:  config: corral.network: 1 error(s); on defaults" in text
    assert "warning: " in text and "rancher.docker.engine: not implemented" in text
    # each error once in the journal, naming its root and what it is on
    errors = [r for r in sb.journal() if r.get("event") == "config error"]
    assert len(errors) == 1 and errors[0]["root"] == "corral.network" and errors[0]["on"] == "defaults"
    sb.assert_clean_journal(expected_errors=("config error",))


def test_reload_keeps_a_broken_network_on_the_last_good_and_applies_the_rest(sandbox: Any) -> None:
    good = {"hostname": "before", "corral": {"network": {"dns": {"nameservers": ["192.0.2.53"]}}}}
    sb: Sandbox = sandbox(good)
    first = sb.wait_ready()
    assert first["state"] == "ready" and first["hostname"] == "before"
    dropin = sb.paths.config_dir / "cloud-config.d" / "50-broken-network.yml"
    dropin.write_text("hostname: after\ncorral:\n  network:\n    dns:\n      nameservers: [not-an-address]\n")
    # cloud-config.yml comes later in the merge: without its host name and name servers, the drop-in's count
    user = "corral:\n  network:\n    dns:\n      search: [lan]\n"
    (sb.paths.config_dir / "cloud-config.yml").write_text(user)
    sb.signal(signal.SIGHUP)
    status = wait_status(sb, lambda s: s["hostname"] == "after")
    assert status["hostname"] == "after"  # the host name change is applied
    assert status["state"] == "degraded"
    assert status["degraded"]["config"] == "corral.network: 1 error(s); on the last good config"
    assert sb.request("config.get", key="corral.network") == {"dns": {"nameservers": ["192.0.2.53"]}}
    assert status["config"]["generation"] > first["config"]["generation"]
    r = sb.cli("reload", check=False)
    assert r.returncode == 1
    kept = "(corral.network: 1 error(s); on the last good config)"
    assert f"config has errors, the rest is applied {kept}" in r.stderr
    dropin.unlink()
    sb.signal(signal.SIGHUP)
    status = wait_status(sb, lambda s: s["state"] == "ready")
    assert status["state"] == "ready" and status["config"]["errors"] == []
    assert sb.request("config.get", key="corral.network") == {"dns": {"search": ["lan"]}}
    sb.assert_clean_journal(expected_errors=("config error",))
