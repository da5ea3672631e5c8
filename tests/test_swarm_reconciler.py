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
