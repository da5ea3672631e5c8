"""plan(desired, observed, policies) -> actions, with plain data: no change -> no actions; a changed
definition recreates only that unit; gone units are removed; foreign containers are never touched;
ordering, oneshots, createonly and deliberate stops are honoured."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from units.loader import build_units
from units.model import LABEL_HASH, LABEL_UNIT, RestartSpec, Scope, Unit
from units.plan import (
    Create,
    ObservedContainer,
    Recreate,
    Remove,
    Stop,
    Wait,
    decide_exit,
    plan,
    sync_policies,
)
from units.policy import EXITED, FAILED, RESTARTING, Decision, UnitPolicy
from units.spec import config_hash
from units.unitfiles import parse_unit_text

IMAGE_ID = "sha256:1111"


def units_from(text: str) -> dict[str, Unit]:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, {})
    assert [*errors, *more] == []
    return units


def container(
    unit: Unit,
    state: str = "running",
    *,
    image_id: str = IMAGE_ID,
    digest: str | None = None,
    exit_code: int | None = None,
    scope: Scope | None = None,
) -> ObservedContainer:
    return ObservedContainer(
        id=f"id-{unit.name}",
        name=unit.name,
        labels={LABEL_UNIT: unit.name, LABEL_HASH: digest or config_hash(unit, image_id)},
        state=state,
        exit_code=exit_code,
        image_id=image_id,
        scope=scope or unit.scope,
    )


def running_policies(units: Mapping[str, Unit]) -> dict[str, UnitPolicy]:
    policies = {}
    for name, unit in units.items():
        policy = UnitPolicy(unit.restart, clock=lambda: 0.0)
        policy.on_started(0.0)
        if unit.oneshot:
            policy.on_exit(0, 1.0, 1.0)
        policies[name] = policy
    return policies


def kinds(actions: list[object]) -> list[tuple[str, str]]:
    return [(type(a).__name__, getattr(a, "unit", "")) for a in actions]


THREE = """
db:
  image: postgres
  restart: always
web:
  image: nginx
  restart: always
  labels: {io.corral.after: db}
cache:
  image: redis
"""


def test_no_change_detected_when_nothing_changed() -> None:
    units = units_from(THREE)
    observed = [container(u) for u in units.values()]
    assert plan(units, observed, running_policies(units), image_ids={"postgres": IMAGE_ID}) == []
    # without image ids the containers' own image ids stand in
    assert plan(units, observed, running_policies(units)) == []


def test_changed_definition_recreates_only_that_unit() -> None:
    units = units_from(THREE)
    observed = [container(u) for u in units.values()]
    edited = units_from(THREE.replace("image: nginx", "image: nginx:1.27"))
    actions = plan(edited, observed, running_policies(units))
    assert kinds(actions) == [("Recreate", "web"), ("Start", "web")]
    recreate = actions[0]
    assert isinstance(recreate, Recreate) and recreate.old_id == "id-web"
    assert recreate.body["Image"] == "nginx:1.27"
    assert recreate.body["Labels"][LABEL_HASH] == recreate.config_hash


def test_new_image_id_recreates_its_units() -> None:
    units = units_from(THREE)
    observed = [container(u) for u in units.values()]
    actions = plan(units, observed, running_policies(units), image_ids={"redis": "sha256:2222"})
    assert kinds(actions) == [("Recreate", "cache"), ("Start", "cache")]


def test_removed_unit_is_removed_and_foreign_containers_are_ignored() -> None:
    units = units_from(THREE)
    observed = [container(u) for u in units.values()]
    observed.append(ObservedContainer("foreign", "someone-elses", {"com.example": "x"}, "exited", 1))
    observed.append(ObservedContainer("foreign2", "cache", {}, "running", scope="user"))
    remaining = {k: v for k, v in units.items() if k != "cache"}
    actions = plan(remaining, observed, running_policies(units))
    assert actions == [Remove("id-cache", "cache", "system", "cache")]


def test_unit_moved_to_the_other_scope_is_removed_there_and_created_here() -> None:
    units = units_from(THREE)
    observed = [container(u) for u in units.values()]
    moved = units_from(THREE.replace("image: redis", "image: redis\n  labels: {io.corral.scope: user}"))
    policies = running_policies(units)
    policies["cache"] = UnitPolicy(moved["cache"].restart)  # a changed unit gets a fresh policy
    actions = plan(moved, observed, policies)
    assert kinds(actions) == [("Remove", "cache"), ("Create", "cache"), ("Start", "cache")]
    assert isinstance(actions[1], Create) and actions[1].scope == "user"


def test_first_boot_creates_and_starts_in_dependency_order() -> None:
    units = units_from(THREE)
    actions = plan(units, [], {})
    assert kinds(actions) == [
        ("Create", "cache"), ("Start", "cache"), ("Create", "db"), ("Start", "db"), ("Wait", "web"),
    ]
    assert actions[-1] == Wait("web", "waiting for db")
    # db is running now: web goes
    db = units["db"]
    policies = {"db": UnitPolicy(db.restart)}
    policies["db"].on_started(0.0)
    observed = [container(units["cache"]), container(db)]
    assert kinds(plan(units, observed, policies)) == [("Create", "web"), ("Start", "web")]


def test_existing_stopped_containers_are_started_at_boot() -> None:
    units = units_from(THREE)
    observed = [container(u, "exited", exit_code=0) for u in units.values()]
    assert kinds(plan(units, observed, {})) == [("Start", "cache"), ("Start", "db"), ("Wait", "web")]


def test_a_dependency_that_fails_to_start_does_not_block_its_dependents() -> None:
    units = units_from(THREE)
    policies = {"db": UnitPolicy("always", clock=lambda: 0.0)}
    policies["db"].on_start_failed(0.0)
    actions = plan(units, [container(units["cache"])], policies, now=0.0)
    assert kinds(actions) == [("Create", "db"), ("Start", "db"), ("Create", "web"), ("Start", "web")]


ONESHOT = """
setup:
  image: busybox
  command: sh -c 'prepare things'
  labels: {io.corral.oneshot: "true"}
