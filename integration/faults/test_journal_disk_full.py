"""Disk full under the journal (issue 14): a real PID 1 whose /var/log/corral is a small tmpfs the test made.

The tmpfs is mounted on the sandbox's own log directory just before PID 1 starts, so that PID 1's new
mount namespace (private propagation) gets a copy of it; the host's copy is unmounted as soon as PID 1
runs. From then on the tmpfs exists only in the sandbox, and the test reaches it as PID 1 sees it:
/proc/PID/root/... The test fills it to ENOSPC, makes PID 1 log, and checks that ``corral status`` is
degraded with the reason; frees the space, and checks that the journal writes again (the records kept in
memory first, then a record of how many were dropped), and that status is back to ready."""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from integration.faults import scale
from integration.sandbox import Sandbox
from supervisor.journal.core import DEFAULT_RING_SIZE

# room for the 10,000 records kept in memory once the filler is gone, round after round
TMPFS_SIZE = "32m"


def mount_tmpfs(directory: Path) -> Path:
    log_dir = directory / "var/log/corral"
    log_dir.mkdir(parents=True, exist_ok=True)
    options = f"size={TMPFS_SIZE},mode=0750"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "corral-test-log", str(log_dir)], check=True)
    return log_dir


def seen_by_pid1(sb: Sandbox, path: Path) -> Path:
    return Path(f"/proc/{sb.pid1}/root") / path.relative_to("/")


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the file system is full; the bytes written."""
    written = 0
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        while True:
            try:
                written += fh.write(block)
            except OSError:
                break
    with contextlib.suppress(OSError), open(path, "ab", buffering=0) as fh:  # the last partial pages too
        while fh.write(b"\0" * 512):
            written += 512
    return written


def log_burst(sb: Sandbox, count: int) -> None:
    """Make PID 1 log ``count`` records (each a refused `config.get` of an unknown key, logged at info),
    over one connection, a batch of requests at a time."""
    request = (json.dumps({"cmd": "config.get", "args": {"key": "corral.no_such_key"}}) + "\n").encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(sb.paths.control_socket))
        sock.settimeout(30)
        reader = sock.makefile("rb")
        sent = 0
        while sent < count:
            batch = min(200, count - sent)
            sock.sendall(request * batch)
            for _ in range(batch):
                assert reader.readline(), "the supervisor closed the connection"
            sent += batch


def journal_records(log_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rotated = sorted(log_dir.glob("current.jsonl.*"), key=lambda p: -int(p.suffix[1:]))
    files = [*rotated, log_dir / "current.jsonl"]
    for path in files:
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def wait_status(sb: Sandbox, check: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = sb.request("status")
        if check(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen in {timeout} s; last status: {status.get('state')} "
                         f"{status.get('degraded')} {status.get('journal')}")


def test_journal_disk_full_then_space_back(sandbox: Any) -> None:
    mounted: list[Path] = []

    def setup(directory: Path) -> None:
        mounted.append(mount_tmpfs(directory))

    try:
        sb: Sandbox = sandbox(setup=setup)
        sb.pid1  # noqa: B018  (PID 1 runs: its mount namespace holds its copy of the tmpfs)
    finally:
        for path in mounted:  # the host's copy goes at once
            subprocess.run(["umount", "-l", str(path)], check=False)
    assert sb.wait_ready(60)["state"] == "ready"
    log_dir = seen_by_pid1(sb, sb.paths.log_dir)
    assert (log_dir / "current.jsonl").exists(), "the journal is on the sandbox's tmpfs"
    rounds = scale(1, 3)
    recovery: list[float] = []
    for round_ in range(rounds):
        filler = log_dir / "filler"
        assert fill(filler) > 0
        # PID 1 logs until a write fails; more than the ring holds, so that the oldest are dropped
        log_burst(sb, 50)
        failed = wait_status(sb, lambda s: "journal" in s["degraded"], 20, "the journal degraded")
        assert failed["state"] == "degraded"
        reason = failed["degraded"]["journal"]
        assert "No space left on device" in reason and "current.jsonl" in reason, reason
        assert failed["journal"]["failure"]["error"].endswith("No space left on device")
        assert failed["journal"]["storage"] is None
        text = sb.cli("status").stdout
        assert "journal:   NOT WRITING" in text and "journal: cannot write" in text
        overflow = DEFAULT_RING_SIZE + 500
        log_burst(sb, overflow)
        during = sb.request("status")["journal"]
        assert during["in_memory"] == DEFAULT_RING_SIZE and during["dropped"] >= 500, during

        filler.unlink()  # space is back
        freed = time.monotonic()
        back = wait_status(sb, lambda s: "journal" not in s["degraded"], 40, "the journal writing again")
        assert back["state"] == "ready", back["degraded"]
        recovery.append(time.monotonic() - freed)
        assert back["journal"]["failure"] is None and back["journal"]["storage"] == str(sb.paths.log_dir)
        records = journal_records(log_dir)
        recovered = [r for r in records if str(r.get("event", "")).startswith("journal writing again")]
        assert len(recovered) == round_ + 1
        assert recovered[-1]["dropped"] >= 500 and "No space left" in recovered[-1]["error"]
        # (the "journal write failed" record was among the oldest kept in memory: dropped by the overflow;
        # the recovery record says what failed and since when)
        assert recovered[-1]["since"] <= recovered[-1]["ts"]
        # what was kept in memory came before the recovery record, in order
        refused = [i for i, r in enumerate(records) if r.get("event") == "control command refused"]
        at = records.index(recovered[-1])
        assert sum(1 for i in refused if i < at) >= DEFAULT_RING_SIZE - 10
        log_burst(sb, 5)  # and it goes on writing
        later = journal_records(log_dir)[at + 1:]
        assert sum(1 for r in later if r.get("event") == "control command refused") >= 5
    assert sb.proc.poll() is None, "PID 1 alive"
    print(f"disk full: {rounds} round(s) attempted, {len(recovery)} survived, none lost beyond the counted "
          f"drops; writing again {statistics.median(recovery):.1f} s (median) after the space was freed")
