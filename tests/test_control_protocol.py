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
    with pytest.raises(ControlUnavailable, match=r"^busy: try again$") as busy:  # the CLI's exit code 3
        protocol.parse_reply({"ok": False, "error": "busy: try again", "code": protocol.BUSY})
    assert busy.value.code == protocol.BUSY


def test_reasons_are_one_bounded_line() -> None:
    assert ControlError("a\n  b\tc ").reason == "a b c"
    assert len(ControlError("x" * 5000).reason) == protocol.MAX_REASON
    assert protocol.error_reply("") == {"ok": False, "error": "unknown error"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\n", "malformed message: an empty line (expected a JSON object)"),
        (b" \t \r\n", "malformed message: an empty line (expected a JSON object)"),
        (b'{"cmd": "status", "cmd": "poweroff"}', "malformed JSON: duplicate key 'cmd'"),
        (b'{"cmd": "x", "args": {"a": 1, "a": 2}}', "malformed JSON: duplicate key 'a'"),
        (b'{"cmd": "x", "args": {"n": NaN}}', "malformed JSON: NaN is not a JSON number"),
        (b'{"cmd": "x", "args": {"n": -Infinity}}', "malformed JSON: -Infinity is not a JSON number"),
        (b'{"cmd": "x", "args": {"n": 1e400}}', "malformed JSON: number 1e400 is too large"),
        (b'{"cmd": "x", "args": {"n": -' + b"9" * 41 + b"}}",
         "malformed JSON: a number of 41 digits is too large (the limit is 40)"),
        (b'{"cmd": "x", "args": {"n": ' + b"9" * 5000 + b"}}",
         "malformed JSON: a number of 5000 digits is too large (the limit is 40)"),
        (b'{"cmd": "x", "args": ' + b"[" * 32 + b"]" * 32 + b"}",
         "malformed message: objects and lists nested deeper than the limit of 32 levels"),
        # deeper than the interpreter's recursion limit: json.loads raised RecursionError and the
        # server closed the connection without a word
        (b'{"cmd": "x", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "malformed message: objects and lists nested deeper than the limit of 32 levels"),
        (b"[" * 1_000_000, "malformed message: objects and lists nested deeper than the limit of 32 levels"),
    ],
)
def test_malformed_requests_name_what_is_wrong(line: bytes, reason: str) -> None:
    with pytest.raises(ControlError) as caught:
        protocol.parse_request(line)
    assert caught.value.reason == reason


def test_nesting_up_to_the_limit_is_fine() -> None:
    line = b'{"cmd": "x", "args": {"a": ' + b"[" * 29 + b"1" + b"]" * 29 + b"}}"
    assert protocol.parse_request(line).args["a"][0][0] is not None  # 1 + 1 + 1 + 29 = 32 levels
    assert protocol.nesting_depth(1, 5) == 0
    assert protocol.nesting_depth({"a": [{}], "b": 1}, 5) == 3
    assert protocol.nesting_depth([[[[[[[[[]]]]]]]]], 3) == 4  # stops looking past the limit
    assert protocol.decode_line(b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}") != {}  # replies: no limit


def test_numbers_within_bounds_pass() -> None:
    args = protocol.parse_request(b'{"cmd": "x", "args": {"a": 1.5e300, "b": -' + b"9" * 40 + b"}}").args
    assert args == {"a": 1.5e300, "b": -int("9" * 40)}
