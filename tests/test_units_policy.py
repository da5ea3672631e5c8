"""The restart policy: exact delays with a fake clock, reset after 10 s up, on-failure limits,
crash-looping, failed starts, deliberate stops (and remembering them for unless-stopped)."""

from __future__ import annotations

import pytest

from units.model import RestartSpec
from units.policy import (
    CRASH_LOOPING,
    EXITED,
    FAILED,
    PENDING,
    RESTARTING,
    RUNNING,
    STOPPED,
    Decision,
    UnitPolicy,
    make_policies,
    remembered_stops,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def crash(policy: UnitPolicy, clock: Clock, ran_for: float = 0.01, code: int = 1) -> float:
    """Start the unit, let it run ``ran_for`` and die; wait out the delay. Returns the delay."""
    policy.on_started()
    clock.now += ran_for
    decision = policy.on_exit(code, ran_for)
    assert decision.restart
    assert policy.next_start == pytest.approx(clock.now + decision.delay)
    clock.now += decision.delay
    assert policy.start_due()
    return decision.delay


def test_exact_delay_sequence_first_immediate_then_doubling_to_the_cap() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    delays = [crash(policy, clock) for _ in range(13)]
    assert delays == pytest.approx([0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30, 30])
    assert policy.status().restarts == 13


def test_reset_after_ten_seconds_of_running() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    assert [crash(policy, clock) for _ in range(4)] == pytest.approx([0, 0.1, 0.2, 0.4])
    assert crash(policy, clock, ran_for=10.0) == 0  # a good run starts over
    assert crash(policy, clock) == pytest.approx(0.1)
    assert crash(policy, clock, ran_for=9.9) == pytest.approx(0.2)  # 9.9 s is not enough


def test_always_restarts_after_a_clean_exit_too() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    policy.on_started()
    assert policy.on_exit(0, 1.0).restart


def test_on_failure_exit_zero_stays_down() -> None:
    clock = Clock()
    policy = UnitPolicy("on-failure", clock=clock)
    policy.on_started()
    decision = policy.on_exit(0, 1.0)
    assert (decision.restart, decision.state) == (False, EXITED)
    assert policy.status().state == EXITED and not policy.start_due()
    assert policy.next_start is None


def test_on_failure_restarts_after_a_failure_without_limit() -> None:
    clock = Clock()
    policy = UnitPolicy("on-failure", clock=clock)
    assert [crash(policy, clock) for _ in range(8)][-1] == pytest.approx(6.4)


def test_on_failure_n_gives_up_after_n_restarts() -> None:
    clock = Clock()
    policy = UnitPolicy(RestartSpec("on-failure", 3), clock=clock)
    assert [crash(policy, clock) for _ in range(3)] == pytest.approx([0, 0.1, 0.2])
    policy.on_started()
    decision = policy.on_exit(2, 0.5)
    assert (decision.restart, decision.state) == (False, FAILED)
    status = policy.status()
    assert (status.state, status.restarts, status.last_exit) == (FAILED, 3, 2)
    assert not policy.start_due()


def test_on_failure_n_is_at_most_n_restarts_as_in_docker() -> None:
    """docs/units.md: on-failure:3 restarts at most 3 times in a row, so the unit runs at most 4 times."""
    clock = Clock()
    policy = UnitPolicy("on-failure:3", clock=clock)
    runs, decisions = 0, []
    while True:
        policy.on_started()
        runs += 1
        decision = policy.on_exit(1, 0.5)
        decisions.append(decision.state)
        if not decision.restart:
            break
        clock.now += decision.delay
    assert runs == 4 and policy.restarts == 3
    assert decisions == [RESTARTING, RESTARTING, RESTARTING, FAILED]


def test_on_failure_n_counts_failures_in_a_row() -> None:
    clock = Clock()
    policy = UnitPolicy("on-failure:2", clock=clock)
    crash(policy, clock)
    crash(policy, clock)
    crash(policy, clock, ran_for=60)  # a long good run: the count starts over
    crash(policy, clock)
    policy.on_started()
    assert not policy.on_exit(1, 0.1).restart


def test_no_never_restarts_after_an_exit() -> None:
    clock = Clock()
    for code, state in ((0, EXITED), (3, FAILED)):
        policy = UnitPolicy("no", clock=clock)
        assert policy.status().state == PENDING and policy.start_due()
        policy.on_started()
        assert policy.status().state == RUNNING
        decision = policy.on_exit(code, 5.0)
        assert (decision.restart, decision.state) == (False, state)
        assert policy.finished and not policy.start_due()


def test_failed_start_is_retried_under_every_policy_even_no() -> None:
    for restart in ("no", "always", "unless-stopped", "on-failure"):
        clock = Clock()
        policy = UnitPolicy(restart, clock=clock)
        delays = []
        for _ in range(4):
            decision = policy.on_start_failed()
            assert decision.restart and decision.state == RESTARTING
            delays.append(decision.delay)
            clock.now += decision.delay
        assert delays == pytest.approx([0, 0.1, 0.2, 0.4]), restart
        assert policy.attempted and policy.finished  # dependents of a oneshot that cannot start go ahead


def test_failed_starts_count_towards_on_failure_n() -> None:
    policy = UnitPolicy("on-failure:2", clock=Clock())
    assert policy.on_start_failed().restart
    assert policy.on_start_failed().restart
    assert policy.on_start_failed().state == FAILED


def test_crash_looping_after_more_than_five_restarts_in_ten_seconds_but_still_retried() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    states = []
    for _ in range(5):
        crash(policy, clock)
        states.append(policy.status().state)
    assert states == [RESTARTING] * 5
    policy.on_started()
    clock.now += 0.01
    decision = policy.on_exit(1, 0.01)  # the sixth restart within 10 s
    assert decision.restart and decision.state == CRASH_LOOPING
    clock.now += decision.delay
    # retried forever, the delay reaching the cap; it stays crash-looping though restarts thin out
    delays = [crash(policy, clock) for _ in range(10)]
    assert delays[-3:] == pytest.approx([30, 30, 30])
    assert policy.status().state == CRASH_LOOPING
    policy.on_started()
    assert policy.status().state == CRASH_LOOPING  # running again, but not yet for 10 s
    clock.now += 10
    assert policy.status().state == RUNNING  # ten good seconds end the crash loop
    decision = policy.on_exit(1, 10)
    assert (decision.delay, decision.state) == (0, RESTARTING)


def test_slow_restarts_are_not_a_crash_loop() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    for _ in range(12):
        crash(policy, clock, ran_for=3)  # 3 s runs: never more than 5 restarts in 10 s
        assert policy.status().state == RESTARTING


def test_deliberate_stop_is_honoured() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    policy.on_started()
    policy.deliberately_stopped()
    decision = policy.on_exit(137, 4.0)
    assert (decision.restart, decision.state) == (False, STOPPED)
    assert policy.stopped and not policy.start_due()
    assert not policy.on_start_failed().restart
    policy.resume()
    assert not policy.stopped and policy.start_due() and policy.status().state == PENDING


def test_a_pending_restart_is_cancelled_by_a_deliberate_stop() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    crash(policy, clock)
    policy.on_started()
    policy.on_exit(1, 0.1)
    policy.deliberately_stopped()
    clock.now += 100
    assert not policy.start_due() and policy.next_start is None


def test_unless_stopped_remembers_a_deliberate_stop_across_supervisor_restarts() -> None:
    clock = Clock()
    policies = make_policies(
        {"a": RestartSpec("unless-stopped"), "b": RestartSpec("always"), "c": RestartSpec("unless-stopped")},
        clock=clock,
    )
    policies["a"].deliberately_stopped()
    policies["b"].deliberately_stopped()
    persisted = remembered_stops(policies)
    assert persisted == ["a"]  # always forgets a deliberate stop when the supervisor restarts, as Docker's
    again = make_policies(
        {"a": RestartSpec("unless-stopped"), "b": RestartSpec("always"), "c": RestartSpec("unless-stopped")},
        persisted,
        clock=clock,
    )
    assert again["a"].stopped and not again["b"].stopped and not again["c"].stopped


def test_status_is_plain_data() -> None:
    clock = Clock()
    policy = UnitPolicy("always", clock=clock)
    crash(policy, clock)
    policy.on_started()
    policy.on_exit(7, 0.2)
    assert policy.status().to_dict() == {
        "state": RESTARTING,
        "restarts": 2,
        "failures": 2,
        "last_exit": 7,
        "next_start": pytest.approx(clock.now + 0.1),
    }


def test_decision_at_once_is_a_restart_without_delay() -> None:
    assert Decision(True, 0.0, RESTARTING).at_once
    assert not Decision(True, 0.1, RESTARTING).at_once
    assert not Decision(False, 0.0, EXITED).at_once
