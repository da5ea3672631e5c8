"""corral.swarm in a real PID 1 (the sandbox) with its own system dockerd and the user's dockerd (the
shipped `docker` unit): a manager nobody runs does not hold the boot up and shows in `corral status`;
then the config changed live inits a swarm (advertised on a dummy link the config makes inside the
sandbox's network namespace), labels the node, and removing the key leaves the swarm."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import integration.sandbox
from image import docker
from integration.sandbox import Sandbox
from integration.test_units_docker import privileged_unavailable
from integration.test_units_docker import setup as with_images
from integration.units_helpers import system_docker_on, wait_for

pytestmark = pytest.mark.docker

ADDRESS = "198.18.99.1"  # on a dummy link inside the sandbox's network namespace
NOBODY = "198.18.99.77"  # on that link's subnet: nothing answers there
TOKEN = "SWMTKN-1-" + "3" * 50 + "-" + "a" * 25


@pytest.fixture
def system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


@pytest.fixture
def user_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    reason = privileged_unavailable()
    if reason:
        pytest.skip(reason)
    if docker.missing():
        pytest.skip(f"cannot build {docker.IMAGE}: missing {docker.missing()}")
    monkeypatch.setattr(integration.sandbox, "USER_DOCKER_DEFAULT", True)
    with system_docker_on(monkeypatch, tmp_path):
        yield


def swarm(sb: Sandbox) -> dict[str, Any]:
    return dict(sb.request("status")["swarm"])


def test_no_user_dockerd_holds_nothing_up_and_says_so(system_docker: None, sandbox: Any) -> None:
    """The user dockerd off (the `docker` unit not included): the boot is ready, status says why."""
    config = {"corral": {"swarm": {"init": {"advertise_addr": "eth0"}}}}
    sb: Sandbox = sandbox(config)
    status = sb.wait_ready(120)
    assert status["state"] == "ready", status["degraded"]
    assert status["swarm"]["desired"] == "init"
    wait_for("the swarm reconciler says why it waits",
             lambda: swarm(sb)["error"] == "the user dockerd does not answer (yet)", 30)
    text = sb.cli("status").stdout
    assert "swarm:     init; not looked at yet; error: the user dockerd does not answer" in text
    failed = sb.cli("swarm", "token", "worker", check=False)
    assert failed.returncode == 1 and "the user dockerd does not answer" in failed.stderr
    assert sb.stop() == 0


def test_swarm_from_config_in_a_real_pid1(user_docker: None, sandbox: Any) -> None:
    config = {
        "network": {"version": 2, "dummy-devices": {"sw0": {"addresses": [f"{ADDRESS}/24"]}}},
        "corral": {
            "handlers": {"backoff_initial": 0.5, "backoff_cap": 2},
            "swarm": {"join": {"remote_addrs": [f"{NOBODY}:2377"], "token": TOKEN}},
        },
    }
    sb: Sandbox = sandbox(config, setup=with_images)
    status = sb.wait_ready(120)  # the join that cannot be made does not hold the boot up
    assert status["state"] == "ready", status["degraded"]
    pending = wait_for("the join to nobody shows in status",
                       lambda: (s := swarm(sb))["state"] == "pending" and s["waiting"] and s, 120, every=1)
    assert NOBODY in pending["waiting"] and pending["desired"] == "join as worker"
    text = sb.cli("status").stdout
    assert "swarm:     join as worker; pending; joining through" in text
    assert TOKEN not in json.dumps(sb.request("status")) and TOKEN not in sb.console_text()

    # the config changed live: this node inits a swarm instead
    wanted = "{init: {advertise_addr: " + ADDRESS + "}, node_labels: {zone: a}}"
    sb.cli("config", "set", "corral.swarm", wanted)
    wait_for("a swarm of one manager", lambda: (s := swarm(sb))["state"] == "active" and s["manager"], 120,
             every=1)
    live = json.loads(sb.cli("swarm", "status", "--json").stdout)
    assert live["role"] == "manager" and live["labels"] == {"zone": "a"} and live["node_addr"] == ADDRESS
    assert live["managers"] == 1 and live["error"] is None and live["tasks"] == []
    assert sb.cli("swarm", "token", "worker").stdout.startswith("SWMTKN-1-")

    # the key removed: the last manager leaves with --force, and the journal says what that costs
    sb.cli("config", "unset", "corral.swarm")
    wait_for("the swarm left", lambda: swarm(sb)["state"] == "inactive", 120, every=1)
    records = [r for r in sb.journal() if "--force" in json.dumps(r)]
    assert records and "last manager" in json.dumps(records[-1])
    refused = sb.cli("swarm", "token", "worker", check=False)
    assert refused.returncode == 1 and "in no swarm" in refused.stderr
    assert sb.stop() == 0
