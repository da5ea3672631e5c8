"""The swarm plan, every transition, with plain data: no dockerd."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.config import InitSpec, JoinSpec, SwarmConfig
from swarm.plan import (
    Init,
    Join,
    JoinRequest,
    Leave,
    NodeSpec,
    Note,
    Observed,
    UpdateNode,
    Wait,
    describe,
    plan,
)

TOKEN = "SWMTKN-1-" + "3" * 50 + "-" + "a" * 25
INIT = SwarmConfig(role="manager", init=InitSpec(advertise_addr="10.0.0.1"))
JOIN_SPEC = JoinSpec(remote_addrs=("10.0.0.1:2377",), token=TOKEN)
WORKER = SwarmConfig(role="worker", join=JOIN_SPEC)
REQUEST = JoinRequest(remote_addrs=("10.0.0.1:2377",), token=TOKEN, role="worker")

INACTIVE = Observed()
PENDING = Observed(state="pending", remote_managers=("10.0.0.1:2377",))


def node(labels: dict[str, str] | None = None, availability: str = "active", version: int = 7) -> NodeSpec:
    spec: dict[str, Any] = {"Labels": labels or {}, "Role": "manager", "Availability": availability,
                            "Name": "n"}
    return NodeSpec.from_inspect({"ID": "n1", "Version": {"Index": version}, "Spec": spec,
                                  "ManagerStatus": {"Reachability": "reachable", "Leader": True}})


def manager(managers: int = 1, **kwargs: Any) -> Observed:
    return Observed(state="active", node_id="n1", manager=True, managers=managers, nodes=managers,
                    node=node(**kwargs))


WORKER_NODE = Observed(state="active", node_id="w1", manager=False, managers=0, nodes=0)


def test_observed_reads_the_swarm_fields_of_info() -> None:
    info = {"Swarm": {"NodeID": "n1", "NodeAddr": "10.0.0.1", "LocalNodeState": "active",
                      "ControlAvailable": True, "Error": "",
                      "RemoteManagers": [{"NodeID": "n1", "Addr": "10.0.0.1:2377"}], "Nodes": 3,
                      "Managers": 1, "Cluster": {"ID": "c1"}}}
    observed = Observed.from_info(info)
    assert observed == Observed(state="active", node_id="n1", node_addr="10.0.0.1", manager=True, managers=1,
                                nodes=3, remote_managers=("10.0.0.1:2377",), cluster_id="c1")
    assert Observed.from_info({"Swarm": {"LocalNodeState": "inactive", "RemoteManagers": None}}) == INACTIVE
    assert Observed.from_info({}) == INACTIVE


# ---- no corral.swarm ----------------------------------------------------------------------------------
def test_no_config_and_no_swarm_is_nothing() -> None:
    assert plan(None, INACTIVE) == []


def test_a_swarm_corral_never_managed_is_left_alone() -> None:
    for observed in (manager(), WORKER_NODE, PENDING, Observed(state="locked")):
        assert plan(None, observed, managed=False) == []


def test_the_key_removed_from_the_last_manager_leaves_with_force_and_a_warning() -> None:
    [leave] = plan(None, manager(managers=1))
    assert isinstance(leave, Leave) and leave.force
    assert leave.warning is not None and "last manager" in leave.warning


def test_the_key_removed_from_a_manager_among_others_leaves_without_force() -> None:
    assert plan(None, manager(managers=3)) == [Leave(force=False, reason="corral.swarm was removed")]


def test_the_key_removed_from_a_worker_leaves_without_force() -> None:
    assert plan(None, WORKER_NODE) == [Leave(force=False, reason="corral.swarm was removed")]


def test_the_key_removed_while_joining_stops_the_join() -> None:
    [leave] = plan(None, PENDING)
    assert isinstance(leave, Leave) and not leave.force


def test_a_locked_node_is_a_note_whatever_the_config() -> None:
    locked = Observed(state="locked")
    for desired in (None, INIT, WORKER):
        [note] = plan(desired, locked, REQUEST)
        assert isinstance(note, Note) and "unlock" in note.message


# ---- init ----------------------------------------------------------------------------------------------
def test_init_on_a_node_in_no_swarm_inits() -> None:
    assert plan(INIT, INACTIVE) == [Init(InitSpec(advertise_addr="10.0.0.1"))]


def test_init_on_a_manager_without_labels_or_availability_in_config_is_nothing() -> None:
    assert plan(INIT, manager(labels={"set": "by hand"}, availability="drain")) == []


def test_init_on_a_joining_node_stops_the_join_then_inits() -> None:
    leave, init = plan(INIT, PENDING)
    assert isinstance(leave, Leave) and not leave.force and init == Init(INIT.init)  # type: ignore[arg-type]


def test_init_on_a_worker_of_another_swarm_is_a_note_not_a_leave() -> None:
    [note] = plan(INIT, WORKER_NODE)
    assert isinstance(note, Note) and "worker" in note.message


def test_a_node_in_error_is_a_note_with_dockerds_reason() -> None:
    [note] = plan(INIT, Observed(state="error", error="certificate expired"))
    assert isinstance(note, Note) and "certificate expired" in note.message


# ---- labels and availability ------------------------------------------------------------------------
def test_labels_that_drifted_are_put_back_whole() -> None:
    desired = SwarmConfig(role="manager", init=InitSpec(), labels=(("zone", "a"),))
    [update] = plan(desired, manager(labels={"zone": "b", "added": "by hand"}, version=12))
    assert isinstance(update, UpdateNode)
    assert update.node_id == "n1" and update.version == 12 and update.changes == ("labels",)
    assert update.spec == {"Labels": {"zone": "a"}, "Role": "manager", "Availability": "active", "Name": "n"}


def test_labels_as_configured_are_nothing() -> None:
    desired = SwarmConfig(role="manager", init=InitSpec(), labels=(("zone", "a"),), availability="active")
    assert plan(desired, manager(labels={"zone": "a"})) == []


def test_empty_labels_in_config_clear_the_nodes() -> None:
    desired = SwarmConfig(role="manager", init=InitSpec(), labels=())
    [update] = plan(desired, manager(labels={"x": "y"}))
    assert isinstance(update, UpdateNode) and update.spec["Labels"] == {}


def test_availability_is_set_with_the_labels_in_one_update() -> None:
    desired = SwarmConfig(role="manager", init=InitSpec(), labels=(("zone", "a"),), availability="drain")
    [update] = plan(desired, manager())
    assert isinstance(update, UpdateNode) and update.changes == ("labels", "availability")
    assert update.spec["Availability"] == "drain" and update.spec["Labels"] == {"zone": "a"}


def test_a_worker_cannot_label_itself_it_is_a_note() -> None:
    desired = SwarmConfig(role="worker", join=JOIN_SPEC, labels=(("zone", "a"),))
    [note] = plan(desired, WORKER_NODE, REQUEST)
    assert isinstance(note, Note) and "from a manager" in note.message


# ---- join ----------------------------------------------------------------------------------------------
def test_join_on_a_node_in_no_swarm_joins() -> None:
    assert plan(WORKER, INACTIVE, REQUEST) == [Join(REQUEST)]


def test_join_without_a_readable_token_does_nothing_the_reconciler_says_why() -> None:
    assert plan(WORKER, INACTIVE, None) == []


def test_a_join_dockerd_still_tries_is_waited_for() -> None:
    [wait] = plan(WORKER, PENDING, REQUEST, attempt=REQUEST)
    assert isinstance(wait, Wait) and "10.0.0.1:2377" in wait.reason


@pytest.mark.parametrize("attempt", [
    None,  # not sent by this boot's corral
    JoinRequest(remote_addrs=("10.0.0.9:2377",), token=TOKEN, role="worker"),
    JoinRequest(remote_addrs=("10.0.0.1:2377",), token=TOKEN.replace("a", "b"), role="worker"),
])
def test_a_pending_join_other_than_the_configs_is_left_and_joined_again(attempt: JoinRequest | None) -> None:
    leave, join = plan(WORKER, PENDING, REQUEST, attempt=attempt)
    assert isinstance(leave, Leave) and not leave.force and join == Join(REQUEST)


def test_a_joined_worker_is_nothing_and_the_token_no_longer_matters() -> None:
    other = JoinRequest(remote_addrs=("10.0.0.9:2377",), token=TOKEN, role="worker")
    assert plan(WORKER, WORKER_NODE, other) == []


def test_a_role_that_differs_is_a_note() -> None:
    as_manager = SwarmConfig(role="manager", join=JOIN_SPEC)
    [note] = plan(as_manager, WORKER_NODE, REQUEST)
    assert isinstance(note, Note) and "promote" in note.message
    [note] = plan(WORKER, manager(managers=3), REQUEST)
    assert isinstance(note, Note) and "demote" in note.message


def test_a_joined_manager_keeps_its_labels() -> None:
    desired = SwarmConfig(role="manager", join=JOIN_SPEC, labels=(("zone", "b"),))
    [update] = plan(desired, manager(managers=3, labels={}), REQUEST)
    assert isinstance(update, UpdateNode) and update.spec["Labels"] == {"zone": "b"}


# ---- words --------------------------------------------------------------------------------------------
def test_no_action_or_description_shows_the_token() -> None:
    actions = [Join(REQUEST), Leave(force=True, reason="r"), Init(InitSpec()), Wait("w"), Note("n")]
    assert TOKEN not in repr(actions)
    assert TOKEN not in " ".join(describe(actions))
    assert describe([Join(REQUEST)]) == ["join as worker through 10.0.0.1:2377"]


# ---- invariants over every observed state ------------------------------------------------------------
STATES = ("inactive", "pending", "active", "error", "locked")
DESIRED = (None, INIT, WORKER, SwarmConfig(role="manager", join=JOIN_SPEC, labels=(("a", "b"),)),
           SwarmConfig(role="manager", init=InitSpec(), availability="drain"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STATES), st.booleans(), st.integers(0, 5), st.sampled_from(DESIRED), st.booleans(),
       st.booleans())
def test_plan_invariants(state: str, is_manager: bool, managers: int, desired: SwarmConfig | None,
                         same_attempt: bool, managed: bool) -> None:
    observed = Observed(state=state, node_id="n1" if state == "active" else "", manager=is_manager,
                        managers=managers, node=node() if is_manager and state == "active" else None)
    actions = plan(desired, observed, REQUEST, REQUEST if same_attempt else None, managed=managed)
    kinds = [type(a) for a in actions]
    if desired is None and not managed:
        assert actions == []  # never a swarm corral did not make
    for action in actions:
        if isinstance(action, Leave):
            assert desired is None or state == "pending"
            assert not action.force or (is_manager and managers <= 1 and state != "pending")
            assert action.force == (action.warning is not None)
    if state in ("active", "error", "locked"):
        assert Init not in kinds and Join not in kinds  # a node in a swarm is never re-made
    if UpdateNode in kinds:
        assert is_manager and state == "active"
    assert kinds.count(Leave) <= 1 and len(actions) <= 3