app:
  image: app
  restart: always
  labels: {io.corral.after: setup}
"""


def test_oneshot_dependents_wait_for_it_to_exit() -> None:
    units = units_from(ONESHOT)
    setup = UnitPolicy("no", clock=lambda: 0.0)
    setup.on_started(0.0)
    observed = [container(units["setup"])]
    assert plan(units, observed, {"setup": setup}) == [Wait("app", "waiting for setup")]
    setup.on_exit(0, 2.0, 2.0)
    observed = [container(units["setup"], "exited", exit_code=0)]
    assert kinds(plan(units, observed, {"setup": setup})) == [("Create", "app"), ("Start", "app")]


def test_failed_oneshot_is_not_rerun_and_dependents_still_start() -> None:
    units = units_from(ONESHOT)
    setup = UnitPolicy("no", clock=lambda: 0.0)
    setup.on_started(0.0)
    assert setup.on_exit(3, 1.0, 1.0).state == FAILED
    observed = [container(units["setup"], "exited", exit_code=3)]
    assert kinds(plan(units, observed, {"setup": setup})) == [("Create", "app"), ("Start", "app")]


def test_finished_oneshot_gives_no_actions() -> None:
    units = units_from(ONESHOT)
    observed = [container(units["setup"], "exited", exit_code=0), container(units["app"])]
    assert plan(units, observed, running_policies(units)) == []


HOLDER = """
data:
  image: busybox
  volumes: [/data]
  labels: {io.corral.createonly: "true"}
db:
  image: postgres
  volumes_from: [data]
