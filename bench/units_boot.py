"""Boot of N independent units (N = 1, 10, 50) in the sandbox: how long until all of them run, and how
that grows with N. Independent units form one wave and are created and started in parallel.

Figures per boot: ``units``: from the `units` phase starting its units (journal: "starting units") to
the last "unit started"; ``boot``: from spawning the sandbox to the last unit started (the supervisor's
boot, the system dockerd, the image preload and the units). The busybox image is preloaded.

    python -m bench.units_boot [--sizes 1,10,50] [--runs 3]"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import integration.sandbox as sandbox_mod
from bench._stats import loadavg
from integration.units_helpers import config, unit, wait_for, with_busybox
from supervisor.paths import Paths
from units.system_dockerd import DockerdLayout, remove_cgroups


def ts(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()


def boot_once(base: Path, n: int, run: int) -> tuple[float, float]:
    directory = base / f"n{n}-{run}"
    directory.mkdir()
    with_busybox(directory)
    services = {f"unit{i:02d}": unit(restart="always") for i in range(n)}
    spawned = time.time()
    sb = sandbox_mod.Sandbox(directory, config(services))
    try:
        sb.wait_ready(180)
        def journal() -> list[dict[str, Any]]:  # through the control socket: wherever the files are
            return sb.logs(since=spawned - 1)

        records = wait_for("all started", lambda: (r := journal()) and len(
            {x["unit"] for x in r if x.get("event") == "unit started"}) == n and r, 120)
        first = next(ts(r) for r in records if r.get("event") == "starting units")
        last = max(ts(r) for r in records if r.get("event") == "unit started")
        return last - first, last - spawned
    finally:
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,50", help="numbers of units (default 1,10,50)")
    parser.add_argument("--runs", type=int, default=3, help="boots per size (default 3)")
    args = parser.parse_args()
    sandbox_mod.SYSTEM_DOCKER_DEFAULT = True
    base = Path(tempfile.mkdtemp(prefix="corral-bench-boot-"))
    rows = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            units, boots = [], []
            for run in range(args.runs):
                took_units, took_boot = boot_once(base, n, run)
                units.append(took_units)
                boots.append(took_boot)
                print(f"  N={n:3d} run {run + 1}: units {took_units:.3f} s, boot {took_boot:.3f} s   "
                      f"load {loadavg():.2f}", flush=True)
            rows.append((n, statistics.median(units), statistics.median(boots)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{'N':>4} {'units (median)':>15} {'per unit':>10} {'boot (median)':>14}")
    for n, took_units, took_boot in rows:
        print(f"{n:4d} {took_units:14.3f}s {took_units / n * 1e3:8.1f}ms {took_boot:13.3f}s")


if __name__ == "__main__":
    main()
