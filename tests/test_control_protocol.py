"""The wire format's pure parts: encoding, request and reply parsing, error reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.control import protocol
from supervisor.control.protocol import PERMISSION_DENIED, ControlError, ControlUnavailable
from supervisor.events import ProcessExited


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
