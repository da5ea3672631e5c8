"""Docs that execute: every `corral` command that README.md and docs/*.md show (integration/docs_examples.py
says which lines count) runs against a real supervisor, PID 1 in a sandbox with the system dockerd on.
An example fails on a usage error, or on an exit status other than the one its doc shows (``# exits N``).
Examples that need the booted OS (``sudo``, ``# guest``) run in test_guest_os.py instead.

They run in doc order, each through ``bash -o pipefail -c`` (pipes into jq, ``&&`` chains and redirections
work as a reader would type them), with ``corral`` on PATH and ``CORRAL_SOCKET`` naming the sandbox's
socket, in a directory holding the files the examples name (``my.yml``, ``user-data.yml``), after one
reboot of the sandbox (so that ``logs -b -1`` has a boot before this one). A following command (``-f``)
is given two seconds, then Ctrl-C (SIGINT): it must end within five seconds with 0 or 130."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration.docs_examples import Example, all_examples
from integration.sandbox import Sandbox
from integration.units_helpers import config, system_docker_on, unit, wait_for, with_busybox

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

VENV_BIN = Path(sys.executable).parent
# Not run here, each with why.
SKIP = {
    r"^corral sandbox\b": "starts a second supervisor; integration/test_pid1.py runs the sandbox",
    r"^corral (poweroff|reboot|halt)\b": "ends the supervisor; test_pid1.py and test_guest_power.py cover it",
}
# The units the docs' examples name, so that their commands meet real units; and a config for `my.yml`.
UNITS = {name: unit(restart="always") for name in ("web", "ntp")}
MY_YML = "#cloud-config\nhostname: edge-1\ncorral:\n  log:\n    level: info\n"
# docs/cli.md's invalid example: a unit ordered after one that does not exist, a relative mount point.
USER_DATA_YML = """#cloud-config
mounts:
  - [/dev/vdb1, mnt/data]
corral:
  services:
    web:
      image: corral/busybox:latest
      labels:
        io.corral.after: db
"""
CMDLINE = "corral.password=s3cret-docs"  # docs/cli.md shows `config get corral.password` redacted


def skipped(example: Example) -> str | None:
    return next((why for pattern, why in SKIP.items() if re.search(pattern, example.command)), None)


def run(example: Example, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """(exit status, stderr) of one example."""
    argv = ["bash", "-o", "pipefail", "-c", example.command]
    if not example.follows:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
        return done.returncode, done.stderr
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        proc.wait(2)
        return proc.returncode, proc.stderr.read() if proc.stderr else ""  # it ended by itself
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's process group
    try:
        _, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -1, "still running 5 s after SIGINT"
    return (0 if proc.returncode in (0, 130) else proc.returncode), err


@pytest.fixture
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def test_every_doc_example_runs_as_shown(_system_docker: None, sandbox: Any, tmp_path: Path) -> None:
    examples = [e for e in all_examples() if not e.guest]
    assert examples, "no examples found in the docs"
    first: Sandbox = sandbox(config(UNITS), setup=with_busybox, cmdline=CMDLINE)
    first.wait_ready(90)
    assert first.stop() == 0
    sb: Sandbox = sandbox(config(UNITS), cmdline=CMDLINE, again=first)  # a second boot: `logs -b -1` has one
    sb.wait_ready(90)
    wait_for("the docs' units running", lambda: all(
        u["state"] == "running" for u in sb.request("units.list") if u["name"] in UNITS))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "my.yml").write_text(MY_YML)
    (cwd / "user-data.yml").write_text(USER_DATA_YML)
    (cwd / ".venv").symlink_to(VENV_BIN.parent)  # README's `.venv/bin/corral`
    env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket),
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    failures = []
    ran = 0
    for example in examples:
        if skipped(example):
            continue
        status, err = run(example, cwd, env)
        ran += 1
        if status != example.exits:
            failures.append(f"{example.where}: `{example.command}` exited {status} "
                            f"(the doc shows {example.exits}): {err.strip()[-600:]}")
    assert not failures, f"{len(failures)} of {ran} doc examples fail:\n" + "\n".join(failures)
