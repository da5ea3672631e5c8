"""Journal files: early-boot ring, attach/detach, size rotation without loss or duplication."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import structlog.contextvars

from supervisor.journal import CURRENT, Journal, log_files, read_dir, reset, setup
from supervisor.journal.storage import RotatingFile


@pytest.fixture
def journal() -> Iterator[Journal]:
    yield setup(console=None)
    reset()


def lines_of(log_dir: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in log_files(log_dir):
        out.extend(json.loads(line) for line in path.read_text().splitlines())
    return out


def numbered(log_dir: Path) -> list[int]:
    return [int(str(r["n"])) for r in lines_of(log_dir) if "n" in r]


def test_record_format_on_disk(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path)
    with structlog.contextvars.bound_contextvars(phase="network"):
        structlog.get_logger("supervisor.net").bind(unit="net").info("link up", iface="eth0", obj=object())
    line = (tmp_path / CURRENT).read_text().splitlines()[0]
    record = json.loads(line)
    assert list(record)[:4] == ["ts", "level", "logger", "event"]
    assert record["level"] == "info"
    assert record["logger"] == "supervisor.net"
    assert record["event"] == "link up"
    assert record["unit"] == "net" and record["iface"] == "eth0" and record["phase"] == "network"
    assert record["obj"].startswith("<object object at")
    assert record["ts"].endswith("Z") and "T" in record["ts"]


def test_rotation_keeps_every_record_exactly_once(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path, max_bytes=2000, keep=100)
    log = structlog.get_logger("supervisor.test")
    for n in range(500):
        log.info("filler record", n=n)
    files = log_files(tmp_path)
    assert len(files) > 5, "several rotations expected"
    assert numbered(tmp_path) == list(range(500))
    for path in files:
        assert path.stat().st_size <= 2000


def test_rotation_drops_oldest_files_beyond_keep(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path, max_bytes=1500, keep=3)
    log = structlog.get_logger("supervisor.test")
    for n in range(400):
        log.info("filler record", n=n)
    files = log_files(tmp_path)
    assert len(files) == 4  # current + .1 .. .3
    assert [p.name for p in files] == [f"{CURRENT}.3", f"{CURRENT}.2", f"{CURRENT}.1", CURRENT]
    seen = numbered(tmp_path)
    assert seen == list(range(seen[0], 400)), "a contiguous tail, in order, without duplicates"
    assert [r["n"] for r in journal.query()] == seen


def test_rotation_under_concurrent_threads(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path, max_bytes=4000, keep=1000)
    log = structlog.get_logger("supervisor.test")

    def work(t: int) -> None:
        for i in range(200):
            log.info("from thread", n=t * 1000 + i)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seen = numbered(tmp_path)
    assert sorted(seen) == sorted(t * 1000 + i for t in range(4) for i in range(200))
    for t in range(4):  # each thread's records stay in its order
        mine = [n for n in seen if n // 1000 == t]
        assert mine == sorted(mine)


def test_attach_prunes_files_beyond_keep(journal: Journal, tmp_path: Path) -> None:
    for n in range(1, 8):
        (tmp_path / f"{CURRENT}.{n}").write_text("")
    journal.attach_storage(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURRENT, f"{CURRENT}.1", f"{CURRENT}.2"]


def test_early_ring_flushed_in_order_on_attach(journal: Journal, tmp_path: Path) -> None:
    log = structlog.get_logger("supervisor.boot")
    for n in range(20):
        log.info("early", n=n)
    assert not (tmp_path / CURRENT).exists()
    assert [r["n"] for r in journal.query()] == list(range(20))
    journal.attach_storage(tmp_path)
    log.info("late", n=20)
    assert numbered(tmp_path) == list(range(21))
    journal.detach_storage()  # a remount: records go to the ring, then to disk once each
    log.info("unmounted", n=21)
    journal.attach_storage(tmp_path)
    log.info("remounted", n=22)
    assert numbered(tmp_path) == list(range(23))
    assert not any("overflowed" in str(r["event"]) for r in lines_of(tmp_path))


def test_ring_overflow_counted_and_reported() -> None:
    journal = setup(console=None, ring_size=5)
    try:
        log = structlog.get_logger("supervisor.boot")
        for n in range(8):
            log.info("early", n=n)
        assert journal.ring_dropped == 3
        assert [r["n"] for r in journal.query()] == [3, 4, 5, 6, 7]
    finally:
        reset()


def test_ring_overflow_reported_on_disk(tmp_path: Path) -> None:
    journal = setup(console=None, ring_size=5)
    try:
        log = structlog.get_logger("supervisor.boot")
        for n in range(8):
            log.info("early", n=n)
        journal.attach_storage(tmp_path)
        records = lines_of(tmp_path)
        assert [r["n"] for r in records if "n" in r] == [3, 4, 5, 6, 7]
        report = records[-1]
        assert report["level"] == "warning"
        assert report["dropped"] == 3
        assert "3 early records dropped" in str(report["event"])
        assert journal.ring_dropped == 0
    finally:
        reset()


def test_detach_then_reattach_after_remount(journal: Journal, tmp_path: Path) -> None:
    log = structlog.get_logger("supervisor.test")
    journal.attach_storage(tmp_path)
    log.info("one", n=0)
    journal.detach_storage()
    assert journal.storage_dir is None
    log.info("while unmounted", n=1)
    assert numbered(tmp_path) == [0]
    journal.attach_storage(tmp_path)
    log.info("after", n=2)
    assert numbered(tmp_path) == [0, 1, 2]


def test_torn_last_line_is_skipped_and_not_glued(journal: Journal, tmp_path: Path) -> None:
    (tmp_path / CURRENT).write_bytes(b'{"ts":"2024-01-01T00:00:00.000000Z","event":"old","n":-1}\n{"ts":"20')
    journal.attach_storage(tmp_path)
    structlog.get_logger("supervisor.test").info("new", n=0)
    assert [r["n"] for r in journal.query()] == [-1, 0]
    assert [r["n"] for r in read_dir(tmp_path)] == [-1, 0]


def test_write_failure_falls_back_to_memory(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path)
    store = journal._store
    assert store is not None

    def broken(line: bytes) -> None:
        raise OSError(28, "No space left on device")

    store.write = broken  # type: ignore[method-assign]
    structlog.get_logger("supervisor.test").info("kept", n=1)
    assert journal.storage_dir is None
    events = [r["event"] for r in journal.query()]
    assert events == ["kept", "journal write failed; keeping records in memory until it can write again"]


def test_setup_is_recallable_and_bound_loggers_follow(tmp_path: Path) -> None:
    first = setup(console=None)
    bound = structlog.get_logger("supervisor.x").bind(unit="x")
    bound.info("to first")
    second = setup(console=None)
    try:
        bound.info("to second")
        assert [r["event"] for r in first.query()] == ["to first"]
        assert [r["event"] for r in second.query()] == ["to second"]
        assert second.query()[0]["unit"] == "x"
    finally:
        reset()
    assert not structlog.is_configured()


def test_journal_files_are_not_world_readable(journal: Journal, tmp_path: Path) -> None:
    """Every unit's output is in the journal: 0640 files in a 0750 directory, also after rotation."""
    log_dir = tmp_path / "log" / "corral"
    journal.attach_storage(log_dir, max_bytes=1000, keep=2)
    for n in range(50):
        structlog.get_logger("supervisor.test").info("filler record", n=n)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o750
    files = log_files(log_dir)
    assert len(files) == 3
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}


