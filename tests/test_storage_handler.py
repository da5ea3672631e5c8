"""The storage handler's rules follow the config in force; invalid rules leave the last good ones."""

from __future__ import annotations

from typing import Any

from handlers.storage import StorageHandler
from supervisor.bus import Bus
from supervisor.process import ProcessManager


def test_rules_follow_the_config_and_bad_rules_keep_the_last_good() -> None:
    current: dict[str, Any] = {"mounts": [["LABEL=A", "/mnt/a"]]}
    handler = StorageHandler(ProcessManager(), Bus(), config=lambda: current)
    assert [r.path for r in handler.rules] == ["/mnt/a"]
    handler.held[("/mnt/a", "/dev/sdb1", 3)] = "mount failed"
    current = {"mounts": [["LABEL=A", "/mnt/a"], {"match": {"label": "B"}, "path": "/mnt/b"}]}
    handler._load_rules()
    assert [r.path for r in handler.rules] == ["/mnt/a", "/mnt/b"]
    assert handler.held == {}  # new rules: held mounts are tried again
    current = {"mounts": [["LABEL=A", "relative"]]}
    handler._load_rules()
    assert [r.path for r in handler.rules] == ["/mnt/a", "/mnt/b"]
    assert handler.rule_errors == ["config: mounts[0][1]: 'relative' is not an absolute path"]
    assert handler.status()["rule_errors"] == handler.rule_errors
