"""The journal of a real PID 1 keeps secrets out and other users out (issue 14): a unit printing its TLS
key is logged redacted, by the one rule of secret names the config uses too; the journal's files are
0640 in a 0750 directory, and a journal an older corral left readable by everyone is fixed at start."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import config, system_docker_on, unit, wait_for, with_busybox

SECRET = "s3cr3t-Tls-Key-Value"
OLD_RECORD = {"ts": "2026-01-01T00:00:00.000000Z", "level": "info", "logger": "corral", "event": "old boot"}


def old_journal(directory: Path) -> None:
    """What an older corral left: a 0755 directory of 0644 files."""
    log_dir = directory / "var/log/corral"
    log_dir.mkdir(parents=True)
    for name in ("current.jsonl", "current.jsonl.1"):
        (log_dir / name).write_text(json.dumps(OLD_RECORD) + "\n")
        (log_dir / name).chmod(0o644)
    log_dir.chmod(0o755)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30)


def test_journal_files_are_not_readable_by_other_users(sandbox: Any) -> None:
    sb: Sandbox = sandbox(setup=old_journal)
    sb.wait_ready(60)
    log_dir = sb.paths.log_dir
    assert mode(log_dir) == 0o750
    assert {p.name: mode(p) for p in log_dir.iterdir()} == {"current.jsonl": 0o640, "current.jsonl.1": 0o640}
    assert any(r.get("event") == "old boot" for r in sb.journal()), "the old records are kept"
    # a local user who is not root (nor in root's group) cannot read it
    denied = as_nobody("cat", str(log_dir / "current.jsonl"))
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert sb.stop() == 0


@pytest.fixture
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


@pytest.mark.docker
@pytest.mark.usefixtures("_system_docker")
def test_a_unit_printing_its_tls_key_is_logged_redacted(sandbox: Any) -> None:
    """The config's rule has tls_key; the journal's list had not: one rule now, for both."""
    printer = unit(["sh", "-c", f"echo TLS_KEY={SECRET}; echo 'tls.key: {SECRET}'; echo done printing; "
                   "trap 'exit 0' TERM; sleep 600 & wait"])
    sb: Sandbox = sandbox(config({"printer": printer}), setup=with_busybox)
    sb.wait_ready(90)
    wait_for("the unit's output", lambda: any(r.get("event") == "done printing" for r in sb.journal()), 60)
    lines = [r["event"] for r in sb.journal() if r.get("unit") == "printer" and "stream" in r]
    assert "TLS_KEY=<redacted>" in lines and "tls.key: <redacted>" in lines, lines
    for path in sb.paths.log_dir.iterdir():
        assert SECRET not in path.read_text(), f"{path.name} holds the key in clear"
    shown = sb.cli("logs", "-u", "printer").stdout
    assert "TLS_KEY=<redacted>" in shown and SECRET not in shown
