"""The storage handler's rules follow the config in force: the storage rules the config store parsed for
each generation (a config with bad rules is never in force: the store rejects it whole)."""

from __future__ import annotations

from handlers.storage import StorageHandler
from storage.rules import StorageRules, parse_storage
from supervisor.bus import Bus
from supervisor.process import ProcessManager


def rules_of(config: dict[str, object]) -> StorageRules:
    parsed = parse_storage(config)
    assert parsed.rules is not None, parsed.errors
    return parsed.rules


def test_rules_follow_the_generation_in_force() -> None:
    current = rules_of({"mounts": [["LABEL=A", "/mnt/a"]]})
    handler = StorageHandler(ProcessManager(), Bus(), config=lambda: current)
    assert [r.path for r in handler.rules] == ["/mnt/a"]
    handler.held[("/mnt/a", "/dev/sdb1", 3)] = "mount failed"
    handler._load_rules()
    assert handler.held  # the same generation's rules: nothing is tried again
    current = rules_of({"mounts": [["LABEL=A", "/mnt/a"], {"match": {"label": "B"}, "path": "/mnt/b"}]})
    handler._load_rules()
    assert [r.path for r in handler.rules] == ["/mnt/a", "/mnt/b"]
    assert handler.held == {}  # new rules: held mounts are tried again
