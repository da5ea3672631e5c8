"""PID 1's memory in the fault runs: each run reads it before and after, and asserts the growth is
bounded (a generous bound far below what a leak or an unbounded buffer would show, never a timing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


@dataclass(frozen=True)
class Memory:
    rss: int  # VmRSS, bytes
    peak: int  # VmHWM, bytes

    def __str__(self) -> str:
        return f"RSS {self.rss / MIB:.1f} MiB (peak {self.peak / MIB:.1f} MiB)"


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM of ``pid`` (the sandbox's PID 1 seen from the host)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) * 1024
    return Memory(rss=fields["VmRSS"], peak=fields["VmHWM"])


def assert_bounded(before: Memory, after: Memory, bound: int, what: str) -> None:
    """PID 1's resident memory grew by ``bound`` bytes at most over ``what``; says the figures either way
    (pytest shows them with -s, and the fault runs' figures in docs/reliability.md come from them)."""
    grew = after.rss - before.rss
    print(f"{what}: PID 1 {before} -> {after}: {grew / MIB:+.1f} MiB")
    assert grew <= bound, f"{what}: PID 1's RSS grew by {grew / MIB:.1f} MiB (bound {bound / MIB:.0f} MiB)"
