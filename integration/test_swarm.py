"""The swarm reconciler against a real dockerd (the integration/dockerd.py fixture: its own socket, data
root and bridge, in a network namespace the test made). Every address is inside that namespace: the
swarm advertises the fixture's bridge address; the manager nobody runs is another address on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from handlers.swarm.reconciler import SwarmHandler
from integration.dockerd import Dockerd
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from swarm.config import InitSpec, JoinSpec, SwarmConfig

NOBODY = "198.19.0.77"  # on the fixture's bridge subnet, in the test's namespace: nothing answers there
WRONG_TOKEN = "SWMTKN-1-" + "3" * 50 + "-" + "a" * 25


@dataclass
class Desired:
    value: SwarmConfig | None = None

    def __call__(self) -> SwarmConfig | None:
        return self.value


@dataclass
class Harness:
    dockerd: Dockerd
    desired: Desired = field(default_factory=Desired)
    handler: SwarmHandler = field(init=False)

    def __post_init__(self) -> None:
        self.handler = SwarmHandler(Bus(), self.dockerd.socket, self.desired, lambda: True,
                                    Backoff(first=0.0, initial=0.05, cap=0.2),
                                    self.dockerd.root / "corral-state" / "swarm-managed", resync=3600.0)

    def info(self) -> dict[str, Any]:
        info = self.dockerd.api_json("/info")
        assert isinstance(info, dict)
        return dict(info["Swarm"])

    def node_spec(self) -> dict[str, Any]:
        out = self.dockerd.docker(["node", "inspect", self.info()["NodeID"], "--format", "{{json .Spec}}"])
        return dict(json.loads(out.stdout))


@pytest.fixture
def harness(make_dockerd: Any) -> Iterator[Harness]:
    h = Harness(make_dockerd(load_image=False))
    yield h
    h.handler.close()


async def test_init_labels_drift_leave_and_init_again(harness: Harness) -> None:
    h = harness
    address = h.dockerd.gateway  # the fixture's bridge, inside the test's namespace
    h.desired.value = SwarmConfig(role="manager", init=InitSpec(advertise_addr=address),
                                  labels=(("zone", "a"),), availability="drain")
    await h.handler.reconcile(True)
    swarm = h.info()
    assert swarm["LocalNodeState"] == "active" and swarm["ControlAvailable"] is True
    assert swarm["NodeAddr"] == address
    first = swarm["NodeID"]
    assert h.handler.marker.exists()  # corral.swarm manages this membership now
    assert h.handler.status()["last_actions"][0].startswith("init")
    spec = h.node_spec()  # labels and availability, in the same reconcile
    assert spec["Labels"] == {"zone": "a"} and spec["Availability"] == "drain"
    assert h.handler.status()["error"] is None

    # drift: a label added and the availability changed by hand are put back
    h.dockerd.docker(["node", "update", "--label-add", "by=hand", "--availability", "active", first])
    await h.handler.reconcile(False)
    spec = h.node_spec()
    assert spec["Labels"] == {"zone": "a"} and spec["Availability"] == "drain"

    live = await h.handler.live()
    assert live["node_id"] == first and live["role"] == "manager" and live["managers"] == 1
    assert live["reachability"] == "reachable" and live["leader"] is True and live["tasks"] == []
    assert (await h.handler.token("worker")).startswith("SWMTKN-1-")

    # the key removed: the last manager leaves with --force, and says so
    h.desired.value = None
    with capture_logs() as logs:
        await h.handler.reconcile(False)
    assert h.info()["LocalNodeState"] == "inactive"
    assert not h.handler.marker.exists()
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert "last manager" in warning["consequence"] and warning["swarm"] is None

    # put back: a new swarm
    h.desired.value = SwarmConfig(role="manager", init=InitSpec(advertise_addr=address))
    await h.handler.reconcile(False)
    swarm = h.info()
    assert swarm["LocalNodeState"] == "active" and swarm["NodeID"] != first


async def test_a_manager_nobody_runs_is_retried_and_shown_never_raised(harness: Harness) -> None:
    h = harness
    h.desired.value = SwarmConfig(role="worker", join=JoinSpec(remote_addrs=(f"{NOBODY}:2377",),
                                                                token=WRONG_TOKEN))
    with capture_logs() as logs:
        await h.handler.reconcile(True)  # dockerd answers the join after 20 s; it keeps trying
    status = h.handler.status()
    assert h.info()["LocalNodeState"] == "pending"
    assert status["waiting"] is not None and NOBODY in status["waiting"]
    assert status["retry_in"] is not None  # looked at again on the backoff
    assert h.handler._timer is not None
    assert WRONG_TOKEN not in repr(status) and WRONG_TOKEN not in repr(logs)
    # the retry: the same join is waited for, not sent again
    await h.handler.reconcile(False)
    assert h.handler.status()["last_actions"] == [] and h.handler.status()["waiting"]

    # the key removed while joining: the join stops
    h.desired.value = None
    await h.handler.reconcile(False)
    assert h.info()["LocalNodeState"] == "inactive"
    assert h.handler.status()["waiting"] is None and h.handler.status()["retry_in"] is None


async def test_a_swarm_made_by_hand_without_corral_swarm_is_left_alone(harness: Harness) -> None:
    h = harness
    h.dockerd.docker(["swarm", "init", "--advertise-addr", h.dockerd.gateway])
    await h.handler.reconcile(True)
    assert h.info()["LocalNodeState"] == "active"
    assert h.handler.status()["last_actions"] == [] and not h.handler.marker.exists()


def link(a: Any, b: Any, cidr_a: str, cidr_b: str) -> None:
    """A veth pair between two namespaces the test made (never the host's)."""
    a.ip("link", "add", "sw0", "type", "veth", "peer", "name", "sw0", "netns", b.name)
    a.ip("addr", "add", cidr_a, "dev", "sw0")
    b.ip("addr", "add", cidr_b, "dev", "sw0")
    a.ip("link", "set", "sw0", "up")
    b.ip("link", "set", "sw0", "up")


async def test_a_wrong_token_is_a_clear_error_then_the_right_one_joins(make_dockerd: Any,
                                                                        make_netns: Any) -> None:
    ns_a, ns_b = make_netns(), make_netns()
    link(ns_a, ns_b, "198.18.77.1/24", "198.18.77.2/24")
    manager = Harness(make_dockerd(ns_a, load_image=False))
    worker = Harness(make_dockerd(ns_b, load_image=False))
    try:
        manager.desired.value = SwarmConfig(role="manager", init=InitSpec(advertise_addr="198.18.77.1"))
        await manager.handler.reconcile(True)
        token = await manager.handler.token("worker")
        wrong = token[:-25] + ("0" * 25 if not token.endswith("0" * 25) else "1" * 25)
        join = JoinSpec(remote_addrs=("198.18.77.1:2377",), token=wrong, advertise_addr="198.18.77.2")
        worker.desired.value = SwarmConfig(role="worker", join=join)
        with capture_logs() as logs:
            await worker.handler.reconcile(True)  # no exception: a status and a retry
        status = worker.handler.status()
        assert status["error"] is not None and "refused the join token" in status["error"], status
        assert status["retry_in"] is not None
        [error] = [e for e in logs if e["log_level"] == "error"]
        assert "refused the join token" in error["error"] and error["swarm"] == "join as worker"
        assert wrong not in repr(logs) and wrong not in repr(status)
        assert worker.info()["LocalNodeState"] == "inactive"

        # A token of another swarm: its CA digest (the part after SWMTKN-1-) is not this swarm's; dockerd
        # says "remote CA does not match fingerprint". The same hint; said once however often retried.
        other = WRONG_TOKEN
        worker.desired.value = SwarmConfig(role="worker", join=JoinSpec(
            remote_addrs=("198.18.77.1:2377",), token=other, advertise_addr="198.18.77.2"))
        with capture_logs() as logs:
            for _ in range(3):
                await worker.handler.reconcile(False)
        status = worker.handler.status()
        assert status["error"] is not None and "refused the join token" in status["error"], status
        assert "fingerprint" in status["error"], status
        assert [e["log_level"] for e in logs if e["log_level"] == "error"] == ["error"], logs
        assert other not in repr(logs) and other not in repr(status)
        assert worker.info()["LocalNodeState"] == "inactive"

        worker.desired.value = SwarmConfig(role="worker", join=JoinSpec(
            remote_addrs=("198.18.77.1:2377",), token=token, advertise_addr="198.18.77.2"))
        await worker.handler.reconcile(False)
        assert worker.info()["LocalNodeState"] == "active", worker.handler.status()
        assert worker.handler.status()["error"] is None
        assert manager.info()["Nodes"] == 2
        live = await worker.handler.live()
        assert live["role"] == "worker" and live["remote_managers"] == ["198.18.77.1:2377"]

        worker.desired.value = None  # removed on the worker: it leaves, no --force
        await worker.handler.reconcile(False)
        assert worker.info()["LocalNodeState"] == "inactive"
        assert worker.handler.status()["last_actions"] == ["leave"]
    finally:
        manager.handler.close()
        worker.handler.close()
