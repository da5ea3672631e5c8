"""supervisor.allocator: PID 1's allocator settings reach it both ways it is started (image/init in the
guest, `corral sandbox`), and the mmap threshold can be fixed here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog.testing

from supervisor import allocator, sandbox

INIT = Path(__file__).resolve().parents[1] / "image" / "init"


def test_image_init_exports_the_allocator_settings_before_it_starts_pid1() -> None:
    text = INIT.read_text()
    start = text.index("exec /usr/bin/python3 -m supervisor")
    for key, value in allocator.ENV.items():
        assert f"export {key}={value}\n" in text[:start]


def test_the_sandbox_starts_pid1_with_the_allocator_settings(tmp_path: Path) -> None:
    cmd = sandbox.argv(tmp_path)
    python = cmd.index(sys.executable)
    assert Path(cmd[python - 1 - len(allocator.ENV)]).name == "env"
    assert cmd[python - len(allocator.ENV):python] == [f"{k}={v}" for k, v in allocator.ENV.items()]


def test_the_settings_take_effect_in_a_fresh_interpreter() -> None:
    """PYTHONMALLOC=malloc: no pymalloc arenas (sys.getallocatedblocks counts pymalloc's blocks only)."""
    code = "import sys; from supervisor import allocator; print(sys.getallocatedblocks(), allocator.tune())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **allocator.ENV}, text=True,
                         capture_output=True, check=True).stdout.split()
    assert out == ["0", "True"]


def test_pid1_says_so_when_started_without_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.__main__ import _check_allocator

    monkeypatch.delenv("PYTHONMALLOC", raising=False)
    with structlog.testing.capture_logs() as logs:
        _check_allocator()
    assert [(r["log_level"], r["missing"]) for r in logs] == [("warning", "PYTHONMALLOC=malloc")]
    monkeypatch.setenv("PYTHONMALLOC", "malloc")
    with structlog.testing.capture_logs() as logs:
        _check_allocator()
    assert logs == []


ARENAS = """
import ctypes, sys, threading
from supervisor import allocator
if sys.argv[1] == "tune":
    allocator.tune()
barrier = threading.Barrier(7)

def work():
    kept = [bytes(100) for _ in range(1000)]  # from this thread's arena
    barrier.wait()
    barrier.wait()
    del kept

threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads:
    t.start()
barrier.wait()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph per arena, on stderr
barrier.wait()
for t in threads:
    t.join()
"""


def _arenas(how: str) -> int:
    out = subprocess.run([sys.executable, "-c", ARENAS, how], env={**os.environ, **allocator.ENV}, text=True,
                         capture_output=True, check=True, timeout=60)
    return len([line for line in out.stderr.splitlines() if line.startswith("Arena ")])


def test_threads_share_the_second_arena() -> None:
    """glibc gives each new thread that allocates its own arena, up to 8 per core (each keeps its free
    space and top); PID 1 caps them at the loop thread's and one for the others (docs/benchmarks.md)."""
    assert _arenas("as is") > allocator.ARENA_MAX  # the check sees glibc's arenas
    assert _arenas("tune") == allocator.ARENA_MAX
