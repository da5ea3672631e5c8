"""The control socket protocol: newline-delimited JSON over a root-only unix stream socket.

Wire format (every message is one line of UTF-8 JSON terminated by ``\\n``):

* Request: ``{"cmd": "status", "args": {...}}``. ``args`` may be omitted (same as ``{}``); other fields
  are ignored. A request line is at most ``MAX_REQUEST`` bytes; a longer one gets an error and the
  connection is closed. Several unary requests may be sent one after another on one connection.
  A request that is not one JSON object gets an error reply and the connection goes on: a blank line,
  bad JSON, a key given twice (``{"cmd": "status", "cmd": "poweroff"}``), NaN or Infinity, a number
  too large for a double or of more than ``MAX_DIGITS`` digits, or objects and lists nested deeper
  than ``MAX_DEPTH``.
* Limits of the server (``supervisor.control.server``): at most ``MAX_CONNECTIONS`` connections at
  once; a connection that sends no whole request for ``IDLE_TIMEOUT`` seconds is told so and closed;
  at the limit a new connection takes the place of one idle for ``EVICT_IDLE`` seconds or more (told
  so and closed), else it is refused with code ``busy``, which the client retries.
* Reply: ``{"ok": true, "result": <any JSON>}`` or ``{"ok": false, "error": "<one-line reason>"}``; an
  error a client may want to tell apart from others also has ``"code"`` (``ERROR_CODES``). A bad
  argument has code ``bad-argument`` and ``"problem"``: the diagnostic (the catalogue's ``ConfigProblem``:
  the command as ``file``, the argument as ``key``, the message and a suggestion when there is one).
* Streaming commands (``events``, ``logs``) first reply ``{"ok": true, "stream": true}``,
  then send one ``{"item": <any JSON>}`` line per item. The stream lasts until the client disconnects.
  If the server ends it, the last line is ``{"end": true}`` (ended normally) or
  ``{"ok": false, "error": "..."}`` (failed); then the server closes the connection. The client sends
  nothing while a stream runs.
* A peer whose uid is not root gets ``{"ok": false, "error": PERMISSION_DENIED}`` and is disconnected.

The commands, their arguments and their results are catalogued in ``supervisor.control.catalogue``.
Handlers raise ``ControlError(reason)`` for an expected failure (the reason goes to the client as is);
any other exception is logged with its traceback and reported as ``"<cmd> failed: <Type>: <message>"``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config.errors import ConfigError
from supervisor.paths import Paths

DEFAULT_SOCKET: Path = Paths().control_socket  # /run/corral/control.sock
SOCKET_ENV = "CORRAL_SOCKET"
MAX_REQUEST = 1 << 20  # bytes in one request line
MAX_DIGITS = 40  # digits of one integer in a message (2**64 has 20)
MAX_DEPTH = 32  # nesting of objects and lists in one request (the request object itself is 1)
MAX_CONNECTIONS = 256  # connections served at once
IDLE_TIMEOUT = 60.0  # seconds a connection may wait before sending a whole request
EVICT_IDLE = 1.0  # seconds idle after which a connection may make room for a new one at the limit
MAX_REPLY = 256 << 20  # bytes in one reply line, as the client accepts them
MAX_REASON = 1000  # characters kept of an error reason
PERMISSION_DENIED = "permission denied: the control socket is root-only"

NOT_SET = "not-set"
BAD_ARGUMENT = "bad-argument"
BUSY = "busy"
ERROR_CODES = {
    NOT_SET: "config.get: the key is known to the schema but has no value in the config in force",
    BAD_ARGUMENT: "an argument is missing, unknown or wrong; the reply's problem says which and why",
    BUSY: "the server is at its connection limit and closed the connection unread: try again",
}


class ControlError(Exception):
    """A command failed; ``reason`` is one line meant for a person, ``code`` (one of ``ERROR_CODES``,
    or None) tells programs which failure it is.

    Handlers raise it for expected failures (``no such key: corral.foo``); the client raises it
    when the server replied ``ok: false``. ``problem`` is the diagnostic of a bad argument."""

    def __init__(self, reason: str, code: str | None = None, problem: ConfigError | None = None) -> None:
        self.reason = one_line(reason)
        self.code = code
        self.problem = problem
        super().__init__(self.reason)


def argument_error(problem: ConfigError) -> ControlError:
    """A bad argument as the client is told: ``argument 'limit' of 'logs': expected ...``."""
    reason = f"argument {problem.key!r} of {problem.file!r}: {problem.message}"
    return ControlError(reason, BAD_ARGUMENT, problem)


class ControlUnavailable(ControlError):
    """The supervisor could not be reached, refused the connection, or broke the protocol."""


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """Collapse whitespace (newlines included) and cut to ``limit`` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text or "unknown error"