"""


def test_createonly_is_created_and_never_started() -> None:
    units = units_from(HOLDER)
    actions = plan(units, [], {})
    assert kinds(actions) == [("Create", "data"), ("Wait", "db")]
    observed = [container(units["data"], "created")]
    assert kinds(plan(units, observed, {})) == [("Create", "db"), ("Start", "db")]
    observed = [container(units["data"], "created"), container(units["db"])]
    assert plan(units, observed, running_policies({"db": units["db"]})) == []
    # changed: recreated, still not started
    edited = units_from(HOLDER.replace("[/data]", "[/data, /more]"))
    assert kinds(plan(edited, observed, running_policies({"db": units["db"]}))) == [("Recreate", "data")]


def test_deliberately_stopped_unit_is_stopped_and_left_alone() -> None:
    units = units_from(THREE)
    policies = running_policies(units)
    policies["web"].deliberately_stopped()
    observed = [container(u) for u in units.values()]
    assert plan(units, observed, policies) == [Stop("web", "system", "id-web")]
    observed = [container(units["db"]), container(units["cache"]), container(units["web"], "exited")]
    assert plan(units, observed, policies) == []
    # nor recreated when its definition changes, until the user brings it up
    edited = units_from(THREE.replace("image: nginx", "image: httpd"))
    assert plan(edited, observed, policies) == []
    policies["web"].resume()
    assert kinds(plan(edited, observed, policies)) == [("Recreate", "web"), ("Start", "web")]


def test_definition_change_of_a_unit_that_is_not_running() -> None:
    units = units_from(ONESHOT)
    policies = running_policies(units)  # setup ran and exited
    observed = [container(units["setup"], "exited", exit_code=0), container(units["app"])]
    edited = units_from(ONESHOT.replace("prepare things", "prepare more"))
    # same policy (e.g. only the image changed): the container is brought up to date, not rerun
    assert kinds(plan(edited, observed, policies)) == [("Recreate", "setup")]
    # the runtime gives a changed unit a fresh policy: it runs again with its new definition
    policies["setup"] = UnitPolicy(edited["setup"].restart)
    assert kinds(plan(edited, observed, policies)) == [("Recreate", "setup"), ("Start", "setup")]
    # a restart not yet due: recreated now, started when due
    app = UnitPolicy("always", clock=lambda: 0.0)
    app.on_started(0.0)
    app.on_exit(1, 0.1, 1.0)
    app.on_started(1.0)
    app.on_exit(1, 0.1, 1.1)
    observed = [container(units["setup"], "exited"), container(units["app"], "exited", exit_code=1)]
    edited = units_from(ONESHOT.replace("image: app", "image: app:2"))
    actions = plan(edited, observed, {"setup": running_policies(units)["setup"], "app": app}, now=1.1)
    assert kinds(actions) == [("Recreate", "app"), ("Wait", "app")]
    assert actions[-1] == Wait("app", "restart scheduled", pytest.approx(1.2))


def test_restart_waits_for_its_backoff_delay() -> None:
    units = units_from(THREE)
    policies = running_policies(units)
    observed = [container(units["db"]), container(units["cache"]), container(units["web"], "exited")]
    policies["web"].on_exit(1, 0.5, 100.0)  # first restart: immediate
    assert kinds(plan(units, observed, policies, now=100.0)) == [("Start", "web")]
    policies["web"].on_started(100.0)
    policies["web"].on_exit(1, 0.5, 100.5)  # second: 0.1 s later
    assert plan(units, observed, policies, now=100.55) == [Wait("web", "restart scheduled", 100.6)]
    assert kinds(plan(units, observed, policies, now=100.6)) == [("Start", "web")]


def test_sync_policies_feeds_the_policies_then_plan_restarts() -> None:
    units = units_from(THREE)
    policies = running_policies(units)
    exited = ObservedContainer(
        "id-web", "web", {LABEL_UNIT: "web", LABEL_HASH: config_hash(units["web"], IMAGE_ID)},
        "exited", 2, started_at=1000.0, finished_at=1000.4, image_id=IMAGE_ID,
    )
    observed = [container(units["db"]), container(units["cache"]), exited]
    decisions = sync_policies(units, observed, policies, now=5.0)
    assert set(decisions) == {"web"} and decisions["web"].restart and decisions["web"].state == RESTARTING
    assert policies["web"].last_exit == 2
    assert sync_policies(units, observed, policies, now=5.0) == {}  # recorded once
    assert kinds(plan(units, observed, policies, now=5.0)) == [("Start", "web")]
    # a "no" unit that exits is not restarted
    cache_exited = container(units["cache"], "exited", exit_code=0)
    observed = [container(units["db"]), cache_exited, container(units["web"])]
    policies["web"].on_started(5.0)
    assert sync_policies(units, observed, policies, now=9.0)["cache"].state == EXITED
    assert plan(units, observed, policies, now=9.0) == []


def test_decide_exit_is_the_one_decision_of_an_exit() -> None:
    """What `die` events (the runtime's fast path) and the listing (sync_policies) both call."""
    units = units_from(THREE)
    web = units["web"]
    policy = UnitPolicy(web.restart, clock=lambda: 0.0)
    assert decide_exit(policy, container(web, "exited", exit_code=1), 1.0) is None  # never started
    policy.on_started(1.0)
    assert decide_exit(policy, container(web), 2.0) is None  # it still runs
    first = decide_exit(policy, container(web, "exited", exit_code=137), 3.0)
    assert first == Decision(True, 0.0, RESTARTING) and first.at_once
    assert policy.last_exit == 137 and policy.next_start == 3.0
    assert decide_exit(policy, container(web, "exited", exit_code=137), 3.0) is None  # decided once
    policy.on_started(3.0)
    second = decide_exit(policy, None, 4.0)  # the container is gone: an unknown exit, a failure
    assert second is not None and second.restart and not second.at_once and second.delay == pytest.approx(0.1)
    assert policy.last_exit is None
    # The run time: the container's own when it shows one, else the policy's clock since the start.
    policy.on_started(100.0)
    timed = ObservedContainer("id-web", "web", {}, "exited", 1, started_at=10.0, finished_at=30.0)
    assert decide_exit(policy, timed, 101.0) == Decision(True, 0.0, RESTARTING)  # ran 20 s: starts over
    # `no` and `on-failure` after exit 0: no restart; on-failure:N gives up.
    cache = UnitPolicy(units["cache"].restart)
    cache.on_started(0.0)
    assert decide_exit(cache, container(units["cache"], "exited", exit_code=0), 1.0) == Decision(
        False, 0.0, EXITED)
    limited = UnitPolicy(RestartSpec("on-failure", 1))
    limited.on_started(0.0)
    assert decide_exit(limited, container(web, "exited", exit_code=0), 1.0) == Decision(False, 0.0, EXITED)
    limited.on_started(1.0)
    assert decide_exit(limited, container(web, "exited", exit_code=1), 1.5) == Decision(True, 0.0, RESTARTING)
    limited.on_started(1.5)
    assert decide_exit(limited, container(web, "exited", exit_code=1), 2.0) == Decision(False, 0.0, FAILED)


def test_container_removed_behind_corrals_back_is_recreated() -> None:
    units = units_from(THREE)
    policies = running_policies(units)
    observed = [container(units["db"]), container(units["web"])]
    sync_policies(units, observed, policies, now=3.0)
    assert kinds(plan(units, observed, policies, now=3.0)) == [("Create", "cache")]  # "no": created, not run
    policies["db"].on_exit(None, 3.0, 3.0)
    observed = [container(units["web"]), container(units["cache"])]
    assert kinds(plan(units, observed, policies, now=3.0)) == [("Create", "db"), ("Start", "db")]


def test_containers_found_running_at_start_up_are_adopted_not_rerun() -> None:
    units = units_from(ONESHOT)
    policies = {name: UnitPolicy(unit.restart) for name, unit in units.items()}
    observed = [container(units["setup"]), container(units["app"])]
    assert sync_policies(units, observed, policies, now=1.0) == {}
    assert policies["setup"].started_at == 1.0 and not policies["setup"].fresh
    assert plan(units, observed, policies, now=1.0) == []
    observed = [container(units["setup"], "exited", exit_code=0), container(units["app"])]
    assert sync_policies(units, observed, policies, now=2.0)["setup"].state == EXITED
    assert plan(units, observed, policies, now=2.0) == []  # the oneshot finished; not run again


def test_a_unit_restarting_while_its_container_runs_follows_the_container_again() -> None:
    """Issue 14's wedge: an exit decided for a run that had already been replaced (a second, spurious
    exit, 0.1 s backoff) left the unit `restarting` while its container ran: plan starts no running
    container and no exit is decided for a policy that does not believe its unit runs, so it stayed so
    through every resync, and the container's next real death went uncounted."""
    units = units_from(THREE)
    web = units["web"]
    policies = running_policies(units)
    policy = policies["web"]
    assert decide_exit(policy, container(web, "exited", exit_code=137), 5.0).delay == 0.0  # the real death
    policy.on_started(5.1)  # corral restarted it
    spurious = decide_exit(policy, container(web, "exited"), 5.11)  # a stale look at it
    assert spurious is not None and spurious.delay > 0 and policy.status(5.2).state == RESTARTING
    observed = [container(units["db"]), container(units["cache"]), container(web)]  # it runs
    assert sync_policies(units, observed, policies, now=6.0) == {}
    assert policy.status(6.0).state == "running" and policy.next_start is None
    assert plan(units, observed, policies, now=6.0) == []
    # Its next death counts.
    observed[2] = container(web, "exited", exit_code=137)
    decision = sync_policies(units, observed, policies, now=7.0)["web"]
    assert decision.restart and policy.restarts == 3


def test_a_unit_the_user_stopped_or_held_for_its_mount_is_not_adopted() -> None:
    units = units_from(THREE)
    policies = running_policies(units)
    policies["web"].deliberately_stopped()
    policies["web"].on_exit(0, 1.0, 1.0)
    policies["db"].hold(("/mnt/data",))
    policies["db"].on_exit(137, 1.0, 1.0)
    observed = [container(units["db"]), container(units["cache"]), container(units["web"])]
    assert sync_policies(units, observed, policies, now=2.0) == {}
    assert policies["web"].started_at is None and policies["db"].started_at is None
    assert kinds(plan(units, observed, policies, now=2.0)) == [("Stop", "web")]


def test_dead_container_is_recreated_and_duplicates_removed() -> None:
    units = units_from(THREE)
    twin = ObservedContainer("twin", "cache-old", {LABEL_UNIT: "cache"}, "exited", 0, image_id=IMAGE_ID)
    observed = [container(units["db"], "dead"), container(units["web"]), container(units["cache"]), twin]
    policies = running_policies(units)
    assert sync_policies(units, observed, policies, now=1.0)["db"].restart
    actions = plan(units, observed, policies, now=1.0)
    assert kinds(actions) == [("Remove", "cache"), ("Recreate", "db"), ("Start", "db")]
    assert actions[0] == Remove("twin", "cache-old", "system", "cache")


def test_a_foreign_container_holding_the_name_is_reported_not_touched() -> None:
    units = units_from("web:\n  image: nginx\n")
    observed = [ObservedContainer("abcdef1234567890", "web", {}, "running")]
    reason = "the name is taken by container abcdef123456 (not corral's)"
    assert plan(units, observed, {}) == [Wait("web", reason)]


def test_container_created_without_a_known_image_id_is_not_recreated_forever() -> None:
    units = units_from("web:\n  image: nginx\n")
    made = container(units["web"], digest=config_hash(units["web"], None))
    assert plan(units, [made], running_policies(units)) == []
    # once the runtime knows the image id: kept if it runs that image, recreated if it runs another
    assert plan(units, [made], running_policies(units), image_ids={"nginx": IMAGE_ID}) == []
    assert kinds(plan(units, [made], running_policies(units), image_ids={"nginx": "sha256:2222"})) == [
        ("Recreate", "web"), ("Start", "web"),
    ]


def test_observed_container_from_docker_json() -> None:
    inspect = {
        "Id": "abc",
        "Name": "/web",
        "Image": "sha256:beef",
        "Config": {"Labels": {LABEL_UNIT: "web"}},
        "State": {
            "Status": "exited",
            "ExitCode": 137,
            "StartedAt": "2024-05-01T12:00:00.123456789Z",
            "FinishedAt": "2024-05-01T12:00:10.623456789Z",
        },
    }
    c = ObservedContainer.from_inspect(inspect, "user")
    assert (c.id, c.name, c.unit, c.state, c.exit_code, c.image_id, c.scope) == (
        "abc", "web", "web", "exited", 137, "sha256:beef", "user"
    )
    assert c.ran_for is not None and abs(c.ran_for - 10.5) < 1e-6
    never = ObservedContainer.from_inspect(
        {"Id": "x", "State": {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}}
    )
    assert never.started_at is None and never.ran_for is None
    listed = ObservedContainer.from_list({"Id": "x", "Names": ["/db"], "State": "running", "Labels": None})
    assert (listed.name, listed.state, listed.labels) == ("db", "running", {})
