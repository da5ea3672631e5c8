"""Selecting records (``corral logs --since/--until/-u/-p/-g/-b/-n/-r``) and reading time arguments."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from supervisor.journal.records import Record, level_rank, normalize_level, ts_epoch
from supervisor.journal.storage import Snapshot, log_files

_SPAN_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("w", "week", "weeks"), 604800.0),
}
_UNIT_WORDS = "|".join(sorted(_SPAN_UNITS, key=len, reverse=True))
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_SPAN = re.compile(rf"(?:{_NUMBER}\s*(?:{_UNIT_WORDS})?\s*)+")
_SPAN_PART = re.compile(rf"({_NUMBER})\s*({_UNIT_WORDS})?")
_EPOCH = re.compile(_NUMBER)
_TIME_OF_DAY = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}(?:\.[0-9]+)?))?")
_DAYS = {"today": 0, "yesterday": -1, "tomorrow": 1}
TIME_FORMS = ("-30s, -5m, -1h30m, '5 min ago', 10m (ago), +1h, now, today, yesterday, tomorrow, 12:00 "
              "(today), Unix seconds, or an ISO date/time such as 2024-05-01T12:00:00Z")


def _span(text: str) -> tuple[float, bool] | None:
    """``1h30m``, ``5 min``, ``90``: (seconds, whether a unit was given); None when it is not a span."""
    if not _SPAN.fullmatch(text):
        return None
    parts = _SPAN_PART.findall(text)
    return sum(float(n) * _SPAN_UNITS[u or "s"] for n, u in parts), any(u for _, u in parts)


def parse_time(text: str, now: float | None = None) -> float:
    """Epoch seconds for a point in time as ``corral logs --since/--until`` takes it, in UTC:

    * relative to ``now``: ``-5m``, ``-1h30m``, ``-90`` (seconds), ``- 2 hours``, ``5 min ago``,
      ``10m`` (a span with a unit and no sign is that long ago), ``+1h`` (ahead);
    * ``now``; ``today``, ``yesterday``, ``tomorrow`` (midnight); ``12:00`` or ``12:00:30`` (today);
    * ``1714567890`` (Unix seconds); an ISO date or date/time (``2024-05-01``, ``2024-05-01 12:00``,
      ``2024-05-01T12:00:00Z``, ``...+02:00``; without a zone it is UTC).

    Raises ValueError otherwise."""
    if now is None:
        now = time.time()
    s = text.strip().lower()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if s == "now":
        return now
    if s in _DAYS:
        return (midnight + timedelta(days=_DAYS[s])).timestamp()
    if s[:1] in ("-", "+") and (span := _span(s[1:].strip().removesuffix("ago").strip())) is not None:
        return now - span[0] if s[0] == "-" else now + span[0]
    if s.endswith("ago") and (span := _span(s.removesuffix("ago").strip())) is not None:
        return now - span[0]
    if (span := _span(s)) is not None and span[1]:
        return now - span[0]
    if _EPOCH.fullmatch(s):
        return float(s)
    if m := _TIME_OF_DAY.fullmatch(s):
        hours, minutes, seconds = int(m.group(1)), int(m.group(2)), float(m.group(3) or 0)
        if hours < 24 and minutes < 60 and seconds < 61:
            return midnight.timestamp() + hours * 3600 + minutes * 60 + seconds
    iso = text.strip()
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use {TIME_FORMS}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


parse_since = parse_time  # the name it had when only --since took a time


def compile_grep(pattern: str) -> re.Pattern[str]:
    """``--grep``: a regular expression (Python's ``re``) searched for in a record's message. Like
    journalctl's, it ignores case unless the pattern has a capital letter (escapes such as ``\\S`` do not
    count). Raises ValueError for a pattern that does not compile."""
    try:
        return re.compile(pattern, 0 if _has_capital(pattern) else re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {pattern!r}: {exc}") from None


def _has_capital(pattern: str) -> bool:
    escaped = False
    for c in pattern:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c.isupper():
            return True
    return False


@dataclass(frozen=True)
class RecordFilter:
    """Which records to keep: from ``since`` to ``until`` (epoch seconds, both included), of one of
    ``units``, at ``level`` or above, whose message matches ``grep``, of the boot ``boot`` (an id)."""

    since: float | None = None
    unit: str | Sequence[str] | None = None
    level: str | None = None
    until: float | None = None
    grep: str | None = None
    boot: str | None = None
    _units: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.level is not None:
            object.__setattr__(self, "level", normalize_level(self.level))
        units = (self.unit,) if isinstance(self.unit, str) else tuple(self.unit or ())
        object.__setattr__(self, "_units", frozenset(units))
        if self.grep is not None:
            object.__setattr__(self, "_pattern", compile_grep(self.grep))

    @property
    def min_rank(self) -> int:
        return level_rank(self.level) if self.level is not None else 0

    def matches(self, record: Record) -> bool:
        if self._units and record.get("unit") not in self._units:
            return False
        if self.level is not None and level_rank(record.get("level")) < self.min_rank:
            return False
        if self.boot is not None and record.get("boot") != self.boot:
            return False
        if self.since is not None or self.until is not None:
            epoch = ts_epoch(record.get("ts"))
            if epoch is None:
                return False
            if self.since is not None and epoch < self.since:
                return False
            if self.until is not None and epoch > self.until:
                return False
        if self._pattern is not None:
            event = record.get("event")
            if not isinstance(event, str) or self._pattern.search(event) is None:
                return False
        return True


class RecordSource(Protocol):
    """Stored records, readable forwards from a position and backwards (see ``storage.Snapshot``)."""

    def forward(self, start: Any = None) -> Iterator[tuple[Any, Record]]: ...

    def backward(self) -> Iterator[tuple[Any, Record]]: ...

    def close(self) -> None: ...


class MemorySource:
    """The early-boot ring (a copy of it) as a :class:`RecordSource`; positions are list indexes."""

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    def forward(self, start: Any = None) -> Iterator[tuple[Any, Record]]:
        first = start if isinstance(start, int) else 0
        for index in range(first, len(self._records)):
            yield index, self._records[index]

    def backward(self) -> Iterator[tuple[Any, Record]]:
        for index in range(len(self._records) - 1, -1, -1):
            yield index, self._records[index]

    def close(self) -> None:
        self._records = []


def read(
    source: RecordSource, selector: RecordFilter, limit: int | None = None, reverse: bool = False
) -> Iterator[Record]:
    """The matching records of ``source``, oldest first (newest first with ``reverse``); with ``limit``,
    only the newest ``limit`` of them. Memory stays bounded whatever ``limit`` is: oldest first with a
    limit reads backwards to the position of the ``limit``-th newest match, then forwards from there."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    if limit == 0:
        return
    if reverse:
        count = 0
        for _, record in source.backward():
            if selector.matches(record):
                yield record
                count += 1
                if count == limit:
                    return
        return
    start: Any = None
    if limit is not None:
        count = 0
        for position, record in source.backward():
            if selector.matches(record):
                start = position
                count += 1
                if count == limit:
                    break
        if start is None:
            return
    for _, record in source.forward(start):
        if selector.matches(record):
            yield record


