"""`corral status` text: the lines a person reads."""

from __future__ import annotations

from supervisor.cli.status import render_status


def test_udevd_line_shows_state_pid_restarts_and_reason() -> None:
    text = render_status({"state": "ready", "udevd": {"state": "running", "pid": 42, "restarts": 2}})
    assert "udevd:     running, pid 42, 2 restarts" in text
    text = render_status({"state": "degraded", "udevd": {"state": "missing", "reason": "no binary"}})
    assert "udevd:     missing: no binary" in text
    assert "udevd:" not in render_status({"state": "ready", "udevd": None})


def test_journal_line_says_where_it_writes_or_why_it_cannot() -> None:
    text = render_status({"state": "ready", "journal": {"storage": "/var/log/corral", "in_memory": 0,
                                                          "dropped": 0, "failure": None}})
    assert "journal:   writing /var/log/corral" in text
    failure = {"path": "/var/log/corral/current.jsonl", "since": "2026-12-07T10:00:00.000000Z",
               "error": "[Errno 28] No space left on device", "tries": 3, "reason": "..."}
    text = render_status({"state": "degraded", "journal": {"storage": None, "in_memory": 10000,
                                                             "dropped": 12, "failure": failure}})
    assert ("journal:   NOT WRITING /var/log/corral/current.jsonl since 2026-12-07T10:00:00.000000Z: "
            "[Errno 28] No space left on device; 10000 records in memory, 12 dropped") in text
    text = render_status({"state": "booting", "journal": {"storage": None, "in_memory": 1, "failure": None}})
    assert "journal:   no storage yet; 1 record in memory" in text
