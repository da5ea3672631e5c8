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


def test_os_lines_show_the_slot_a_trial_and_a_rollback() -> None:
    assert "os:" not in render_status({"state": "ready", "os": {"slot": None, "boot": "not-installed"}})
    text = render_status({"state": "ready", "os": {"slot": "B", "boot": "trial", "trial": "pending",
                                                    "trial_version": "2.0", "rolled_back": None}})
    assert "os:        slot B, trial of version 2.0: pending" in text and "upgrade:" not in text
    report = {"message": "upgrade to version 2.0 rolled back: not ready within 900 s",
              "journal": {"path": "/var/log/corral/rolled-back/2.0-abc.jsonl", "records": 10}}
    os_status = {"slot": "A", "boot": "rolled-back", "rolled_back": report}
    text = render_status({"state": "ready", "os": os_status})
    assert "os:        slot A\n" in text
    assert "upgrade:   upgrade to version 2.0 rolled back: not ready within 900 s" in text
    assert "the failed boot's journal: /var/log/corral/rolled-back/2.0-abc.jsonl" in text
