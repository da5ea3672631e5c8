"""Which units are not up (what holds back ``corral <version> ready``): the pure decision, and
``UnitsStatus.wait_all_up`` (handlers/units/status.py) against the fake dockerd of tests/units_fakes.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import handlers.units.status
from handlers.units.status import UP_AFTER, not_up, up_in
from tests.units_fakes import Clock, make, settle, svc
from units.policy import RESET_AFTER


def status(name: str, state: str, uptime: float | None = None) -> dict[str, Any]:
    return {"name": name, "state": state, "uptime": uptime}


# ---- the pure decision ----------------------------------------------------------------------------
def test_not_up_names_the_units_that_are_not_up_with_their_state() -> None:
    statuses = [
        status("web", "running", 5.0),
        status("fresh", "running", 0.2),  # may be about to die
        status("unknown", "running", None),
        status("oneshot", "exited"),
        status("off", "stopped"),
        status("disk", "waiting"),
        status("data", "created"),
        status("data2", "pending"),  # a createonly unit without its container yet
        status("later", "pending"),
        status("again", "restarting"),
        status("loop", "crash-looping", 3.0),
        status("dead", "failed"),
    ]
    assert not_up(statuses) == {"fresh": "running", "unknown": "running", "data2": "pending",
                                "later": "pending", "again": "restarting", "loop": "crash-looping",
                                "dead": "failed"}
    assert not_up([status("web", "running", UP_AFTER)]) == {}
    assert not_up([status("web", "running", 0.2)], stable=0.1) == {}
    assert not_up([]) == {}


def test_up_in_is_when_time_alone_may_bring_a_unit_up() -> None:
    assert up_in([status("fresh", "running", 0.25)], stable=1.0) == pytest.approx(0.75)
    assert up_in([status("loop", "crash-looping", 4.0)]) == pytest.approx(RESET_AFTER - 4.0)
    assert up_in([status("fresh", "running", 0.5), status("loop", "crash-looping", 9.9)],
                 stable=1.0) == pytest.approx(0.1)
    # Nothing changes by time alone: a crash-looping unit between runs, a failed one, an up one.
    assert up_in([status("loop", "crash-looping", None), status("dead", "failed"),
                  status("web", "running", 3.0)], stable=1.0) is None


# ---- waiting --------------------------------------------------------------------------------------
async def test_wait_all_up_returns_what_is_not_up_after_its_timeout(tmp_path: Path) -> None:
    clock = Clock()
    handler, _docker, _ = make(tmp_path, {"web": svc(restart="always"), "later": svc()}, clock=clock)
    handler.load()  # as the `units` boot phase does before the first reconcile
    assert await handler.wait_all_up(0) == {"web": "pending", "later": "pending"}
    await settle(handler)
    assert handler.not_up() == {"web": "running", "later": "running"}  # just started
    clock.now += UP_AFTER
    assert handler.not_up() == {}
    assert await handler.wait_all_up(0) == {}
    await handler.close()


async def test_wait_all_up_looks_again_after_a_reconcile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(handlers.units.status, "UP_RECHECK", 3600.0)  # only a reconcile can end the wait
    handler, docker, _ = make(tmp_path, {"job": svc(restart="no")})
    await settle(handler)
    docker.exit("job", 3)
    await settle(handler)
    assert handler.not_up() == {"job": "failed"}
    waiter = asyncio.ensure_future(handler.wait_all_up())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    await handler.down("job")  # stopped by the user: up (and `down` reconciles)
    assert await asyncio.wait_for(waiter, 60) == {}
    await handler.close()


async def test_wait_all_up_looks_again_when_a_unit_has_run_long_enough(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.units.status, "UP_RECHECK", 3600.0)
    monkeypatch.setattr(handlers.units.status, "UP_AFTER", 0.2)
    clock = Clock()
    handler, _docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    waiter = asyncio.ensure_future(handler.wait_all_up())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    clock.now += 0.2  # no reconcile, no event: the wait's own timer sees it
    assert await asyncio.wait_for(waiter, 60) == {}
    await handler.close()
