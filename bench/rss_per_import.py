"""RSS per import (issue 17): each top module PID 1 imports, alone in a fresh interpreter, and the VmRSS
it adds over a bare interpreter (``python3 -X importtime`` gives the time; this gives the memory). The
median of ``--samples`` fresh interpreters each; third-party modules first, then corral's own entry
points (which import the third-party ones they use: their figure includes those).

    python3 -m bench.rss_per_import [--samples 5]
    python3 -m bench.rss_per_import --lean --over supervisor.app --handlers [--samples 5]

``--lean`` first narrows the imports as PID 1 does (``supervisor.lean.setup``); ``--over MODULE`` measures
each row over a fresh interpreter that imported MODULE (so a row is what it adds to PID 1, not to a bare
interpreter); ``--handlers`` measures each handler with the libraries it loads once live (``HANDLERS``).
A row may name several modules joined by ``+``.
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

HANDLERS = (
    "supervisor.journal", "supervisor.config.store", "supervisor.control.server+supervisor.commands.core",
    "handlers.network+pyroute2.iproute.linux+pyroute2.dhcp.client", "handlers.storage+storage.observe",
    "handlers.udevd+handlers.devices+supervisor.sources.udev+pyudev",
    "supervisor.sources.acpi+pyroute2.netlink.event.acpi_event",
    "units.system_dockerd+handlers.units.reconciler+units.runtime+supervisor.sources.docker",
    "handlers.hostname+handlers.authorized_keys+handlers.processes+handlers.cloudconfig.write_files+handlers.cloudconfig.sysctl",
)
"""Each handler (or part of PID 1) with what it imports once live: pyroute2's modules are imported where
they are first used, aiodocker when the system dockerd is up, pyudev when the udev source starts."""

LEAN = "from supervisor import lean\nlean.setup()\n"

PROBE = (
    "import sys\n"
    "{imports}\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
)


def rss_kib(modules: list[str], prelude: str = "") -> int:
    """VmRSS (KiB) of a fresh interpreter once ``prelude`` ran and ``modules`` are imported."""
    names = [name for m in modules for name in m.split("+")]
    code = PROBE.format(imports=prelude + "\n".join(f"import {m}" for m in names))
    env = dict(os.environ, CORRAL_LOOP_GUARD="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


def median_rss(modules: list[str], samples: int, prelude: str = "") -> float:
    return statistics.median(rss_kib(modules, prelude) for _ in range(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--lean", action="store_true", help="narrow the imports as PID 1 does first")
    parser.add_argument("--over", default="", help="measure each row over this module, imported first")
    parser.add_argument("--handlers", action="store_true", help="the handlers' rows (HANDLERS)")
    parser.add_argument("modules", nargs="*")
    args = parser.parse_args()
    modules = args.modules or list(HANDLERS if args.handlers else MODULES)
    prelude = LEAN if args.lean else ""
    base = [args.over] if args.over else []
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    bare = median_rss(base, args.samples, prelude)
    over = f"`{args.over}`" if args.over else "a bare interpreter"
    print(f"load average {load}; {over}{' (lean)' if args.lean else ''}: {bare / 1024:.1f} MiB "
          f"(median of {args.samples})")
    print(f"| import | VmRSS | added over {over} |")
    print("|---|---|---|")
    print(f"| (none) | {bare / 1024:.1f} MiB | |")
    for module in modules:
        try:
            rss = median_rss([*base, module], args.samples, prelude)
        except subprocess.CalledProcessError:
            print(f"| `{module}` | not installed | |")
            continue
        print(f"| `{module}` | {rss / 1024:.1f} MiB | {(rss - bare) / 1024:+.1f} MiB |")


if __name__ == "__main__":
    main()
