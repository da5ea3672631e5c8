"""Units that require mounts (``io.corral.requires-mount``), with plain data: the label, which paths are
mounted (``observe_mounts``), holding and releasing the policies (``sync_mounts``), what ``plan`` does
(wait, stop or leave, start when the mount is back, restart on a replaced mount), dependents for
``corral storage status``; then the units reconciler driving the same through a mount table file and
a storage view, as MountChanged events would."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from handlers.units.desired import localize
from handlers.units.required_mounts import RequiredMounts, storage_rule_mounts
from supervisor.mountinfo import MountEntry
from tests.test_units_plan import container
from tests.units_fakes import make, settle, svc
from units.loader import build_units
from units.model import Unit
from units.mounts import (
    MountState,
    RuleMount,
    annotate_dependents,
    observe_mounts,
    stale_mounts,
    sync_mounts,
    units_requiring,
)
from units.plan import Create, Restart, Start, Stop, Wait, plan, sync_policies
from units.policy import PENDING, RESTARTING, RUNNING, STOPPED, WAITING, UnitPolicy
from units.unitfiles import parse_unit_text

DATA = "/mnt/data"
UP = {DATA: MountState(DATA, True, "7:1", rule=True)}
GONE = {DATA: MountState(DATA, False, None, "stop", rule=True)}
GONE_IGNORE = {DATA: MountState(DATA, False, None, "ignore", rule=True)}
NEW = {DATA: MountState(DATA, True, "9:2", rule=True)}


def units_from(text: str) -> tuple[dict[str, Unit], list[str]]:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, {})
    return units, [str(e) for e in [*errors, *more]]


APP = """
app:
  image: busybox
  restart: always
  volumes: ["/mnt/data/app:/data"]
  labels: {io.corral.requires-mount: /mnt/data}
other:
  image: busybox
  restart: always
  labels: {io.corral.after: app}
