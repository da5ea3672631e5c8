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
