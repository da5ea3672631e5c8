"""``corral logs`` selection: since / until / unit / level / grep / boot / limit / reverse, reading the
files both ways in bounded memory, and the time forms."""

from __future__ import annotations

import asyncio
import json
import re
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from supervisor.journal import CURRENT, Journal, RecordFilter, log_files, parse_since, read_dir, reset, setup
from supervisor.journal.query import compile_grep, read
from supervisor.journal.storage import BLOCK, Snapshot

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


async def test_stream_reads_without_blocking_the_loop(journal: Journal, tmp_path: Path) -> None:
    write_fixture(tmp_path)
    await asyncio.to_thread(journal.attach_storage, tmp_path)
    assert events([r async for r in journal.stream(unit="docker", limit=1)]) == ["e9"]


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


# --- journalctl's filters: --until, -u several, -g, -r, -b ------------------------------------


def test_until_units_grep_and_reverse(journal: Journal, tmp_path: Path) -> None:
    write_fixture(tmp_path)
    journal.attach_storage(tmp_path)
    at = parse_since
    assert events(journal.query(until=at("-8m", now=NOW))) == ["e0", "e1", "e2"]  # 11:52 included
    assert events(journal.query(since=at("-6m", now=NOW), until=at("-4m", now=NOW))) == ["e4", "e5", "e6"]
    assert events(journal.query(unit=["net", "docker"])) == [f"e{i}" for i in range(10)]
    assert events(journal.query(unit=["docker", "nope"], limit=2)) == ["e7", "e9"]
    assert events(journal.query(grep="e[13]")) == ["e1", "e3"]
    assert events(journal.query(reverse=True, limit=3)) == ["e9", "e8", "e7"]
    assert events(journal.query(reverse=True, unit="net", level="warning")) == ["e6", "e2"]
    assert journal.query(reverse=True, limit=0) == []


