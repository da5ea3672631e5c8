"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
from pathlib import Path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    median = statistics.median(values) * scale
    return f"median {median:.3f} {unit}, p99 {pct(values, 0.99) * scale:.3f} {unit}, n={len(values)}"


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