def boot_at(source: RecordSource, offset: int, current: str | None) -> str:
    """The id of the boot ``offset`` boots before ``current`` (0: ``current`` itself, -1: the one
    before). Boots are told apart by the ``boot`` field of their records; this reads backwards from the
    newest record only as far as that boot. Raises LookupError when the journal has no such boot."""
    if offset > 0:
        raise ValueError("a boot offset is 0 (this boot) or negative (-1: the boot before)")
    boots: list[str] = [current] if current is not None else []
    if offset == 0 and boots:
        return boots[0]
    for _, record in source.backward():
        boot = record.get("boot")
        if isinstance(boot, str) and boot not in boots:
            boots.append(boot)
            if len(boots) > -offset:
                return boots[-offset]
    held = f"{len(boots)} boot" + ("" if len(boots) == 1 else "s")
    raise LookupError(f"the journal has no boot {offset} (it holds records of {held})")


def read_dir(
    log_dir: Path,
    since: float | None = None,
    unit: str | Sequence[str] | None = None,
    limit: int | None = None,
    level: str | None = None,
) -> list[Record]:
    """Query the journal files in ``log_dir`` without a running Journal (``corral logs`` offline)."""
    selector = RecordFilter(since=since, unit=unit, level=level)
    snapshot = Snapshot.of_files(log_files(log_dir))
    try:
        return list(read(snapshot, selector, limit))
    finally:
        snapshot.close()