def test_grep_ignores_case_unless_the_pattern_has_a_capital(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    for event in ("Link up", "link down", "LINK flapping", "route added", "carrier lost\nlink"):
        log.info(event)
    assert events(journal.query(grep="link")) == [
        "Link up", "link down", "LINK flapping", "carrier lost\nlink"]
    assert events(journal.query(grep="Link")) == ["Link up"]
    assert events(journal.query(grep=r"^link\s")) == ["Link up", "link down", "LINK flapping"]
    assert events(journal.query(grep=r"\S+ (up|down)$")) == ["Link up", "link down"]  # \S is no capital
    assert compile_grep(r"\Dx").flags & re.IGNORECASE
    assert not compile_grep(r"\dX").flags & re.IGNORECASE
    with pytest.raises(ValueError, match="not a valid regular expression: 'a\\(b'"):
        journal.query(grep="a(b")


def test_records_carry_their_boot_and_b_selects_it(tmp_path: Path) -> None:
    """Three boots writing the same files, as PID 1 does at each start: -b is this boot, -b -1 the one
    before; records older than boot stamping belong to none."""
    write_fixture(tmp_path)  # records of an older corral: no boot field
    boots = []
    for n in range(3):
        journal = setup(console=None)
        try:
            journal.attach_storage(tmp_path, max_bytes=700, keep=50)  # boots span rotated files
            for i in range(4):
                structlog.get_logger("supervisor.test").info(f"boot{n}-{i}")
            boots.append(journal.boot_id)
            if n < 2:
                continue
            assert len(set(boots)) == 3 and all(len(b) == 12 for b in boots)
            assert events(journal.query(boot=0)) == [f"boot2-{i}" for i in range(4)]
            assert events(journal.query(boot=-1)) == [f"boot1-{i}" for i in range(4)]
            assert events(journal.query(boot=-2, limit=2)) == ["boot0-2", "boot0-3"]
            assert events(journal.query(boot=-1, reverse=True, grep="-[03]$")) == ["boot1-3", "boot1-0"]
            assert all(r["boot"] == boots[1] for r in journal.query(boot=-1))
            with pytest.raises(LookupError, match=r"no boot -3 \(it holds records of 3 boots\)"):
                journal.query(boot=-3)
            assert len(journal.query()) == 10 + 12  # no -b: every record
        finally:
            reset()
    first = json.loads((log_files(tmp_path)[0]).read_text().splitlines()[0])
    assert "boot" not in first
    stamped = json.loads(log_files(tmp_path)[-1].read_text().splitlines()[-1])
    assert list(stamped)[:5] == ["ts", "level", "logger", "event", "boot"]


def test_a_boot_field_of_the_caller_is_replaced(journal: Journal) -> None:
    structlog.get_logger("supervisor.test").info("x", boot="forged")
    journal.log("from a child", boot="forged too")
    assert [r["boot"] for r in journal.query()] == [journal.boot_id] * 2
    assert journal.query(boot=0) == journal.query()


def test_the_ring_before_storage_reads_backwards_too(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    for n in range(20):
        log.info("r", n=n, unit="a" if n % 2 else "b")
    assert [r["n"] for r in journal.query(unit="a", limit=3)] == [15, 17, 19]
    assert [r["n"] for r in journal.query(reverse=True, limit=3)] == [19, 18, 17]
    assert [r["n"] for r in journal.query(boot=0, limit=1)] == [19]


# --- reading backwards and forwards: the same lines, bounded memory ---------------------------


def test_backward_and_forward_see_the_same_lines(tmp_path: Path) -> None:
    """Lines of every length (longer than a block too), a torn last line, a size limit in the middle of
    a line: the two directions agree on every record and its position."""
    sizes = [1, 5, BLOCK - 30, 3, BLOCK, BLOCK + 7, 2, 3 * BLOCK, 10, 0, 40]
    lines = [json.dumps({"n": n, "pad": "x" * size}) + "\n" for n, size in enumerate(sizes)]
    data = "".join(lines).encode()
    older = tmp_path / f"{CURRENT}.1"
    older.write_bytes(data + b"not json\n" + b'{"torn": ')
    current = tmp_path / CURRENT
    current.write_bytes(data)
    for limit in (None, len(data), len(data) - 1, len(lines[0]) + 3, 0):
        snapshot = Snapshot.of_files([older, current], current_size=limit)
        try:
            forward = list(snapshot.forward())
            backward = list(snapshot.backward())
            assert backward == forward[::-1]
            in_current = [r["n"] for (index, _), r in forward if index == 1]
            # a line is read when its JSON fits (its newline may be past the limit)
            ends = [sum(map(len, lines[: n + 1])) - 1 for n in range(len(lines))]
            assert in_current == [n for n, end in enumerate(ends) if limit is None or end <= limit]
            assert [r["n"] for (index, _), r in forward if index == 0] == list(range(len(lines)))
            for position, record in backward:  # forward from any position starts at that record
                assert next(snapshot.forward(position))[1] == record
        finally:
            snapshot.close()


def test_reading_a_big_journal_holds_little_memory(tmp_path: Path) -> None:
    """-n, -r and a full read of ~8 MB of files peak at a small fraction of it (never the whole journal
    in memory)."""
    record = {"ts": "2024-05-01T12:00:00.000000Z", "level": "info", "logger": "t", "event": "x" * 150}
    line = (json.dumps(record) + "\n").encode()
    for name in (f"{CURRENT}.1", CURRENT):
        (tmp_path / name).write_bytes(line * (4 * 1024 * 1024 // len(line)))
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    selector = RecordFilter(level="info")
    for limit, reverse in ((10, False), (10, True), (None, False), (30_000, False)):
        snapshot = Snapshot.of_files(log_files(tmp_path))
        tracemalloc.start()
        try:
            count = sum(1 for _ in read(snapshot, selector, limit, reverse))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            snapshot.close()
        assert count == (limit or total // len(line))
        assert peak < total / 20, (limit, reverse, peak)


def test_limit_reads_only_the_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.journal import storage

    write_fixture(tmp_path)
    decoded: list[bytes] = []
    real = storage.decode
    monkeypatch.setattr(storage, "decode", lambda line: decoded.append(line) or real(line))
    assert events(read_dir(tmp_path, limit=2)) == ["e8", "e9"]
    assert len(decoded) == 4  # two backwards, the same two forwards


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("-5 min", 300), ("- 2 hours", 7200), ("5 min ago", 300), ("1 hour 30 minutes ago", 5400),
        ("10m", 600), ("2h ago", 7200), ("-1w", 604800), ("-3 days", 3 * 86400), ("+1h", -3600),
        ("90 seconds ago", 90),
    ],
)
def test_parse_time_spans(text: str, ago: float) -> None:
    assert parse_since(text, now=NOW) == pytest.approx(NOW - ago)


def test_parse_time_clock_and_days() -> None:
    assert parse_since("12:30", now=NOW) == NOW + 1800  # today, UTC
    assert parse_since("00:00:30.5", now=NOW) == NOW - 12 * 3600 + 30.5
    assert parse_since("tomorrow", now=NOW) == NOW + 12 * 3600
    for bad in ("25:00", "12:60", "-", "5 parsecs ago", "ago"):
        with pytest.raises(ValueError, match="cannot read time"):
            parse_since(bad, now=NOW)
