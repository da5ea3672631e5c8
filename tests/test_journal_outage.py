"""Disk full: the journal keeps records in a bounded ring, retries, writes them (and what it dropped) once
it can, and says so in its status meanwhile. A real ENOSPC: current.jsonl is a link to /dev/full."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from supervisor.journal import CURRENT, Journal, reset, setup
from supervisor.journal.outage import Outage, space_may_be_back

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@pytest.fixture
def journal() -> Iterator[Journal]:
    journal = setup(console=None, ring_size=5)
    journal.outage = Outage(journal._lock, journal.attach_storage, first=0.02, cap=0.05)
    yield journal
    reset()


def full_disk(log_dir: Path) -> None:
    log_dir.mkdir(exist_ok=True)
    (log_dir / CURRENT).symlink_to("/dev/full")


def on_disk(log_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (log_dir / CURRENT).read_text().splitlines()]


def wait_for(predicate: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_disk_full_then_space_back(journal: Journal, tmp_path: Path) -> None:
    full_disk(tmp_path)
    journal.attach_storage(tmp_path)
    log = structlog.get_logger("supervisor.test")
    log.info("first", n=0)
    status = journal.status()
    assert status["storage"] is None
    failure = status["failure"]
    assert failure is not None and "No space left on device" in failure["reason"]
    assert str(tmp_path / CURRENT) in failure["reason"]
    for n in range(1, 10):
        log.info("more", n=n)
    assert journal.status()["in_memory"] == 5
    assert journal.status()["dropped"] == 6  # "first", the error record and n=1..4 pushed out
    time.sleep(0.2)  # retries meanwhile fail: the same failure, no record about each
    assert journal.status()["failure"]["tries"] >= 1  # type: ignore[index]

    (tmp_path / CURRENT).unlink()  # space is back
    wait_for(lambda: journal.storage_dir == tmp_path)
    assert journal.status()["failure"] is None
    records = on_disk(tmp_path)
    assert [r.get("n") for r in records[:5]] == [5, 6, 7, 8, 9]  # the newest kept, in order
    back = records[5]
    assert back["level"] == "warning" and back["dropped"] == 6
    assert "journal writing again" in str(back["event"]) and "No space left" in str(back["error"])
    log.info("after", n=10)
    assert on_disk(tmp_path)[-1]["n"] == 10
    assert journal.status() == {"storage": str(tmp_path), "in_memory": 0, "dropped": 0, "failure": None}


def test_no_retry_after_detach(journal: Journal, tmp_path: Path) -> None:
    """Storage detached on purpose (before unmounting): a failed journal stops retrying there."""
    full_disk(tmp_path)
    journal.attach_storage(tmp_path)
    structlog.get_logger("supervisor.test").info("lost disk")
    assert journal.status()["failure"] is not None
    journal.detach_storage()
    (tmp_path / CURRENT).unlink()
    time.sleep(0.3)
    assert journal.storage_dir is None and not (tmp_path / CURRENT).exists()
    assert journal.status()["failure"] is None
    assert not any(t.name == "journal-retry" for t in threading.enumerate())


def test_a_second_failure_after_recovery_is_retried_too(journal: Journal, tmp_path: Path) -> None:
    full_disk(tmp_path)
    journal.attach_storage(tmp_path)
    log = structlog.get_logger("supervisor.test")
    for round_ in range(2):
        log.info("fails", round=round_)
        assert journal.status()["failure"] is not None
        (tmp_path / CURRENT).unlink()
        wait_for(lambda: journal.storage_dir == tmp_path)
        journal.detach_storage()
        (tmp_path / CURRENT).unlink()
        (tmp_path / CURRENT).symlink_to("/dev/full")
        journal.attach_storage(tmp_path)
    journal.close()


def test_space_may_be_back(tmp_path: Path) -> None:
    assert space_may_be_back(tmp_path)
    assert not space_may_be_back(tmp_path, need=1 << 62)
    assert space_may_be_back(tmp_path / "gone")  # cannot tell: try
