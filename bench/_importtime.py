"""``python3 -X importtime``'s report, read: each import with its own and cumulative time, its depth (the
report indents an import under the one that caused it), and, when the lines were timestamped as they
arrived, when it ended. Pure; bench/boot_timeline.py --importtime collects the guest's report."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)\s*$")


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


def top_level(imports: list[Import]) -> list[Import]:
    return [i for i in imports if i.depth == 0]


def summary(imports: list[Import], *, top: int = 20, until: float | None = None) -> list[str]:
    """Lines to print: totals, the slowest top-level imports, the modules with the most time of their
    own; with ``until`` (a time on the lines' clock), how many modules and how much import time came
    before it."""
    if not imports:
        return ["no import lines"]
    total = sum(i.self_us for i in imports)
    lines = [f"{len(imports)} modules, {total / 1e6:.2f} s of import time in all"]
    if until is not None:
        before = [i for i in imports if i.at is not None and i.at <= until]
        lines.append(f"before {until:.1f} s: {len(before)} modules, "
                     f"{sum(i.self_us for i in before) / 1e6:.2f} s")
    lines.append("slowest top-level imports (cumulative):")
    for i in sorted(top_level(imports), key=lambda i: -i.cumulative_us)[:top]:
        when = f"  (done at {i.at:.1f} s)" if i.at is not None else ""
        lines.append(f"  {i.cumulative_us / 1e3:9.1f} ms  {i.module}{when}")
    lines.append("most time of their own:")
    for i in sorted(imports, key=lambda i: -i.self_us)[:top]:
        lines.append(f"  {i.self_us / 1e3:9.1f} ms  {i.module}")
    return lines
