"""PID 1 ready and idle with every handler live: a sandboxed supervisor with the system dockerd (so
aiodocker, pyroute2, pyudev are in use), its VmRSS, PSS and USS (/proc/PID/smaps_rollup), threads and
module count once ready and settled. Two source trees can be compared, alternated sample by sample in
one run (each tree's code runs from its own directory with this venv's packages):

    python3 -m bench.pid1_idle --samples 3 [--tree before=/path/to/other/checkout] [--tree after=.]

Needs root (the sandbox) and a dockerd binary. Prints each sample with the load average, then medians."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SETTLE = 5.0
"""Seconds between ready and the reading (the boot's last tasks finish, the prefetch thread ends)."""

ONE = r"""
import json, os, sys, tempfile, time
from pathlib import Path
import integration.sandbox as sandbox
sandbox.SYSTEM_DOCKER_DEFAULT = True
with tempfile.TemporaryDirectory() as tmp:
    sb = sandbox.Sandbox(Path(tmp) / "sb", config={"corral": {"log": {"level": "info"}}})
    try:
        sb.wait_ready(120)
        time.sleep(float(sys.argv[1]))
        pid = sb.pid1
        rollup = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            rollup[key] = int(value.split()[0])
        status = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            status[key] = value.strip()
        out = {"rss": rollup["Rss"], "pss": rollup["Pss"], "anon": rollup["Anonymous"],
               "uss": rollup["Private_Clean"] + rollup["Private_Dirty"], "threads": int(status["Threads"])}
        print(json.dumps(out))
    finally:
        sb.stop()
"""


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sample(tree: Path) -> dict[str, int]:
    env = dict(os.environ, CORRAL_LOOP_GUARD="0", PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", ONE, str(SETTLE)], cwd=tree, env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: the sample failed:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def show(figures: dict[str, int] | dict[str, float]) -> str:
    mib = {key: figures[key] / 1024 for key in ("rss", "pss", "uss", "anon")}
    return (f"RSS {mib['rss']:.1f} MiB, PSS {mib['pss']:.1f}, USS {mib['uss']:.1f}, anon {mib['anon']:.1f}, "
            f"{figures['threads']:.0f} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                        help="a source tree to measure (default: this one, as 'this')")
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
    if not trees:
        trees = [("this", Path(__file__).resolve().parent.parent)]
    results: dict[str, list[dict[str, int]]] = {label: [] for label, _ in trees}
    for n in range(args.samples):
        for label, tree in trees:
            figures = sample(tree)
            results[label].append(figures)
            print(f"sample {n + 1} {label}: {show(figures)}; load {load()}", flush=True)
    for label, samples in results.items():
        med = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
        print(f"{label}: median of {len(samples)}: {show(med)}")
    if len(results) == 2:
        (a, sa), (b, sb) = results.items()
        ra, rb = (statistics.median(s["rss"] for s in x) for x in (sa, sb))
        print(f"{b} / {a} RSS: {rb / ra:.2f}x ({(rb - ra) / 1024:+.1f} MiB)")


if __name__ == "__main__":
    main()
