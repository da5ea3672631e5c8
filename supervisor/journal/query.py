"""Selecting records (``corral logs --since/-u/-p/-n``) and reading ``--since`` arguments."""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from supervisor.journal.records import Record, level_rank, normalize_level, ts_epoch
from supervisor.journal.storage import Snapshot, log_files

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RELATIVE = re.compile(r"-\s*((?:[0-9]+(?:\.[0-9]+)?\s*[smhdw]?\s*)+)(?:\s*ago)?")
_RELATIVE_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdw]?)")
_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``text``: ``-5m``/``-2h``/``-30s``/``-1d``/``-1h30m`` (relative to ``now``),
    ``1714567890`` (epoch), an ISO timestamp (``2024-05-01T12:00:00Z``; without a zone it is UTC),
    ``now``, ``today`` or ``yesterday`` (UTC midnight). Raises ValueError otherwise."""
    if now is None:
        now = time.time()
    s = text.strip().lower()
    if s == "now":
        return now
    if s in ("today", "yesterday"):
        midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - timedelta(days=1 if s == "yesterday" else 0)).timestamp()
    m = _RELATIVE.fullmatch(s)
    if m:
        seconds = sum(float(n) * _UNITS[u or "s"] for n, u in _RELATIVE_PART.findall(m.group(1)))
        return now - seconds
    if _EPOCH.fullmatch(s):
        return float(s)
    iso = text.strip()
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use -30s/-5m/-2h/-1d, epoch seconds or an ISO timestamp"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class RecordFilter:
    """Which records to keep: at or after ``since``, of ``unit``, at ``level`` or above."""

    since: float | None = None
    unit: str | None = None
    level: str | None = None

    def __post_init__(self) -> None:
        if self.level is not None:
            object.__setattr__(self, "level", normalize_level(self.level))

    @property
    def min_rank(self) -> int:
        return level_rank(self.level) if self.level is not None else 0

    def matches(self, record: Record) -> bool:
        if self.unit is not None and record.get("unit") != self.unit:
            return False
        if self.level is not None and level_rank(record.get("level")) < self.min_rank:
            return False
        if self.since is not None:
            epoch = ts_epoch(record.get("ts"))
            if epoch is None or epoch < self.since:
                return False
        return True


def select(records: Iterable[Record], selector: RecordFilter, limit: int | None = None) -> list[Record]:
    """The matching records in order; with ``limit``, only the newest ``limit`` of them."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    matching = (r for r in records if selector.matches(r))
    if limit is None:
        return list(matching)
    return list(deque(matching, maxlen=limit))


def read_dir(
    log_dir: Path,
    since: float | None = None,
    unit: str | None = None,
    limit: int | None = None,
    level: str | None = None,
) -> list[Record]:
    """Query the journal files in ``log_dir`` without a running Journal (``corral logs`` offline)."""
    selector = RecordFilter(since=since, unit=unit, level=level)
    return select(Snapshot.of_files(log_files(log_dir)).records(), selector, limit)
