"""`corral logs -o json` of a large journal keeps PID 1's memory flat (issue 14).

The journal is written before PID 1 starts: rotated files of records of every size a unit may print
(runs of short ones, and runs of lines of hundreds of KiB: a child's line may be up to 1 MiB). The whole
journal is read
through the control socket with the CLI, as a user would, and PID 1's peak RSS (VmHWM) may grow only by
a bound far below the journal's size: the records are streamed a bounded batch at a time. A generous
bound, not a timing."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

from integration.faults import scale
from integration.faults.memory import MIB, assert_bounded, memory
from integration.sandbox import CORRAL, Sandbox

FILE_BYTES = 9 * MIB  # under the 10 MiB rotation size (with room for a last long line and the boot's)
GROWTH_BOUND = 32 * MIB  # PID 1's peak may grow by this much at most, whatever the journal's size


def write_journal(log_dir: Path, total: int, seed: int = 14) -> None:
    """Journal files holding about ``total`` bytes of records, oldest first, in as many files of up to
    FILE_BYTES as needed (at most six: ``current.jsonl`` and five rotated, the journal's cap)."""
    rng = random.Random(seed)
    log_dir.mkdir(parents=True, exist_ok=True)
    files = min(6, -(-total // FILE_BYTES))
    names = ["current.jsonl"] + [f"current.jsonl.{n}" for n in range(1, files)]
    count = 0
    for name in reversed(names):  # the oldest (highest number) first
        with open(log_dir / name, "w") as fh:
            size = 0
            while size < total // files:
                count += 1
                big = count % 300 >= 200  # runs of 200 short lines, then 100 long ones (a dump)
                event = "x" * (rng.randint(100 << 10, 900 << 10) if big else rng.randint(20, 200))
                record = {"ts": "2026-12-07T10:00:00.000000Z", "level": "info", "logger": "unit",
                          "event": event, "boot": "0123456789ab", "unit": "web", "stream": "stdout",
                          "n": count}
                line = json.dumps(record, separators=(",", ":")) + "\n"
                fh.write(line)
                size += len(line)


def stored(log_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in log_dir.glob("current.jsonl*"))


def test_logs_json_of_a_large_journal_keeps_pid1_flat(sandbox: Any) -> None:
    journal_bytes = scale(40, 54) * MIB  # make soak: six files of 9 MiB, the journal's whole cap
    sb: Sandbox = sandbox(setup=lambda d: write_journal(d / "var/log/corral", journal_bytes))
    sb.wait_ready(90)
    records = stored(sb.paths.log_dir)
    pid = sb.pid1
    before = memory(pid)
    env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))
    rounds = scale(1, 3)
    for _ in range(rounds):
        argv = [CORRAL, "logs", "-o", "json", "-p", "debug"]
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as cli:
            assert cli.stdout is not None
            lines = sum(1 for _ in cli.stdout)
        assert cli.returncode == 0
        assert lines >= records, "every stored record was sent"
    after = memory(pid)
    what = f"logs -o json of a {journal_bytes / MIB:.0f} MiB journal ({records} records), {rounds} times"
    assert after.peak - before.peak < GROWTH_BOUND, f"{what}: PID 1's peak grew {before} -> {after}"
    assert_bounded(before, after, GROWTH_BOUND, what)
