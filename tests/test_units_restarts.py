"""Exits and failed starts between the policies and the reconciler (handlers/units/restarts.py): a failed
create is retried on the policy's schedule only, a missing image as soon as it is there, a failed start
counts under every policy, a `reloadconfig` unit reloads the config when it is done; and the same
through the reconciler against a fake dockerd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.units.desired import DesiredUnits, Reloaded
from handlers.units.restarts import Restarts
from tests.units_fakes import IMAGE, Clock, FakeDocker, loaded_by_generation, make, settle, svc
from units.plan import Create, ObservedContainer, Recreate, Start, Wait
from units.policy import EXITED, RESTARTING
from units.runtime import DockerAPIError, NotFound


def restarts_of(services: dict[str, Any], clock: Clock, on_reload: Any = None) -> Restarts:
    desired = DesiredUnits(loaded=loaded_by_generation(lambda: {"corral": {"services": services}}, lambda: 1),
                           clock=clock)
    desired.load()
    return Restarts(desired, clock=clock, on_reload=on_reload)


def test_a_failed_create_waits_for_its_retry_and_its_start_with_it() -> None:
    clock = Clock()
    restarts = restarts_of({"web": svc(restart="always"), "db": svc()}, clock)
    restarts.desired.policy("web").on_start_failed(clock.now)  # immediate retry
    restarts.desired.policy("web").on_start_failed(clock.now)  # then 0.1 s
    restarts.start_failed("web", NotFound(404, "No such image: x"), create=True)
    assert "web" in restarts.create_failed and "web" in restarts.missing_image
    actions = [Create("web", "system", "h", {}), Start("web", "system"), Create("db", "system", "h", {}),
               Start("db", "system")]
    due = restarts.due(actions, clock.now)
    assert due[0] == Wait("web", "restart scheduled", restarts.desired.policy("web").next_start)
    assert due[1:] == actions[2:]
    clock.now += 1
    assert restarts.due(actions, clock.now) == actions
    restarts.created("web")
    assert "web" not in restarts.create_failed and "web" not in restarts.errors
    recreate = [Recreate("web", "system", "old", "h", {})]
    assert restarts.due(recreate, clock.now) == recreate


def test_a_failed_start_is_an_error_and_a_failure_for_the_policy() -> None:
    clock = Clock()
    restarts = restarts_of({"web": svc(restart="no")}, clock)
    restarts.start_failed("web", DockerAPIError(500, "bind source path does not exist"), create=False)
    assert restarts.errors == {"web": "bind source path does not exist"}
    assert not restarts.create_failed and not restarts.missing_image  # not a create, not an image
    assert restarts.desired.policy("web").state() == RESTARTING  # retried even under `no`
    restarts.started("web")
    assert restarts.errors == {}
    restarts.start_failed("gone", DockerAPIError(500, "x"), create=True)  # no such unit: only remembered
    assert restarts.errors == {} and restarts.create_failed == {"gone"}


def test_an_image_that_arrives_brings_the_retry_forward() -> None:
    clock = Clock()
    restarts = restarts_of({"late": svc(), "other": svc(image="corral/other:1")}, clock)
    for name in ("late", "other"):
        policy = restarts.desired.policy(name)
        policy.on_start_failed(clock.now)
        policy.on_start_failed(clock.now)
        restarts.start_failed(name, NotFound(404, "No such image"), create=True)
        assert policy.next_start is not None and policy.next_start > clock.now
    restarts.images_arrived(restarts.desired.units, {IMAGE: "sha256:1"})
    assert restarts.desired.policy("late").next_start == clock.now
    assert restarts.missing_image == {"other"}
    assert restarts.desired.policy("other").next_start > clock.now  # type: ignore[operator]


def test_forget_what_a_reload_recreated_or_removed() -> None:
    restarts = restarts_of({"a": svc(), "b": svc(), "c": svc()}, Clock())
    for name in "abc":
        restarts.errors[name] = "x"
        restarts.create_failed.add(name)
        restarts.missing_image.add(name)
    restarts.forget(Reloaded(changed=frozenset({"a"}), removed=frozenset({"b"})))
    assert set(restarts.errors) == {"c"} and restarts.create_failed == {"c"}
    assert restarts.missing_image == {"a", "c"}  # a recreated unit still waits for its image


def test_exits_are_decided_once_and_a_reloadconfig_unit_reloads_when_it_is_done() -> None:
    clock = Clock()
    reloads: list[bool] = []
    restarts = restarts_of({"setup": svc(labels={"io.corral.oneshot": "true",
                                                 "io.corral.reloadconfig": "true"})},
                           clock, on_reload=lambda: reloads.append(True))
    restarts.desired.policy("setup").on_started(clock.now)
    gone = ObservedContainer("c1", "setup", {}, "exited", exit_code=0)
    decision = restarts.exited("setup", gone, via="die")
    assert decision is not None and decision.state == EXITED and not decision.restart
    assert reloads == [True]
    assert restarts.exited("setup", gone, via="die") is None  # decided already
    assert reloads == [True]


def test_an_unknown_unit_has_no_exit_to_decide() -> None:
    restarts = restarts_of({"web": svc()}, Clock())
    with pytest.raises(KeyError):
        restarts.exited("nope", ObservedContainer("c1", "nope", {}, "exited"), via="die")


# ---- through the reconciler ---------------------------------------------------------------------------
async def test_missing_image_is_retried_on_the_policys_schedule_only(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker()
    docker.images.clear()
    handler, docker, _ = make(tmp_path, {"late": svc()}, docker=docker, clock=clock)
    for _ in range(5):
        await settle(handler)
    # first failure retried at once, then after 0.1 s: not in a loop
    assert docker.calls.count(("create", "late")) == 2
    status = handler.unit_status("late")
    assert status["state"] == "restarting" and "No such image" in status["error"]
    clock.now += 0.1
    await settle(handler)
    assert docker.calls.count(("create", "late")) == 3
    docker.images[IMAGE] = "sha256:new"
    handler.images.mark_stale()  # what an image event does
    await settle(handler)
    assert handler.unit_status("late")["state"] == "running"  # before its next retry was due (0.2 s)
    await handler.close()


async def test_failed_start_counts_and_unknown_unit(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker()
    docker.fail_start.add("bad")
    handler, docker, _ = make(tmp_path, {"bad": svc(restart="no")}, docker=docker, clock=clock)
    await settle(handler)
    status = handler.unit_status("bad")
    assert status["state"] == "restarting" and status["failures"] == 2  # retried even under `no`
    assert "bind source" in status["error"]
    with pytest.raises(KeyError):
        handler.unit_status("nope")
    await handler.close()
