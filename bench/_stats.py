"""Small helpers shared by the benchmark scripts: the one way a bench alternates its sides, records each
sample with the load average at that moment, and prints medians and ratios."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages from /proc/loadavg's text."""
    one, five, fifteen = text.split()[:3]
    return float(one), float(five), float(fifteen)


def loadavg(path: Path = Path("/proc/loadavg")) -> float:
    """The 1-minute load average now (printed with every sample: the machine is shared)."""
    return parse_loadavg(path.read_text())[0]


def alternate(sides: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, side) in the order a bench measures them: every side once per round, and the order turned
    round at every round (A B, B A, A B ...), so that neither side always goes first, after the other's
    leftovers (a dockerd still cleaning up, a page cache just warmed)."""
    for i in range(rounds):
        for side in sides if i % 2 == 0 else tuple(reversed(sides)):
            yield i, side


@dataclass
class Sample:
    side: str
    value: float
    load: float


@dataclass
class Samples:
    """Every sample of a run with the load average at its time; medians, percentiles and the ratio of
    medians per side. ``unit`` and ``scale`` are how values (seconds) are printed."""

    unit: str = "ms"
    scale: float = 1e3
    taken: list[Sample] = field(default_factory=list)

    def add(self, side: str, value: float, load: float | None = None) -> Sample:
        sample = Sample(side, value, loadavg() if load is None else load)
        self.taken.append(sample)
        return sample

    def line(self, sample: Sample, label: str = "") -> str:
        head = f"{label} " if label else ""
        value = sample.value * self.scale
        return f"  {head}{sample.side:<18} {value:9.2f} {self.unit}   load {sample.load:.2f}"

    def record(self, side: str, value: float, label: str = "") -> Sample:
        """Add a sample and print its line (with the load average now)."""
        sample = self.add(side, value)
        print(self.line(sample, label), flush=True)
        return sample

    def of(self, side: str) -> list[float]:
        return [s.value for s in self.taken if s.side == side]

    def median(self, side: str) -> float:
        return statistics.median(self.of(side))

    def ratio(self, side: str, peer: str) -> float:
        """The ratio of the medians, side / peer."""
        return self.median(side) / self.median(peer)

    def loads(self) -> tuple[float, float]:
        values = [s.load for s in self.taken]
        return min(values), max(values)

    def report(self, side: str, peer: str) -> list[str]:
        lines = []
        for name in (side, peer):
            values = self.of(name)
            lines.append(
                f"  {name:<18} median {statistics.median(values) * self.scale:8.2f} {self.unit}   "
                f"p99 {pct(values, 0.99) * self.scale:8.2f}   min {min(values) * self.scale:8.2f}   "
                f"max {max(values) * self.scale:8.2f}   n={len(values)}")
        low, high = self.loads()
        p99 = pct(self.of(side), 0.99) / pct(self.of(peer), 0.99)
        lines.append(f"  ratio {side} / {peer}: medians {self.ratio(side, peer):.2f}x, p99 {p99:.2f}x"
                     f"   (load average {low:.2f}-{high:.2f} over the run)")
        return lines
