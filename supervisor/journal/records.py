"""What a journal record is: a flat JSON object with ``ts``, ``level``, ``logger``, ``event`` first."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
# Other programs' names (logrus, syslog/journalctl) for our levels.
_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical", "err": "error", "crit": "critical",
            "trace": "debug", "notice": "info", "panic": "critical", "alert": "critical", "emerg": "critical"}
HEAD_KEYS = ("ts", "level", "logger", "event")
BOOT_KEY = "boot"  # which run of PID 1 logged the record; right after the head keys on disk
_MAX_DEPTH = 16


def normalize_level(name: str) -> str:
    """``"WARN"`` -> ``"warning"``; raises ValueError for a name that is not a level."""
    low = name.strip().lower()
    low = _ALIASES.get(low, low)
    if low not in LEVELS:
        raise ValueError(f"unknown log level {name!r} (expected one of {', '.join(LEVELS)})")
    return low


def level_rank(name: object) -> int:
    """The numeric rank of a record's level; lenient: anything unknown ranks as info."""
    if isinstance(name, str):
        low = name.lower()
        return LEVELS.get(_ALIASES.get(low, low), LEVELS["info"])
    return LEVELS["info"]


def format_ts(epoch: float) -> str:
    """Fixed-width ISO 8601 UTC with microseconds, e.g. ``2024-05-01T12:00:00.000000Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_epoch(ts: object) -> float | None:
    """Epoch seconds of a record's ``ts`` (None if it has no parseable timestamp)."""
    if isinstance(ts, int | float):
        return float(ts)
    if not isinstance(ts, str):
        return None
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` made of JSON types only; anything else becomes its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    try:
        return str(value)
    except Exception as exc:  # a broken __str__ must not break logging
        return f"<unprintable {type(value).__name__}: {exc!r}>"


def ordered(record: Mapping[str, Any]) -> Record:
    """The record with the head keys first (the order they appear in on disk)."""
    out: Record = {k: record[k] for k in HEAD_KEYS if k in record}
    out.update((k, v) for k, v in record.items() if k not in out)
    return out


def stamped(record: Mapping[str, Any], boot: str) -> Record:
    """The record with the head keys first, then ``boot`` (replacing any field of that name)."""
    out: Record = {k: record[k] for k in HEAD_KEYS if k in record}
    out[BOOT_KEY] = boot
    out.update((k, v) for k, v in record.items() if k not in out)
    return out


def encode(record: Record) -> bytes:
    """One JSON line, newline included. Lone surrogates (undecodable file names) stay valid JSON escapes."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    return (text + "\n").encode("utf-8", "backslashreplace")


def weight(value: Any) -> int:
    """Roughly how many bytes ``value`` takes as JSON (strings by length, every other scalar as 8): what
    bounds a batch of records read for ``corral logs`` (a unit's line may be up to 1 MiB)."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        return 2 + sum(len(k) + 3 + weight(v) for k, v in value.items())
    if isinstance(value, list):
        return 2 + sum(weight(v) + 1 for v in value)
    return 8


def decode(line: bytes) -> Record | None:
    """Parse one line; None for a torn or foreign line."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