def describe_exception(exc: BaseException) -> str:
    message = one_line(str(exc)) if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- encoding ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for the types handlers are likely to return."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line. Raises TypeError when a value cannot be represented in JSON."""
    return (
        json.dumps(message, default=_jsonable, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        + "\n"
    ).encode()


def encode_request(cmd: str, args: Mapping[str, Any] | None = None) -> bytes:
    return encode({"cmd": cmd, "args": dict(args or {})})


def ok_reply(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def error_reply(reason: str, code: str | None = None, problem: ConfigError | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": False, "error": one_line(reason)}
    if code is not None:
        reply["code"] = code
    if problem is not None:
        reply["problem"] = problem.to_dict()
    return reply


STREAM_START: dict[str, Any] = {"ok": True, "stream": True}
STREAM_END: dict[str, Any] = {"end": True}


def stream_item(item: Any) -> dict[str, Any]:
    return {"item": item}


class _Malformed(ValueError):
    """Raised by the JSON hooks; its message goes to the client."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a key given twice is an error (``{"cmd": "status", "cmd": "poweroff"}``
    would otherwise be taken as poweroff, the last one winning)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Malformed(f"duplicate key {key!r}")
        out[key] = value
    return out


def _finite(text: str) -> float:
    """``parse_float``: 1e400 would be infinity."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Malformed(f"number {one_line(text, 40)} is too large")
    return value


def _bounded_int(text: str) -> int:
    """``parse_int``: no argument wants a number of more than ``MAX_DIGITS`` digits."""
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _Malformed(f"a number of {digits} digits is too large (the limit is {MAX_DIGITS})")
    return int(text)


def _no_constant(name: str) -> Any:
    """``parse_constant``: NaN, Infinity and -Infinity are not JSON."""
    raise _Malformed(f"{name} is not a JSON number")


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply ``value``'s objects and lists nest (a scalar: 0, ``{}``: 1), counted up to ``limit + 1``
    at most (it stops looking there)."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        todo.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def decode_line(line: bytes, max_depth: int | None = None) -> dict[str, Any]:
    """Parse one line into a JSON object; ControlError when it is not one: a blank line, bad JSON, a key
    given twice, a non-finite number, or (``max_depth``) objects and lists nested deeper than that."""
    if not line.strip():
        raise ControlError("malformed message: an empty line (expected a JSON object)")
    limit = f"the limit of {max_depth} levels" if max_depth is not None else "what the parser allows"
    too_deep = f"malformed message: objects and lists nested deeper than {limit}"
    try:
        message = json.loads(line, object_pairs_hook=_unique_keys, parse_float=_finite,
                             parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:  # deeper than the interpreter's recursion limit: the limit below is lower
        raise ControlError(too_deep) from None
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, the hooks' _Malformed
        raise ControlError(f"malformed JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ControlError(f"malformed message: expected a JSON object, got {type(message).__name__}")
    if max_depth is not None and nesting_depth(message, max_depth) > max_depth:
        raise ControlError(too_deep)
    return message


@dataclass(frozen=True)
class Request:
    cmd: str
    args: dict[str, Any]


def parse_request(line: bytes, max_depth: int = MAX_DEPTH) -> Request:
    message = decode_line(line, max_depth)
    cmd = message.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ControlError('malformed request: "cmd" must be a non-empty string')
    args = message.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ControlError('malformed request: "args" must be a JSON object')
    return Request(cmd, args)


def parse_reply(message: Mapping[str, Any]) -> Any:
    """The result of a unary reply; ControlError for an error reply."""
    if message.get("ok") is True and "result" in message:
        return message["result"]
    if message.get("ok") is False:
        reason = str(message.get("error") or "unknown error")
        code = message.get("code")
        if reason == PERMISSION_DENIED:
            raise ControlUnavailable(reason)
        if code == BUSY:  # the connection was refused unread: the command did not run
            raise ControlUnavailable(reason, BUSY)
        raise ControlError(reason, code if isinstance(code, str) else None, _problem(message.get("problem")))
    raise ControlUnavailable(f"unexpected reply from the supervisor: {one_line(json.dumps(message), 200)}")


def _problem(data: Any) -> ConfigError | None:
    """The ``problem`` of an error reply, when it is one."""
    if not isinstance(data, dict):
        return None
    file, key, message = data.get("file"), data.get("key"), data.get("message")
    line, suggestion = data.get("line"), data.get("suggestion")
    if not (isinstance(file, str) and isinstance(key, str) and isinstance(message, str)):
        return None
    return ConfigError(
        file,
        key,
        message,
        line if isinstance(line, int) else None,
        suggestion if isinstance(suggestion, str) else None,
    )
