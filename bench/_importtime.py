"""``python3 -X importtime``'s report, read: each import with its own and cumulative time, its depth (the
report indents an import under the one that caused it), and, when the lines were timestamped as they
arrived, when it ended. Pure; bench/boot_timeline.py --importtime collects the guest's report.

The interpreter keeps one nesting level and one running total for all threads: while PID 1's prefetch
thread imports at the same time as the main thread, the depths and the own times of both are wrong (own
times even negative), and a cumulative time is the wall time of that import, waits for the GIL included.
The timestamps are right either way: the summary says what was imported before a moment (the system
dockerd's spawn) and lists cumulative times, not own times."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LINE = re.compile(r"^import time:\s+(-?\d+)\s+\|\s+(-?\d+)\s+\|( *)(\S+)\s*$")


@dataclass(frozen=True)
class Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int  # 0: imported by no module being imported (a top-level import of the program)
    at: float | None = None  # when its line arrived (seconds on the caller's clock), if known


def parse(lines: Iterable[str | tuple[float, str]]) -> list[Import]:
    """The imports of a report, in the report's order (a module's line comes after those of the modules
    it imported). Lines may be ``(timestamp, text)``; other lines (the header, the program's own output)
    are skipped."""
    out: list[Import] = []
    for item in lines:
        at, text = item if isinstance(item, tuple) else (None, item)
        m = LINE.match(text.rstrip("\r\n"))
        if m is None:
            continue
        depth = (len(m.group(3)) - 1) // 2
        out.append(Import(m.group(4), int(m.group(1)), int(m.group(2)), depth, at))
    return out


def packages(imports: list[Import]) -> dict[str, int]:
    """Modules imported per top-level package, most first."""
    counts: dict[str, int] = {}
    for i in imports:
        top = i.module.split(".")[0]
        counts[top] = counts.get(top, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summary(imports: list[Import], *, top: int = 20, until: float | None = None) -> list[str]:
    """Lines to print: how many modules; with ``until`` (a time on the lines' clock) how many came before
    it and after, by package; the slowest imports by cumulative (wall) time, with when each ended."""
    if not imports:
        return ["no import lines"]
    lines = [f"{len(imports)} modules"]
    if until is not None:
        before = [i for i in imports if i.at is not None and i.at <= until]
        after = [i for i in imports if i.at is not None and i.at > until]
        for name, part in (("before", before), ("after", after)):
            counts = ", ".join(f"{k} {v}" for k, v in list(packages(part).items())[:12])
            lines.append(f"{name} {until:.1f} s: {len(part)} modules ({counts})")
    lines.append("slowest imports (cumulative wall time, nested ones included):")
    for i in sorted(imports, key=lambda i: -i.cumulative_us)[:top]:
        when = f"  (done at {i.at:.1f} s)" if i.at is not None else ""
        lines.append(f"  {i.cumulative_us / 1e3:9.1f} ms  {i.module}{when}")
    return lines
