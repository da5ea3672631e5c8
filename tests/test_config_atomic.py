"""Atomic writes: a writer killed at any instant leaves the old file or the new one, never a mix,
and never a partial file under the real name."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from supervisor.atomic import CHUNK, write_atomic

OLD = b"old content\n"
SPAWN = multiprocessing.get_context("spawn")  # no fork of the test process (threads, pytest state)


def test_write_creates_with_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.yml"
    write_atomic(target, b"one")
    assert target.read_bytes() == b"one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.yml"]


def test_failure_midway_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.yml"
    target.write_bytes(OLD)
    calls = 0
    real_write = os.write

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"x" * (3 * CHUNK))
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.yml"]


def _hooked_writer(target: str, stage: str, ready: str) -> None:
    """Child process: write a big file, stopping at ``stage`` (after the first chunk, or just before the
    rename) to tell the parent it is there, then wait to be killed."""

    def park() -> None:
        Path(ready).touch()
        time.sleep(60)

    if stage == "mid-write":
        real_write = os.write
        calls = 0

        def write(fd: int, data: bytes | memoryview) -> int:
            nonlocal calls
            calls += 1
            if calls == 2:
                park()
            return real_write(fd, data)

        setattr(os, "write", write)  # noqa: B010 (this child process only)
    else:
        setattr(os, "replace", lambda src, dst: park())  # noqa: B010
    write_atomic(target, b"N" * (8 * CHUNK))


def _looping_writer(target: str, ready: str) -> None:
    """Child process: rewrite the file over and over, each version one repeated byte."""
    Path(ready).touch()
    i = 0
    while True:
        i += 1
        write_atomic(target, bytes([65 + i % 26]) * (4 * CHUNK))


def _wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "child never got there"
        time.sleep(0.01)


def _kill(proc: multiprocessing.process.BaseProcess) -> None:
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("stage", ["mid-write", "before-rename"])
def test_sigkilled_writer_leaves_the_old_file(tmp_path: Path, stage: str) -> None:
    target = tmp_path / "cloud-config.yml"
    target.write_bytes(OLD)
    ready = tmp_path.parent / f"{tmp_path.name}.ready"
    proc = SPAWN.Process(target=_hooked_writer, args=(str(target), stage, str(ready)))
    proc.start()
    try:
        _wait_for(ready)
    finally:
        _kill(proc)
    assert target.read_bytes() == OLD
    strays = [p.name for p in tmp_path.iterdir() if p.name != "cloud-config.yml"]
    assert len(strays) == 1 and strays[0].startswith(".cloud-config.yml.") and strays[0].endswith(".tmp")
    # the next write is unaffected by the stray temp file
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_writer_killed_at_a_random_instant_leaves_a_whole_version(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"A" * (4 * CHUNK))
    ready = tmp_path.parent / f"{tmp_path.name}.ready"
    proc = SPAWN.Process(target=_looping_writer, args=(str(target), str(ready)))
    proc.start()
    try:
        _wait_for(ready)
        time.sleep(0.3)
    finally:
        _kill(proc)
    data = target.read_bytes()
    assert len(data) == 4 * CHUNK
    assert data == data[:1] * len(data)
