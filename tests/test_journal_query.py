"""``corral logs`` selection: since / unit / level / limit, and the ``--since`` forms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from supervisor.journal import CURRENT, Journal, parse_since, read_dir, reset, setup

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def journal() -> Iterator[Journal]:
    yield setup(console=None, level="debug")
    reset()


def write_fixture(log_dir: Path) -> None:
    """Records one minute apart, 11:50 .. 11:59, alternating units and levels."""
    units = ["net", "docker"]
    levels = ["debug", "info", "warning", "error"]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / CURRENT).open("w") as fh:
        for i in range(10):
            ts = datetime(2024, 5, 1, 11, 50 + i, 0, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            rec = {"ts": ts, "level": levels[i % 4], "logger": "t", "event": f"e{i}", "unit": units[i % 2]}
            fh.write(json.dumps(rec) + "\n")


def events(records: list[dict[str, object]]) -> list[object]:
    return [r["event"] for r in records]


def test_query_filters(journal: Journal, tmp_path: Path) -> None:
    write_fixture(tmp_path)
    journal.attach_storage(tmp_path)
    assert len(journal.query()) == 10
    assert events(journal.query(unit="net")) == ["e0", "e2", "e4", "e6", "e8"]
    assert events(journal.query(level="warning")) == ["e2", "e3", "e6", "e7"]
    assert events(journal.query(level="error")) == ["e3", "e7"]
    assert events(journal.query(since=parse_since("-3m", now=NOW))) == ["e7", "e8", "e9"]
    assert events(journal.query(limit=2)) == ["e8", "e9"]
    assert events(journal.query(unit="docker", level="warning", limit=1)) == ["e7"]
    assert journal.query(limit=0) == []
    assert events(read_dir(tmp_path, unit="net", limit=2)) == ["e6", "e8"]


def test_query_spans_rotated_files_oldest_first(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path, max_bytes=600, keep=50)
    log = structlog.get_logger("supervisor.test")
    for n in range(40):
        log.bind(unit="a" if n % 2 else "b").info("r", n=n)
    assert [r["n"] for r in journal.query()] == list(range(40))
    assert [r["n"] for r in journal.query(unit="a", limit=3)] == [35, 37, 39]


def test_query_ring_before_storage(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    log.debug("dbg", unit="x")
    log.info("inf", unit="y")
    log.error("err", unit="x")
    assert events(journal.query(unit="x")) == ["dbg", "err"]
    assert events(journal.query(level="info")) == ["inf", "err"]


async def test_aquery(journal: Journal, tmp_path: Path) -> None:
    write_fixture(tmp_path)
    journal.attach_storage(tmp_path)
    assert events(await journal.aquery(unit="docker", limit=1)) == ["e9"]


def test_level_threshold_of_setup() -> None:
    journal = setup(console=None, level="warning")
    try:
        log = structlog.get_logger("supervisor.test")
        log.info("dropped")
        log.debug("dropped")
        log.warning("kept")
        assert events(journal.query()) == ["kept"]
        journal.set_level("debug")
        log.debug("now kept")
        assert events(journal.query()) == ["kept", "now kept"]
    finally:
        reset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-30s", NOW - 30),
        ("-5m", NOW - 300),
        ("-2h", NOW - 7200),
        ("-1d", NOW - 86400),
        ("-1h30m", NOW - 5400),
        ("-90", NOW - 90),
        ("1714564800", 1714564800.0),
        ("1714564800.5", 1714564800.5),
        ("2024-05-01T11:00:00Z", NOW - 3600),
        ("2024-05-01T13:00:00+02:00", NOW - 3600),
        ("2024-05-01 11:00:00", NOW - 3600),
        ("2024-05-01", NOW - 12 * 3600),
        ("now", NOW),
        ("today", NOW - 12 * 3600),
        ("yesterday", NOW - 36 * 3600),
    ],
)
def test_parse_since(text: str, expected: float) -> None:
    assert parse_since(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "soon", "-5x", "2024-13-01"])
def test_parse_since_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read time"):
        parse_since(text, now=NOW)


def test_query_rejects_unknown_level(journal: Journal) -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        journal.query(level="loud")
