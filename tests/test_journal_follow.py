"""``corral logs -f``: followers see new records in order; a slow one is told what it missed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from supervisor.journal import Journal, reset, setup
from supervisor.journal.batches import Batches
from supervisor.journal.records import weight
from supervisor.tasks import spawn_task


@pytest.fixture
def journal() -> Iterator[Journal]:
    yield setup(console=None)
    reset()


async def take(follower: object, n: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    async for record in follower:  # type: ignore[attr-defined]
        out.append(record)
        if len(out) == n:
            break
    return out


async def test_follower_sees_new_records_in_order(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    log.info("before", n=-1)
    async with journal.follow() as follower:
        for n in range(5):
            log.info("after", n=n)
        got = await asyncio.wait_for(take(follower, 5), 2)
    assert [r["n"] for r in got] == [0, 1, 2, 3, 4]
    assert journal.follower_count == 0


async def test_follower_receives_while_waiting(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    follower = journal.follow()
    reader = spawn_task(take(follower, 3), name="reader")
    await asyncio.sleep(0)
    for n in range(3):
        log.info("live", n=n)
        await asyncio.sleep(0)
    got = await asyncio.wait_for(reader, 2)
    follower.close()
    assert [r["n"] for r in got] == [0, 1, 2]


async def test_follow_filters_by_unit_and_level(journal: Journal) -> None:
    async with journal.follow(unit="net", level="warning") as follower:
        structlog.get_logger("a").bind(unit="net").info("quiet")
        structlog.get_logger("a").bind(unit="dhcp").error("other unit")
        structlog.get_logger("a").bind(unit="net").warning("wanted")
        got = await asyncio.wait_for(take(follower, 1), 2)
    assert [r["event"] for r in got] == ["wanted"]


async def test_slow_follower_gets_lag_record_and_logger_never_blocks(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    follower = journal.follow(maxsize=10)
    started = time.monotonic()
    for n in range(1000):  # the follower never runs during this loop
        log.info("burst", n=n)
    assert time.monotonic() - started < 5
    log_after = 1000
    got = await asyncio.wait_for(take(follower, 11), 2)  # 10 queued records, then the lag notice
    assert [r["n"] for r in got[:10]] == list(range(10))
    assert got[10]["event"] == "journal follower lagged; 990 records skipped"
    assert got[10]["skipped"] == 990
    log.info("caught up", n=log_after)
    (latest,) = await asyncio.wait_for(take(follower, 1), 2)
    assert latest["n"] == log_after
    follower.close()


async def test_lag_record_marks_the_gap(journal: Journal) -> None:
    log = structlog.get_logger("supervisor.test")
    follower = journal.follow(maxsize=4)
    for n in range(6):  # 0-3 queued, 4-5 skipped
        log.info("burst", n=n)
    first = await asyncio.wait_for(take(follower, 2), 2)  # room again for the notice and one record
    log.info("next", n=6)
    rest = await asyncio.wait_for(take(follower, 4), 2)
    events = [r.get("n", r["event"]) for r in first + rest]
    assert events == [0, 1, 2, 3, "journal follower lagged; 2 records skipped", 6]
    follower.close()


async def test_follower_gets_records_from_other_threads(journal: Journal) -> None:
    follower = journal.follow()
    thread = threading.Thread(target=lambda: logging.getLogger("pyroute2").warning("from a thread"))
    thread.start()
    got = await asyncio.wait_for(take(follower, 1), 2)
    thread.join()
    follower.close()
    assert got[0]["event"] == "from a thread"


async def test_backlog_then_live_without_gap(journal: Journal, tmp_path: Path) -> None:
    await asyncio.to_thread(journal.attach_storage, tmp_path)
    log = structlog.get_logger("supervisor.test")
    for n in range(5):
        log.info("stored", n=n)
    async with journal.follow(backlog=2) as follower:
        log.info("live", n=5)
        got = await asyncio.wait_for(take(follower, 3), 2)
    assert [r["n"] for r in got] == [3, 4, 5]


async def test_close_ends_iteration(journal: Journal) -> None:
    follower = journal.follow()
    structlog.get_logger("x").info("queued")
    journal.close()
    got = await asyncio.wait_for(take(follower, 2), 2)  # ends after 1
    assert [r["event"] for r in got] == ["queued"]


async def test_follow_with_filters_backlog_and_live(journal: Journal, tmp_path: Path) -> None:
    """`logs -f -u a -u b -p warning -g link -b -n 2`: the filters pick the backlog and the live records."""
    await asyncio.to_thread(journal.attach_storage, tmp_path)
    log = structlog.get_logger("supervisor.test")
    for n in range(6):
        log.warning("link flap", n=n, unit="a" if n % 2 else "b")
    log.warning("link flap", n=6, unit="c")
    log.info("link up", n=7, unit="a")
    async with journal.follow(unit=["a", "b"], level="warning", grep="link", backlog=2, this_boot=True) as f:
        log.warning("link flap", n=8, unit="c")
        log.warning("route lost", n=9, unit="a")
        log.error("Link down", n=10, unit="b")
        got = await asyncio.wait_for(take(f, 3), 2)
    assert [r["n"] for r in got] == [4, 5, 10]


async def test_a_long_backlog_is_read_in_batches(journal: Journal, tmp_path: Path) -> None:
    await asyncio.to_thread(journal.attach_storage, tmp_path, max_bytes=20_000, keep=50)
    log = structlog.get_logger("supervisor.test")
    for n in range(2000):
        log.info("stored", n=n)
    async with journal.follow(backlog=1500) as follower:
        log.info("live", n=2000)
        got = await asyncio.wait_for(take(follower, 1501), 10)
    assert [r["n"] for r in got] == list(range(500, 2001))


async def test_closing_during_the_backlog_closes_the_files(journal: Journal, tmp_path: Path) -> None:
    await asyncio.to_thread(journal.attach_storage, tmp_path)
    log = structlog.get_logger("supervisor.test")
    for n in range(1000):
        log.info("stored", n=n)
    writer_only = len(open_files(tmp_path))  # the journal's own append handle
    follower = journal.follow(backlog=1000)
    assert len(open_files(tmp_path)) == writer_only + 1
    got = await asyncio.wait_for(take(follower, 3), 2)
    assert [r["n"] for r in got] == [0, 1, 2]
    follower.close()
    assert len(open_files(tmp_path)) == writer_only
    rest = await asyncio.wait_for(take(follower, 1000), 2)  # the batch already read, then the end
    assert [r["n"] for r in rest] == list(range(3, 3 + len(rest))) and len(rest) < 997
    assert journal.follower_count == 0


def open_files(directory: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(directory))]


def test_batches_close_while_a_batch_is_being_read() -> None:
    """close() from the loop while the worker reads: the worker closes the iterator when done."""
    started, release = threading.Event(), threading.Event()
    closed: list[str] = []

    def records() -> Iterator[dict[str, object]]:
        try:
            for n in range(10):
                if n == 1:
                    started.set()
                    release.wait(5)
                yield {"n": n}
        finally:
            closed.append("iterator")

    batches = Batches(records(), on_close=lambda: closed.append("source"), size=5)

    async def main() -> list[dict[str, object]]:
        reading = asyncio.ensure_future(batches.next_batch())
        await asyncio.to_thread(started.wait, 5)
        batches.close()  # the worker holds the lock: closing is left to it
        assert closed == []
        release.set()
        return await reading

    batch = asyncio.run(main())
    assert [r["n"] for r in batch] == [0, 1, 2, 3, 4]
    assert closed == ["iterator", "source"]
    assert asyncio.run(batches.next_batch()) == []


def test_a_batch_is_bounded_by_bytes_not_only_by_count() -> None:
    """Records of 1 MiB lines (a unit may print one): a batch holds about BATCH_BYTES of them, never
    BATCH of them (256 MiB), and always at least one."""
    pulled: list[int] = []

    def records() -> Iterator[dict[str, object]]:
        for n in range(40):
            pulled.append(n)
            yield {"n": n, "event": "x" * (300 * 1024)}

    batches = Batches(records(), size=256, max_bytes=1 << 20)
    first = asyncio.run(batches.next_batch())
    assert [r["n"] for r in first] == [0, 1, 2, 3]  # 4 x 300 KiB reach 1 MiB
    assert len(pulled) == 4  # nothing read ahead
    one = Batches(iter([{"event": "y" * (2 << 20)}, {"event": "z"}]), max_bytes=1 << 20)
    assert len(asyncio.run(one.next_batch())) == 1
    assert asyncio.run(one.next_batch()) == [{"event": "z"}]
    batches.close()


def test_weight_is_about_the_json_size() -> None:
    record = {"ts": "2024-05-01T12:00:00.000000Z", "event": "e" * 1000, "fields": {"a": ["b" * 500, 1]}}
    assert abs(weight(record) - len(json.dumps(record, separators=(",", ":")))) < 64


async def test_stream_reads_in_batches_and_closes_the_files(journal: Journal, tmp_path: Path) -> None:
    """What `corral logs` without -f is served by: closing the stream early closes the files too."""
    await asyncio.to_thread(journal.attach_storage, tmp_path)
    log = structlog.get_logger("supervisor.test")
    for n in range(1000):
        log.info("stored", n=n, unit="a" if n % 2 else "b")
    writer_only = len(open_files(tmp_path))
    assert [r["n"] async for r in journal.stream(unit="a", limit=3)] == [995, 997, 999]
    assert [r["n"] async for r in journal.stream(reverse=True, limit=2)] == [999, 998]
    assert len(open_files(tmp_path)) == writer_only
    records = journal.stream()
    assert (await anext(records))["n"] == 0
    assert len(open_files(tmp_path)) == writer_only + 1
    await records.aclose()
    assert len(open_files(tmp_path)) == writer_only
    with pytest.raises(LookupError, match="no boot -1"):
        [r async for r in journal.stream(boot=-1)]
    assert len(open_files(tmp_path)) == writer_only
