"""The swarm reconciler's choices that need no dockerd: hands off a swarm it never managed, waits for
the user dockerd, reads the token file off the loop. (Against a real dockerd: integration/test_swarm.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from handlers.swarm.reconciler import SwarmHandler
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from swarm.config import InitSpec, SwarmConfig


def never(socket: Path) -> Any:
    raise AssertionError("the user dockerd was asked")


def handler(tmp_path: Path, desired: SwarmConfig | None, connected: bool) -> SwarmHandler:
    return SwarmHandler(Bus(), tmp_path / "docker.sock", lambda: desired, lambda: connected, Backoff(),
                        tmp_path / "state" / "swarm-managed", runtime=never)


async def test_no_corral_swarm_and_no_marker_asks_dockerd_nothing(tmp_path: Path) -> None:
    h = handler(tmp_path, None, True)
    await h.reconcile(True)
    assert h.status()["error"] is None and h._timer is None
    assert not h.marker.exists()


async def test_a_dockerd_that_does_not_answer_is_said_and_waited_for(tmp_path: Path) -> None:
    h = handler(tmp_path, SwarmConfig(role="manager", init=InitSpec()), False)
    await h.reconcile(True)
    status = h.status()
    assert status["error"] == "the user dockerd does not answer (yet)" and status["desired"] == "init"
    assert h._timer is None  # its event stream connecting wakes the reconciler, not a timer
    assert h.marker.exists()  # from now on, corral.swarm's removal means leaving
    h.close()


def test_the_swarm_retries_start_at_seconds_not_tenths() -> None:
    """A failed join is 10-20 s of dockerd's own retries, each an error in its log: the swarm's retries
    start at JOIN_RETRY_FIRST (the shared backoff's 0, 0.1, 0.2 s ... made them back to back)."""
    from supervisor.boot.swarm import JOIN_RETRY_FIRST, swarm_backoff

    backoff = swarm_backoff({})
    delays = [backoff.next_delay(ran_for=0.0) for _ in range(6)]
    assert delays == [JOIN_RETRY_FIRST, 5.0, 10.0, 20.0, 30.0, 30.0]
    tuned = swarm_backoff({"backoff_initial": 8, "backoff_cap": 60})  # corral.handlers still tunes it
    assert [tuned.next_delay(ran_for=0.0) for _ in range(5)] == [8.0, 8.0, 16.0, 32.0, 60.0]
