"""PID 1's reload: whatever makes it fail shows in `corral status` (degraded, errors) until a good one,
and the last good config stays in force; a reload never dies as a task with a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.app import Options, Supervisor
from supervisor.journal import Journal
from supervisor.paths import Paths


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    """Made before any loop runs, as PID 1 makes it (it reads the shipped defaults)."""
    made = Supervisor(Options(paths=Paths(tmp_path), cmdline=""), Journal())
    yield made
    made.config_worker.shutdown()


async def test_a_reload_that_raises_is_reported_and_cleared_by_a_good_one(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await sup.reload())["applied"] is True

    def broken() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(sup.config, "reload", broken)
    result = await sup.reload()
    assert result["applied"] is False and result["changed"] == []
    assert result["errors"] == [
        "config: (document): reload failed: RecursionError: maximum recursion depth exceeded"]
    assert result["salvaged"] == ["(whole config): 1 error(s); on the last good config"]
    sup.state.ready = True
    status = sup.status()
    assert status["state"] == "degraded" and "config" in status["degraded"]
    assert status["config"]["errors"] == result["errors"]
    monkeypatch.undo()
    assert (await sup.reload())["applied"] is True
    status = sup.status()
    assert status["state"] == "ready" and status["degraded"] == {} and status["config"]["errors"] == []