def test_modes_of_an_existing_journal_are_fixed_at_start(journal: Journal, tmp_path: Path) -> None:
    """A journal an older corral left 0644 in 0755 loses the world's (and the group's write) bits; a
    stricter mode an administrator chose is kept."""
    log_dir = tmp_path / "corral"
    log_dir.mkdir(mode=0o755)
    log_dir.chmod(0o755)
    (log_dir / CURRENT).write_text('{"ts":"2024-05-01T12:00:00.000000Z","event":"old"}\n')
    (log_dir / CURRENT).chmod(0o666)
    (log_dir / f"{CURRENT}.1").write_text("")
    (log_dir / f"{CURRENT}.1").chmod(0o644)
    (log_dir / f"{CURRENT}.2").write_text("")
    (log_dir / f"{CURRENT}.2").chmod(0o600)
    journal.attach_storage(log_dir)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((log_dir / CURRENT).stat().st_mode) == 0o640
    assert stat.S_IMODE((log_dir / f"{CURRENT}.1").stat().st_mode) == 0o640
    assert stat.S_IMODE((log_dir / f"{CURRENT}.2").stat().st_mode) == 0o600


def test_attach_writes_the_ring_a_chunk_at_a_time(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ring (10,000 records after a long outage) is written a chunk per hold of the lock; records
    emitted meanwhile join its end, in order; a detach meanwhile ends the attach."""
    monkeypatch.setattr("supervisor.journal.core.FLUSH_CHUNK", 10)
    log = structlog.get_logger("supervisor.test")
    for n in range(100):
        log.info("early", n=n)
    writes = 0
    real_write = RotatingFile.write

    def write(self: RotatingFile, line: bytes) -> None:
        nonlocal writes
        writes += 1
        real_write(self, line)
        if writes == 5:
            log.info("during", n=100)

    monkeypatch.setattr(RotatingFile, "write", write)
    journal.attach_storage(tmp_path / "a")
    assert numbered(tmp_path / "a") == list(range(101))

    journal.detach_storage()
    for n in range(101, 200):
        log.info("early", n=n)
    writes = 0

    def detaching(self: RotatingFile, line: bytes) -> None:
        nonlocal writes
        writes += 1
        real_write(self, line)
        if writes == 15:
            journal.detach_storage()

    monkeypatch.setattr(RotatingFile, "write", detaching)
    journal.attach_storage(tmp_path / "b")
    assert journal.storage_dir is None and journal.status()["failure"] is None
    assert len(numbered(tmp_path / "b")) == 20  # two chunks, then the detach ended it
    assert [r["n"] for r in journal.query()][:1] == [121]  # the rest waits in memory, in order
