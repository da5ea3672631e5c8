"""`corral status` text: the lines a person reads."""

from __future__ import annotations

from supervisor.cli.status import render_status


def test_udevd_line_shows_state_pid_restarts_and_reason() -> None:
    text = render_status({"state": "ready", "udevd": {"state": "running", "pid": 42, "restarts": 2}})
    assert "udevd:     running, pid 42, 2 restarts" in text
    text = render_status({"state": "degraded", "udevd": {"state": "missing", "reason": "no binary"}})
    assert "udevd:     missing: no binary" in text
    assert "udevd:" not in render_status({"state": "ready", "udevd": None})
