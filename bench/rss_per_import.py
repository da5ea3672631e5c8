"""RSS per import (issue 17): each top module PID 1 imports, alone in a fresh interpreter, and the VmRSS
it adds over a bare interpreter (``python3 -X importtime`` gives the time; this gives the memory). The
median of ``--samples`` fresh interpreters each; third-party modules first, then corral's own entry
points (which import the third-party ones they use: their figure includes those).

    python3 -m bench.rss_per_import [--samples 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

MODULES = (
    "yaml", "jsonschema", "referencing", "structlog", "rich", "pyroute2", "pyudev", "aiodocker",
    "supervisor.journal", "supervisor.config.store", "supervisor.app", "supervisor.commands.core",
)
"""PID 1's top modules: the third-party packages it imports, then corral's own (supervisor.app is what
``python3 -m supervisor`` imports before its loop runs; handlers import pyroute2, pyudev and aiodocker)."""

PROBE = (
    "import sys\n"
    "{imports}\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
)


def rss_kib(modules: list[str]) -> int:
    """VmRSS (KiB) of a fresh interpreter once ``modules`` are imported."""
    code = PROBE.format(imports="\n".join(f"import {m}" for m in modules))
    env = dict(os.environ, CORRAL_LOOP_GUARD="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


def median_rss(modules: list[str], samples: int) -> float:
    return statistics.median(rss_kib(modules) for _ in range(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    bare = median_rss([], args.samples)
    print(f"load average {load}; bare interpreter: {bare / 1024:.1f} MiB (median of {args.samples})")
    print("| import | VmRSS | added over a bare interpreter |")
    print("|---|---|---|")
    print(f"| (none) | {bare / 1024:.1f} MiB | |")
    for module in args.modules:
        try:
            rss = median_rss([module], args.samples)
        except subprocess.CalledProcessError:
            print(f"| `{module}` | not installed | |")
            continue
        print(f"| `{module}` | {rss / 1024:.1f} MiB | +{(rss - bare) / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
