"""The root conftest.py gives Ctrl-C its meaning back when the test run was started with SIGINT ignored
(a background job of a script): the tests of the CLI's Ctrl-C handling depend on it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_sigint_has_its_default_meaning_here_and_in_children() -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    child = subprocess.run([sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT))"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert "default_int_handler" in child.stdout, child.stdout


def test_a_run_started_with_sigint_ignored_gets_it_back() -> None:
    node = f"{Path(__file__).relative_to(ROOT)}::test_sigint_has_its_default_meaning_here_and_in_children"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", node],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `make test &` in a script
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
