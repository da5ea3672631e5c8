"""The protocol's pure parts: encoding, request parsing, argument checking, the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.control import protocol
from supervisor.control.protocol import COMMANDS, PERMISSION_DENIED, ControlError, ControlUnavailable
from supervisor.events import ProcessExited

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_encode_is_one_line_and_handles_common_types() -> None:
    event = ProcessExited(ts=1.0, pid=3, name="x", returncode=0, signal=None)
    line = protocol.encode({"item": {"p": Path("/a"), "s": {2, 1}, "e": event, "t": "a\nb"}})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["item"] == {
        "p": "/a",
        "s": [1, 2],
        "e": {"ts": 1.0, "pid": 3, "name": "x", "returncode": 0, "signal": None, "orphan": False,
              "kind": "process.exited"},
        "t": "a\nb",
    }  # fmt: skip
    with pytest.raises(TypeError):
        protocol.encode({"x": object()})
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})


def test_parse_request() -> None:
    assert protocol.parse_request(b'{"cmd": "status"}') == protocol.Request("status", {})
    assert protocol.parse_request(b'{"cmd": "x", "args": null, "id": 7}\n') == protocol.Request("x", {})
    for bad in (
        b"",
        b"\xff",
        b"nope",
        b'"status"',
        b'{"cmd": ""}',
        b'{"cmd": 1}',
        b'{"cmd": "x", "args": 1}',
    ):
        with pytest.raises(ControlError):
            protocol.parse_request(bad)


def test_parse_reply() -> None:
    assert protocol.parse_reply({"ok": True, "result": None}) is None
    with pytest.raises(ControlError, match=r"^nope$") as caught:
        protocol.parse_reply({"ok": False, "error": "nope"})
    assert not isinstance(caught.value, ControlUnavailable)
    with pytest.raises(ControlUnavailable):
        protocol.parse_reply({"ok": False, "error": PERMISSION_DENIED})
    with pytest.raises(ControlUnavailable, match="unexpected reply"):
        protocol.parse_reply({"hello": 1})


def test_reasons_are_one_bounded_line() -> None:
    assert ControlError("a\n  b\tc ").reason == "a b c"
    assert len(ControlError("x" * 5000).reason) == protocol.MAX_REASON
    assert protocol.error_reply("") == {"ok": False, "error": "unknown error"}


def test_check_args_defaults_and_types() -> None:
    assert protocol.check_args("config.export", {}) == {"secrets": False}
    assert protocol.check_args("config.validate", {"yaml": "a: 1"}) == {"yaml": "a: 1", "filename": "<stdin>"}
    assert protocol.check_args("logs", {"since": 3}) == {
        "since": 3.0, "unit": None, "limit": None, "level": None, "follow": False,
    }  # fmt: skip
    assert protocol.check_args("events", {"kinds": ["a", "b"]}) == {"kinds": ["a", "b"]}
    assert protocol.check_args("not.catalogued", {"anything": 1}) == {"anything": 1}
    for cmd, args in [
        ("logs", {"limit": True}),
        ("logs", {"since": "yesterday"}),
        ("events", {"kinds": "config"}),
        ("events", {"kinds": [1]}),
        ("config.set", {"key": "a"}),
        ("config.set", {"key": "a", "value": 3}),
        ("status", {"verbose": True}),
    ]:
        with pytest.raises(ControlError):
            protocol.check_args(cmd, args)


def test_kind_matches() -> None:
    assert protocol.kind_matches(None, "phase")
    assert protocol.kind_matches([], "phase")
    assert protocol.kind_matches(["process"], "process.exited")
    assert protocol.kind_matches(["process.exited"], "process.exited")
    assert not protocol.kind_matches(["process"], "processes")
    assert not protocol.kind_matches(["config"], "phase")
    assert protocol.kind_matches(["config"], "resync")


def test_catalogue() -> None:
    assert sorted(COMMANDS) == sorted([
        "status", "config.get", "config.set", "config.unset", "config.export", "config.merge",
        "config.validate", "config.schema", "logs", "events", "reload", "poweroff", "reboot",
        "debug.fail", "debug.spawn",
        "debug.publish",
        "service.list", "service.inspect", "service.up", "service.down", "service.restart", "service.enable",
        "service.disable", "storage.status", "net.status", "net.plan", "net.apply", "net.try", "net.confirm",
        "storage.mount", "storage.unmount", "dev",
    ])  # fmt: skip
    assert COMMANDS["events"].streams == "always" and COMMANDS["logs"].streams == "follow"


def test_docs_describe_every_command_and_argument() -> None:
    text = DOCS.read_text()
    for command in COMMANDS.values():
        assert f"`{command.name}`" in text, command.name
        for arg in command.args:
            assert f"`{arg.name}`" in text, (command.name, arg.name)
