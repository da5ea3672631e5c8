"""PID 1 ready and idle with every handler live: a sandboxed supervisor with the system dockerd (so
aiodocker, pyroute2, pyudev are in use), its VmRSS, PSS and USS (/proc/PID/smaps_rollup), threads and
module count once ready and settled. Two source trees can be compared, alternated sample by sample in
one run (each tree's code runs from its own directory with this venv's packages):

    python3 -m bench.pid1_idle --samples 3 [--tree before=/path/to/checkout] [--tree after=.] [--stall N]

With ``--stall N``, each sample then sends N ``config.validate`` requests, one at a time, while another
thread sends ``config.get hostname`` (answered on PID 1's loop) every 5 ms: the slowest round trip
during each request is how long the loop was held (the worker's release after each request is a full
collection, with the GIL held), and the reading is taken again after them.

Needs root (the sandbox) and a dockerd binary. Prints each sample with the load average, then medians;
the trees alternate sample by sample, the order turned round every round (bench/_stats.py)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._stats import alternate

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
        stalls = int(sys.argv[2])
        if stalls:
            import threading
            pings, stop = [], threading.Event()
            def ping():
                while not stop.is_set():
                    t = time.monotonic()
                    sb.request("config.get", key="hostname")
                    pings.append((t, time.monotonic() - t))
                    time.sleep(0.005)
            doc = "hostname: bench\nwrite_files:\n" + "".join(
                f"- path: /etc/bench{i}\n  content: x\n  permissions: '0644'\n" for i in range(200))
            worst = []
            pinger = threading.Thread(target=ping); pinger.start()
            try:
                for _ in range(stalls):
                    time.sleep(0.5)
                    start = time.monotonic()
                    sb.request("config.validate", yaml=doc)
                    time.sleep(1.0)  # the release runs after the reply
                    worst.append(max(d for t, d in pings if t >= start))
            finally:
                stop.set(); pinger.join()
            out["stall_ms"] = sorted(round(w * 1000, 1) for w in worst)
            out["ping_ms"] = round(sorted(d for _, d in pings)[len(pings) // 2] * 1000, 2)
            time.sleep(float(sys.argv[1]))
            out["rss_after"] = int(Path(f"/proc/{pid}/smaps_rollup").read_text().split("Rss:")[1].split()[0])
        print(json.dumps(out))
    finally:
        sb.stop()
"""


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sample(tree: Path, stalls: int = 0) -> dict[str, Any]:
    env = dict(os.environ, CORRAL_LOOP_GUARD="0", PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", ONE, str(SETTLE), str(stalls)], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=300 + 5 * stalls)
    if out.returncode != 0:
        raise SystemExit(f"{tree}: the sample failed:\n{out.stdout}\n{out.stderr}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def show(figures: dict[str, Any]) -> str:
    mib = {key: figures[key] / 1024 for key in ("rss", "pss", "uss", "anon")}
    text = (f"RSS {mib['rss']:.1f} MiB, PSS {mib['pss']:.1f}, USS {mib['uss']:.1f}, anon {mib['anon']:.1f}, "
            f"{figures['threads']:.0f} threads")
    if "stall_ms" in figures:
        text += (f"; loop held during config.validate (slowest round trip, ms): {figures['stall_ms']}, "
                 f"median round trip {figures['ping_ms']} ms; "
                 f"RSS after {figures['rss_after'] / 1024:.1f} MiB")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                        help="a source tree to measure (default: this one, as 'this')")
    parser.add_argument("--stall", type=int, default=0, metavar="N",
                        help="then N config.validate requests, the loop's slowest round trip during each")
    args = parser.parse_args()
    trees = [(t.split("=", 1)[0], Path(t.split("=", 1)[1]).resolve()) for t in args.tree]
    if not trees:
        trees = [("this", Path(__file__).resolve().parent.parent)]
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    where = dict(trees)
    for n, label in alternate(list(where), args.samples):
        figures = sample(where[label], args.stall)
        results[label].append(figures)
        print(f"sample {n + 1} {label}: {show(figures)}; load {load()}", flush=True)
    for label, samples in results.items():
        med: dict[str, Any] = {key: statistics.median(s[key] for s in samples) for key in samples[0]
                               if key not in ("stall_ms", "ping_ms")}
        if args.stall:
            med["stall_ms"] = [statistics.median(w for s in samples for w in s["stall_ms"])]
            med["ping_ms"] = statistics.median(s["ping_ms"] for s in samples)
        print(f"{label}: median of {len(samples)}: {show(med)}")
    if len(results) == 2:
        (a, sa), (b, sb) = results.items()
        ra, rb = (statistics.median(s["rss"] for s in x) for x in (sa, sb))
        print(f"{b} / {a} RSS: {rb / ra:.2f}x ({(rb - ra) / 1024:+.1f} MiB)")


if __name__ == "__main__":
    main()