"""


def app_units() -> dict[str, Unit]:
    units, errors = units_from(APP)
    assert errors == []
    return units


def kinds(actions: Sequence[object]) -> list[tuple[str, str]]:
    return [(type(a).__name__, getattr(a, "unit", "")) for a in actions]


def policies_of(units: Mapping[str, Unit]) -> dict[str, UnitPolicy]:
    return {n: UnitPolicy(u.restart, clock=lambda: 0.0) for n, u in units.items()}


# ---- the label -----------------------------------------------------------------------------------------
def test_label_takes_absolute_paths_comma_separated_normalised_and_sorted() -> None:
    units, errors = units_from("a:\n  image: x\n  labels:\n"
                               "    io.corral.requires-mount: ' /srv/b/ , /mnt//a,/srv/b'\n")
    assert errors == []
    assert units["a"].requires_mounts == ("/mnt/a", "/srv/b")
    none, _ = units_from("a:\n  image: x\n")
    assert none["a"].requires_mounts == ()


@pytest.mark.parametrize(("value", "message"), [
    ("/mnt/a, data", "label io.corral.requires-mount needs absolute paths (comma-separated): 'data' is "
                     "relative"),
    (" , ", "label io.corral.requires-mount needs one or more absolute paths"),
])
def test_label_errors_name_the_file_unit_label_and_reason(value: str, message: str) -> None:
    _units, errors = units_from(f"web:\n  image: x\n  labels:\n    io.corral.requires-mount: '{value}'\n")
    assert len(errors) == 1
    assert errors[0].startswith('test.yml: web.labels["io.corral.requires-mount"]: '), errors[0]
    assert message in errors[0]


def test_localize_roots_required_paths_like_the_storage_rules() -> None:
    unit = app_units()["app"]
    moved = localize(unit, Path("/sb"))
    assert moved.requires_mounts == ("/sb/mnt/data",)
    assert moved.volumes[0].source == "/sb/mnt/data/app"
    assert localize(unit, None) is unit


# ---- observing -------------------------------------------------------------------------------------------
def entry(mount_id: int, target: str, minor: int = 1) -> MountEntry:
    return MountEntry(mount_id, 1, 7, minor, "/", target, "rw", "ext4", "/dev/loop1")


def test_observe_rule_paths_need_the_storage_handler_others_any_mount() -> None:
    table = (entry(20, "/mnt/data"), entry(21, "/srv/x"), entry(22, "/srv/x", minor=2), entry(23, "/mnt/y"))
    rules = {"/mnt/data": RuleMount("/mnt/data", True, "ignore", "/dev/loop1", 5),
             "/mnt/y": RuleMount("/mnt/y", False),  # in the table, but not the handler's mount
             "/mnt/z": RuleMount("/mnt/z", True)}  # the handler thinks so, the table does not
    seen = observe_mounts(["/mnt/data", "/srv/x", "/mnt/y", "/mnt/z", "/nope"], rules, table)
    assert seen["/mnt/data"] == MountState("/mnt/data", True, "20:7:1:/dev/loop1:5", "ignore", rule=True)
    assert seen["/srv/x"] == MountState("/srv/x", True, "22:7:2")  # the one on top
    assert not seen["/mnt/y"].mounted and seen["/mnt/y"].rule
    assert not seen["/mnt/z"].mounted
    assert seen["/nope"] == MountState("/nope", False)
    # another medium in the same device: another identity
    other_medium = {"/mnt/data": RuleMount("/mnt/data", True, "stop", "/dev/loop1", 6)}
    again = observe_mounts(["/mnt/data"], other_medium, table)
    assert again["/mnt/data"].ident != seen["/mnt/data"].ident


def test_storage_rule_mounts_reads_the_handlers_rules_and_known_mounts() -> None:
    class Rule:
        def __init__(self, path: str, on_remove: str) -> None:
            self.path, self.on_remove = path, on_remove

    class Known:
        def __init__(self, devname: str, diskseq: int, on_remove: str = "stop") -> None:
            self.devname, self.diskseq, self.on_remove = devname, diskseq, on_remove

    class Storage:
        rules = (Rule("/a", "ignore"), Rule("/b", "stop"))
        known = {"/a": Known("/dev/sdb1", 4), "/old": Known("/dev/sdc1", 2, "ignore")}

    view = storage_rule_mounts(Storage())
    assert view == {"/a": RuleMount("/a", True, "ignore", "/dev/sdb1", 4), "/b": RuleMount("/b", False),
                    "/old": RuleMount("/old", True, "ignore", "/dev/sdc1", 2)}
    assert storage_rule_mounts(None) == {}


def test_storage_rule_mounts_sees_bind_and_nfs_mounts_and_shared_paths() -> None:
    from storage.rules import parse_storage
    from storage.sourced import SourcedKnown

    parsed = parse_storage({"mounts": [["sdc", "/opt/data"], ["xvdh", "/opt/data"],
                                       ["nas:/x", "/mnt/nfs", "nfs"]]})
    assert parsed.rules is not None
    rules = parsed.rules.mounts

    block = SimpleNamespace(devname="/dev/xvdh", diskseq=7, on_remove="stop")
    nfs = SourcedKnown("/mnt/nfs", "mounts[2]", "nfs", "nas:/x", "nfs", 9)
    storage = SimpleNamespace(rules=rules, known={"/opt/data": block},
                              sourced=SimpleNamespace(known={"mounts[2]": nfs}))
    # the first rule of /opt/data did not mount it, the second did: the path is mounted
    assert storage_rule_mounts(storage) == {
        "/opt/data": RuleMount("/opt/data", True, "stop", "/dev/xvdh", 7),
        "/mnt/nfs": RuleMount("/mnt/nfs", True, "stop", "nas:/x")}


# ---- holding and releasing ---------------------------------------------------------------------------
def test_waiting_unit_is_not_created_started_failed_or_backed_off_and_dependents_go() -> None:
    units = app_units()
    policies = policies_of(units)
    news = sync_mounts(units, policies, GONE)
    assert news[DATA].held == ["app"] and news[DATA].released == []
    assert policies["app"].state() == WAITING and policies["app"].held
    actions = plan(units, [], policies, mounts=GONE)
    assert kinds(actions) == [("Create", "other"), ("Start", "other"), ("Wait", "app")]
    assert actions[-1] == Wait("app", "waiting for mount /mnt/data")
    # Nothing changes: no news, the same plan.
    assert sync_mounts(units, policies, GONE) == {}
    status = policies["app"].status()
    assert status.restarts == 0 and status.failures == 0 and status.next_start is None
    # The mount comes: released, created and started as at boot.
    news = sync_mounts(units, policies, UP)
    assert news[DATA].released == ["app"]
    assert policies["app"].state() == PENDING
    actions = plan(units, [container(units["other"])], policies, mounts=UP)
    assert kinds(actions) == [("Create", "app"), ("Start", "app")]


def test_mount_gone_stops_the_unit_without_the_restart_policy_and_it_comes_back() -> None:
    units = app_units()
    policies = policies_of(units)
    observed = [container(units["app"]), container(units["other"])]
    for p in policies.values():
        p.on_started(0.0, {DATA: "7:1"})
    assert plan(units, observed, policies, mounts=UP) == []
    sync_mounts(units, policies, GONE)
    actions = plan(units, observed, policies, mounts=GONE)
    assert actions == [Stop("app", "system", "id-app", (DATA,))]
    # Stopped: the exit is no failure, no restart is scheduled (restart: always).
    stopped = [container(units["app"], "exited", exit_code=143), container(units["other"])]
    decisions = sync_policies(units, stopped, policies, 5.0)
    assert decisions["app"].state == WAITING and not decisions["app"].restart
    status = policies["app"].status()
    assert (status.state, status.restarts, status.failures, status.next_start) == (WAITING, 0, 0, None)
    assert plan(units, stopped, policies, now=100.0, mounts=GONE) == [
        Wait("app", "waiting for mount /mnt/data")]
    # Back: started again (its container is unchanged: a Start only).
    sync_mounts(units, policies, NEW)
    assert plan(units, stopped, policies, now=100.0, mounts=NEW) == [Start("app", "system")]


def test_on_remove_ignore_leaves_the_unit_running_but_a_crash_waits_for_the_mount() -> None:
    units = app_units()
    policies = policies_of(units)
    observed = [container(units["app"]), container(units["other"])]
    policies["app"].on_started(0.0, {DATA: "7:1"})
    policies["other"].on_started(0.0)
    news = sync_mounts(units, policies, GONE_IGNORE)
    assert news[DATA].held == ["app"] and policies["app"].state() == RUNNING
    assert plan(units, observed, policies, mounts=GONE_IGNORE) == []
    crashed = [container(units["app"], "exited", exit_code=1), container(units["other"])]
    decision = sync_policies(units, crashed, policies, 3.0)["app"]
    assert decision.state == WAITING and not decision.restart
    assert kinds(plan(units, crashed, policies, mounts=GONE_IGNORE)) == [("Wait", "app")]


def test_unit_running_on_a_replaced_mount_is_restarted() -> None:
    units = app_units()
    policies = policies_of(units)
    observed = [container(units["app"]), container(units["other"])]
    policies["app"].on_started(0.0, {DATA: "7:1"})
    policies["other"].on_started(0.0)
    # ignore: it kept running while the disk was away; the disk is back (another mount).
    sync_mounts(units, policies, GONE_IGNORE)
    news = sync_mounts(units, policies, NEW)
    assert news[DATA].released == ["app"] and policies["app"].state() == RUNNING
    assert stale_mounts(units["app"], policies["app"].started_on, NEW) == (DATA,)
    assert plan(units, observed, policies, mounts=NEW) == [Restart("app", "system", "id-app", (DATA,))]
    # The same, when the mount went and came between two looks (no hold at all).
    again = policies_of(units)
    again["app"].on_started(0.0, {DATA: "7:1"})
    again["other"].on_started(0.0)
    assert sync_mounts(units, again, NEW) == {}
    assert kinds(plan(units, observed, again, mounts=NEW)) == [("Restart", "app")]
    # Started on this mount: nothing to do.
    again["app"].on_started(1.0, {DATA: "9:2"})
    assert plan(units, observed, again, mounts=NEW) == []


def test_adopted_running_unit_takes_the_current_mounts_and_a_missing_one_stops_it() -> None:
    units = app_units()
    policies = policies_of(units)
    observed = [container(units["app"]), container(units["other"])]
    sync_policies(units, observed, policies, 0.0)  # found running at start-up: adopted
    adopted = policies["app"]
    assert adopted.started_on is None
    sync_mounts(units, policies, UP)
    assert policies["app"].started_on == {DATA: "7:1"}
    assert plan(units, observed, policies, mounts=UP) == []
    # Adopted while its mount is not there (never seen: stop is the default).
    fresh = policies_of(units)
    sync_policies(units, observed, fresh, 0.0)
    sync_mounts(units, fresh, {})
    assert kinds(plan(units, observed, fresh, mounts={})) == [("Stop", "app")]


def test_deliberate_stop_wins_over_the_mount_and_up_keeps_waiting() -> None:
    units = app_units()
    policies = policies_of(units)
    policies["app"].deliberately_stopped()
    sync_mounts(units, policies, GONE)
    assert policies["app"].state() == STOPPED
    sync_mounts(units, policies, UP)
    assert policies["app"].state() == STOPPED  # the mount coming back does not undo the user's stop
    assert kinds(plan(units, [], policies, mounts=UP)) == [("Create", "other"), ("Start", "other")]
    sync_mounts(units, policies, GONE)
    policies["app"].resume()  # corral units up while the mount is away: still waiting
    assert policies["app"].state() == WAITING
    assert not policies["app"].start_due(1e9)


def test_restart_backoff_state_is_dropped_while_waiting() -> None:
    units = app_units()
    policies = policies_of(units)
    policy = policies["app"]
    policy.on_started(0.0, {DATA: "7:1"})
    policy.on_exit(1, 0.5, 1.0)
    assert policy.state() == RESTARTING
    sync_mounts(units, policies, GONE)
    assert policy.state() == WAITING and policy.next_start is None
    sync_mounts(units, policies, UP)
    assert policy.state() == PENDING and policy.start_due(1.0)


def test_dependents_listed_per_mount_and_rule() -> None:
    units, errors = units_from("a:\n  image: x\n  labels: {io.corral.requires-mount: '/m/1,/m/2'}\n"
                               "b:\n  image: x\n  labels: {io.corral.requires-mount: /m/1}\nc:\n  image: x\n")
    assert errors == []
    assert units_requiring(units, "/m/1") == ["a", "b"] and units_requiring(units, "/m/3") == []
    status: dict[str, Any] = {"udev": None, "storage": {
        "mounts": [{"path": "/m/1", "device": "/dev/sdb1"}],
        "rules": [{"key": "mounts[0]", "path": "/m/1"}, {"key": "mounts[1]", "path": "/m/2"}]}}
    annotate_dependents(status, units)
    assert status["storage"]["mounts"][0]["dependents"] == ["a", "b"]
    assert [r["dependents"] for r in status["storage"]["rules"]] == [["a", "b"], ["a"]]
    empty: dict[str, Any] = {"storage": None}
    annotate_dependents(empty, units)  # no storage handler: nothing to annotate
    assert empty == {"storage": None}


def test_plan_of_units_without_the_label_is_unchanged_by_mounts() -> None:
    units, _ = units_from("a:\n  image: x\n")
    assert kinds(plan(units, [], policies_of(units), mounts=GONE)) == [("Create", "a"), ("Start", "a")]
    assert isinstance(plan(units, [], policies_of(units))[0], Create)


# ---- the handler, driven by a mount table file and the storage handler's view -------------------------
def mountinfo_line(mount_id: int, target: str) -> str:
    return f"{mount_id} 1 7:1 / {target} rw,relatime shared:1 - ext4 /dev/loop1 rw\n"


async def test_handler_waits_starts_stops_and_restarts_with_the_mount(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(mountinfo_line(1, "/"))
    rules = {DATA: RuleMount(DATA, False)}
    handler, docker, _ = make(tmp_path, {
        "app": svc(restart="always", labels={"io.corral.requires-mount": DATA}),
        "after": svc(restart="always", labels={"io.corral.after": "app"}),
    }, storage_rules=lambda: rules, mountinfo=table)
    await settle(handler)
    status = handler.unit_status("app")
    assert status["state"] == "waiting" and status["waiting"] == "waiting for mount /mnt/data"
    assert handler.unit_status("after")["state"] == "running"  # ordering does not wait for the mount
    assert handler.report.first_wave.is_set()
    assert not any(name == "app" for _, name in docker.calls)
    assert units_requiring(handler.units, DATA) == ["app"]
    # The storage handler mounts it.
    table.write_text(mountinfo_line(1, "/") + mountinfo_line(30, DATA))
    rules[DATA] = RuleMount(DATA, True, "stop", "/dev/loop1", 3)
    await settle(handler)
    assert handler.unit_status("app")["state"] == "running"
    assert (await handler.inspect("app"))["requires_mounts"] == [
        {"path": DATA, "mounted": True, "on_remove": "stop", "rule": True}]
    # The device goes: stopped, waiting, no restart counted.
    table.write_text(mountinfo_line(1, "/"))
    rules[DATA] = RuleMount(DATA, False)
    docker.calls.clear()
    await settle(handler)
    await settle(handler)
    status = handler.unit_status("app")
    assert docker.calls == [("stop", "app")]
    assert (status["state"], status["restarts"], status["failures"]) == ("waiting", 0, 0)
    assert handler.unit_status("after")["state"] == "running"
    # Back (another medium): started again.
    table.write_text(mountinfo_line(1, "/") + mountinfo_line(31, DATA))
    rules[DATA] = RuleMount(DATA, True, "stop", "/dev/loop1", 4)
    await settle(handler)
    assert docker.calls[-1] == ("start", "app") and handler.unit_status("app")["state"] == "running"
    # Replaced between two looks: restarted.
    docker.calls.clear()
    rules[DATA] = RuleMount(DATA, True, "stop", "/dev/loop1", 5)
    await settle(handler)
    await asyncio.sleep(0)
    assert docker.calls == [("stop", "app"), ("start", "app")]
    assert handler.unit_status("app")["state"] == "running"
    await settle(handler)
    assert docker.calls == [("stop", "app"), ("start", "app")]  # once
    await handler.close()


def test_handler_listens_to_mount_events() -> None:
    from handlers.units.reconciler import UnitsReconciler
    from supervisor.events.udev import MountChanged

    assert MountChanged in UnitsReconciler.kinds


async def test_required_mounts_keep_their_last_state_when_the_mount_table_cannot_be_read(
        tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(mountinfo_line(1, "/") + mountinfo_line(30, DATA))
    units, _ = units_from(f"app:\n  image: x\n  labels:\n    io.corral.requires-mount: {DATA}\n"
                          "plain:\n  image: x\n")
    mounts = RequiredMounts(table)
    await mounts.observe(units.values())
    assert [m.mounted for m in mounts.of(units["app"])] == [True]
    assert mounts.ids(units["app"]) == {DATA: mounts.state[DATA].ident}
    assert mounts.ids(units["plain"]) is None and mounts.of(units["plain"]) == []
    table.unlink()
    await mounts.observe(units.values())  # logged; the last state stays
    assert mounts.state[DATA].mounted
    await mounts.observe([units["plain"]])  # no unit requires a path: nothing read, nothing kept
    assert mounts.state == {}
