"""A replace-mode unit (``io.corral.restart-mode: replace``): the label checked by the loader; the spare
container planned (``units.plan``: CreateSpare, Replace, Rename, a stale or unwanted spare removed); and
carried out by the reconciler on the fake dockerd: the spare is started the instant the init is gone (no
wait for dockerd's exit), the old one removed and the name handed over, the next spare made, the ``die``
after it coalesced."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import structlog

from supervisor.events.docker import ContainerEvent
from tests.units_fakes import Clock, FakeDocker, make, settle, svc
from units.loader import build_units
from units.model import LABEL_HASH, LABEL_SPARE, LABEL_UNIT, Unit
from units.plan import (
    CreateSpare,
    ObservedContainer,
    Remove,
    Rename,
    Replace,
    Start,
    Stop,
    code_free,
    plan,
    spares,
)
from units.policy import UnitPolicy
from units.spec import config_hash
from units.unitfiles import parse_unit_text

IMAGE_ID = "sha256:1111"
WEB = """
web:
  image: nginx
  restart: always
  labels: {io.corral.restart-mode: replace}
"""


def load(text: str) -> tuple[dict[str, Unit], list[str]]:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, {})
    return units, [str(e) for e in [*errors, *more]]


def units_from(text: str) -> dict[str, Unit]:
    units, errors = load(text)
    assert errors == []
    return units


# ---- the label -------------------------------------------------------------------------------------------
def test_the_restart_mode_label_is_read_and_checked() -> None:
    assert units_from(WEB)["web"].replace
    assert not units_from(WEB.replace("replace}", "restart}"))["web"].replace
    assert not units_from("web: {image: nginx, restart: always}")["web"].replace
    for bad, says in [
        (WEB.replace("replace}", "swap}"), "must be restart or replace, got 'swap'"),
        (WEB.replace("restart: always", "restart: 'no'"), "replace needs a restart policy that restarts"),
        (WEB.replace("replace}", "replace, io.corral.oneshot: 'true'}"), "a oneshot unit is never restarted"),
        (WEB.replace("replace}", "replace, io.corral.createonly: 'true'}"), "a createonly unit"),
        ("web:\n  image: nginx\n  labels: {io.corral.spare: 'true'}\n", "set by corral"),
        ("web:\n  image: nginx\n  labels: {io.corral.restart-mod: replace}\n", "io.corral.restart-mode"),
    ]:
        units, errors = load(bad)
        assert "web" not in units
        assert any(says in e and "io.corral." in e for e in errors), (bad, errors)


# ---- the plan ----------------------------------------------------------------------------------------------
def observed(unit: Unit, state: str = "running", *, cid: str | None = None, name: str | None = None,
             spare: bool = False, digest: str | None = None) -> ObservedContainer:
    labels = {LABEL_UNIT: unit.name, LABEL_HASH: digest or config_hash(unit, IMAGE_ID)}
    if spare:
        labels[LABEL_SPARE] = "true"
    return ObservedContainer(cid or f"id-{unit.name}", name or unit.name, labels, state,
                             image_id=IMAGE_ID)


def running(units: Mapping[str, Unit]) -> dict[str, UnitPolicy]:
    policies = {}
    for name, unit in units.items():
        policies[name] = UnitPolicy(unit.restart, clock=lambda: 0.0)
        policies[name].on_started(0.0)
    return policies


def planned(units: Mapping[str, Unit], seen: list[ObservedContainer],
            policies: Mapping[str, UnitPolicy]) -> list[object]:
    return list(plan(units, seen, dict(policies), image_ids={"nginx": IMAGE_ID}, now=100.0))


def test_a_running_replace_unit_gets_one_spare_of_its_definition() -> None:
    units = units_from(WEB)
    web = units["web"]
    actions = planned(units, [observed(web)], running(units))
    assert [type(a) for a in actions] == [CreateSpare]
    spare = actions[0]
    assert isinstance(spare, CreateSpare)
    assert spare.body["Labels"][LABEL_SPARE] == "true"
    assert spare.body["Labels"][LABEL_HASH] == config_hash(web, IMAGE_ID) == spare.config_hash
    # with its spare there: nothing; the spare is not the unit's container (not an extra to remove)
    with_spare = [observed(web), observed(web, "created", cid="s1", spare=True)]
    assert planned(units, with_spare, running(units)) == []
    # a plain unit gets none
    plain = units_from("web: {image: nginx, restart: always}")
    assert planned(plain, [observed(plain["web"])], running(plain)) == []


def test_an_exited_replace_unit_is_replaced_by_its_spare_else_started() -> None:
    units = units_from(WEB)
    web = units["web"]
    policies = running(units)
    policies["web"].on_exit(137, 20.0, 50.0)  # first restart: due at once
    seen = [observed(web, "exited"), observed(web, "created", cid="s1", name="web.spare-1", spare=True)]
    assert planned(units, seen, policies) == [Replace("web", "system", "id-web", "s1")]
    assert planned(units, seen[:1], policies) == [Start("web", "system")]  # no spare: started again


def test_stale_extra_and_unwanted_spares_are_removed() -> None:
    units = units_from(WEB)
    web = units["web"]
    stale = observed(web, "created", cid="old", spare=True, digest="0" * 64)
    actions = planned(units, [observed(web), stale], running(units))
    assert [type(a) for a in actions] == [Remove, CreateSpare]
    assert actions[0] == Remove("old", "web", "system", "web")
    extra = [observed(web, "created", cid=f"s{i}", spare=True) for i in (1, 2)]
    assert planned(units, [observed(web), *extra], running(units)) == [Remove("s2", "web", "system", "web")]
    # the user stopped the unit: its container stopped, its spare removed, no new one
    policies = running(units)
    policies["web"].deliberately_stopped()
    assert planned(units, [observed(web), extra[0]], policies) == [
        Remove("s1", "web", "system", "web"), Stop("web", "system", "id-web")]
    # the unit gone from the config, or no longer in replace mode: its spare goes with it
    assert Remove("s1", "web", "system", "web") in planned({}, [observed(web), extra[0]], {})
    plain = units_from("web: {image: nginx, restart: always}")
    assert Remove("s1", "web", "system", "web") in planned(plain, [observed(web), extra[0]], running(plain))


def test_a_started_spare_is_the_units_container_and_takes_its_name_once_free() -> None:
    units = units_from(WEB)
    web = units["web"]
    started = observed(web, "running", cid="s1", name="web.spare-1", spare=True)
    assert not started.spare
    old = observed(web, "exited")
    # the old one still there (holding the name): it is removed; the rename waits
    assert planned(units, [old, started], running(units)) == [
        Remove("id-web", "web", "system", "web"),
        CreateSpare("web", "system", config_hash(web, IMAGE_ID), {})]
    assert planned(units, [started], running(units))[0] == Rename("web", "system", "s1")


def test_only_always_and_unless_stopped_are_decided_without_the_exit_code() -> None:
    assert code_free(UnitPolicy("always")) and code_free(UnitPolicy("unless-stopped"))
    assert not code_free(UnitPolicy("on-failure")) and not code_free(UnitPolicy("no"))
    assert code_free(UnitPolicy("on-failure", stopped=True))
    units = units_from(WEB)
    web = units["web"]
    spare = observed(web, "created", cid="s1", spare=True)
    assert list(spares(units, [spare], {"nginx": IMAGE_ID})) == ["web"]
    assert spares(units, [spare], {"nginx": "sha256:2222"}) == {}  # the image was pulled again: stale


# ---- carried out (the reconciler on the fake dockerd) ------------------------------------------
REPLACE = svc(restart="always", labels={"io.corral.restart-mode": "replace"})


def names(docker: FakeDocker) -> list[tuple[str, str]]:
    return sorted((c["Names"][0][1:].split("-")[0], c["State"]) for c in docker.containers.values())


async def test_an_init_gone_starts_the_spare_at_once_then_removes_the_old_and_makes_the_next(
    tmp_path: Path,
) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": REPLACE}, clock=clock)
    await settle(handler)
    assert names(docker) == [("web", "running"), ("web.spare", "created")]
    old = docker.by_name("web")["Id"]
    spare = next(c["Id"] for c in docker.containers.values() if c["State"] == "created")
    assert handler.unit_status("web")["spare"] == spare[:12]
    docker.calls.clear()
    clock.now += 2
    killed = time.time_ns()
    with structlog.testing.capture_logs() as logs:
        docker.exit("web", 137)
        handler.actions.init_gone("web", old, "system")
        await settle(handler)
        handler.exits.note(ContainerEvent(daemon="system", action="die", container_id=old, name="web",
                                          unit="web", exit_code=137, time_nano=killed))
        await settle(handler)
    # the spare's start is the first call: nothing waited for dockerd's word on the exit
    assert docker.calls[0] == ("start", spare)
    assert docker.calls[1:4] == [("wait", "web"), ("remove", "web"), ("rename", "web")]
    assert [c[0] for c in docker.calls].count("start") == 1
    assert docker.calls[4][0] == "create" and docker.calls[4][1].startswith("web.spare-")
    assert old not in docker.containers and docker.by_name("web")["Id"] == spare
    assert names(docker) == [("web", "running"), ("web.spare", "created")]
    status = handler.unit_status("web")
    assert (status["state"], status["restarts"], status["last_exit"]) == ("running", 1, 137)
    assert [e["via"] for e in logs if e["event"] == "unit exited; restarting"] == ["pidfd"]
    assert [e["exit_code"] for e in logs if e["event"] == "unit replaced"] == [137]
    await handler.close()


async def test_a_die_alone_replaces_too_and_on_failure_waits_for_the_code(tmp_path: Path) -> None:
    on_failure = svc(restart="on-failure", labels={"io.corral.restart-mode": "replace"})
    handler, docker, _ = make(tmp_path, {"web": REPLACE, "job": on_failure})
    await settle(handler)
    spares_before = {c["Labels"][LABEL_UNIT]: c["Id"] for c in docker.containers.values()
                     if c["State"] == "created"}
    docker.calls.clear()
    web = docker.exit("web", 1)
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id=web, name="web", unit="web",
                                      exit_code=1, time_nano=time.time_ns()))
    job = docker.exit("job", 0)  # on-failure: exit 0 is not restarted (the code was waited for)
    handler.actions.init_gone("job", job, "system")
    await settle(handler)
    assert ("start", spares_before["web"]) in docker.calls
    assert ("wait", "job") in docker.calls and ("start", spares_before["job"]) not in docker.calls
    assert handler.unit_status("job")["state"] == "exited"
    # the unit that will not run again keeps no spare
    assert [c["Names"][0] for c in docker.containers.values() if c["Labels"][LABEL_UNIT] == "job"] == ["/job"]
    await handler.close()


@pytest.mark.parametrize("change", ["removed", "stopped", "changed", "plain"])
async def test_no_spare_is_left_behind(tmp_path: Path, change: str) -> None:
    handler, docker, state = make(tmp_path, {"web": REPLACE, "other": svc(restart="always")})
    await settle(handler)
    assert len(docker.containers) == 3
    if change == "stopped":
        await handler.down("web")
    else:
        services = state["config"]["corral"]["services"]
        if change == "removed":
            del services["web"]
        elif change == "changed":
            services["web"] = {**REPLACE, "command": "sleep 700"}
        else:
            services["web"] = svc(restart="always")
        state["generation"] += 1
    await settle(handler)
    spares_left = [c for c in docker.containers.values() if LABEL_SPARE in c["Labels"]
                   and c["State"] == "created"]
    if change == "changed":  # the new definition's spare, made once it runs
        assert len(spares_left) == 1 and spares_left[0]["Body"]["Cmd"] == ["sleep", "700"]
    else:
        assert spares_left == []
    await handler.close()


async def test_a_replacement_with_a_delay_is_not_taken_back_by_a_listing_that_still_shows_it_running(
    tmp_path: Path,
) -> None:
    """The pidfd tells before dockerd does: a reconcile in between lists the dead container as running. A
    restart decided with a delay (the second in a row) must not be undone by it (the policy adopting the
    container as running again); it replaces the unit once due."""
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": REPLACE}, clock=clock)
    await settle(handler)
    handler.actions.init_gone("web", docker.exit("web", 137), "system")  # the first: at once
    await settle(handler)
    clock.now += 1
    running = docker.by_name("web")["Id"]
    handler.actions.init_gone("web", running, "system")  # dockerd still shows it running
    assert handler.actions.running("web") is None  # a delay: left to the timer
    await settle(handler)
    assert handler.unit_status("web")["state"] == "restarting"
    assert docker.by_name("web")["Id"] == running
    docker.exit("web", 137)
    clock.now += 1  # the delay (0.1 s) is past
    await settle(handler)
    status = handler.unit_status("web")
    assert (status["state"], status["restarts"]) == ("running", 2)
    assert docker.by_name("web")["Id"] != running
    await handler.close()
