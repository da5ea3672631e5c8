"""Rendering records for the console: colourful on a TTY, plain ``ts level [logger] event k=v`` otherwise,
or one JSON object per line for machines."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, TextIO

from structlog.dev import ConsoleRenderer

from supervisor.journal.records import BOOT_KEY, HEAD_KEYS, Record

ConsoleFormat = Literal["auto", "pretty", "plain", "json"]
Renderer = Callable[[Record], str]

_BARE_UNSAFE = frozenset(' "=\\\n\r\t')


def _plain_value(value: Any) -> str:
    if isinstance(value, str):
        if value and not any(c in _BARE_UNSAFE for c in value):
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def render_plain(record: Record) -> str:
    """``2024-05-01T12:00:00.000000Z warning [supervisor.net] link down iface=eth0``, then the traceback
    (if any) indented on the following lines. The ``boot`` field (the same on every line) is left out."""
    head = f"{record.get('ts', '-')} {record.get('level', 'info'):<7} [{record.get('logger', '-')}] "
    parts = [head + str(record.get("event", ""))]
    parts.extend(
        f"{key}={_plain_value(value)}"
        for key, value in record.items()
        if key not in HEAD_KEYS and key not in ("traceback", BOOT_KEY)
    )
    line = " ".join(parts)
    tb = record.get("traceback")
    if isinstance(tb, str) and tb:
        line += "\n" + "\n".join("    " + tl for tl in tb.rstrip("\n").splitlines())
    return line


def render_json(record: Record) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def make_pretty(colors: bool) -> Renderer:
    """structlog's ConsoleRenderer, fed our record (``ts`` timestamp, ``traceback`` as the exception)."""
    renderer = ConsoleRenderer(colors=colors, timestamp_key="ts", sort_keys=False)

    def render(record: Record) -> str:
        event_dict = dict(record)
        event_dict.pop(BOOT_KEY, None)
        tb = event_dict.pop("traceback", None)
        if tb:
            event_dict["exception"] = str(tb).rstrip("\n")
        return str(renderer(None, str(record.get("level", "info")), event_dict))

    return render


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def make_renderer(console_format: ConsoleFormat, stream: TextIO | None) -> Renderer:
    """The renderer for ``console_format``; ``auto`` picks pretty on a TTY and plain otherwise."""
    if console_format == "json":
        return render_json
    if console_format == "plain":
        return render_plain
    tty = stream is not None and is_tty(stream)
    if console_format == "pretty":
        return make_pretty(colors=tty)
    if console_format == "auto":
        return make_pretty(colors=True) if tty else render_plain
    raise ValueError(f"unknown console format {console_format!r} (expected auto, pretty, plain or json)")
