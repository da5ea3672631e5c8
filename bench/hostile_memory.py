"""PID 1's memory over hostile configs, with a probe inside it: the hostile fault run's documents
(integration/faults/test_hostile_configs.py: validate, merge, reload of a drop-in, set) against a
sandboxed PID 1, and at chosen counts its VmRSS, pymalloc's blocks and arenas (and with
``PYTHONTRACEMALLOC=N`` in the environment, tracemalloc snapshots to compare), through
bench/memprobe/sitecustomize.py. Needs root (the sandbox).

    python3 -m bench.hostile_memory --examples 300 --at 20,100,200 [--dir DIR]

Compare two snapshots: ``tracemalloc.Snapshot.load(a).compare_to(Snapshot.load(b), "traceback")``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

PROBE = Path(__file__).resolve().parent / "memprobe"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--at", default="20,100,200", help="counts at which to read PID 1's memory")
    parser.add_argument("--dir", type=Path, default=None, help="where the probe writes (default: a tmp dir)")
    args = parser.parse_args()
    at = {int(n) for n in args.at.split(",") if n}
    probe = (args.dir or Path(tempfile.mkdtemp(prefix="memprobe"))).resolve()
    probe.mkdir(parents=True, exist_ok=True)
    os.environ["CORRAL_MEMPROBE"] = str(probe)  # the sandbox's PID 1 inherits both
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH")]))

    import hypothesis_jsonschema
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import integration.faults.test_hostile_configs as hostile
    from integration.sandbox import sandbox_factory

    def read(label: str) -> dict[str, Any]:
        (probe / "req").write_text(label)
        while not (probe / f"{label}.json").exists():
            time.sleep(0.1)
        figures: dict[str, Any] = json.loads((probe / f"{label}.json").read_text())
        with open("/proc/loadavg") as f:
            figures["load"] = " ".join(f.read().split()[:3])
        print(json.dumps(figures), flush=True)
        return figures

    factory = sandbox_factory(probe / "sb")
    sb = next(factory)()
    sb.wait_ready()
    tally = hostile.Tally()
    dropin = sb.paths.config_dir / "cloud-config.d" / "90-hostile.yml"
    first = read("start")

    def reload_file(text: str) -> None:
        dropin.write_text(text, encoding="utf-8", errors="surrogateescape")
        hostile.rejected(sb, "reload", str(dropin), tally)
        hostile.call(sb, "status")
        dropin.unlink()
        hostile.call(sb, "reload")

    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(doc=hypothesis_jsonschema.from_schema(hostile.flat_schema()),
           mutation=st.sampled_from(sorted(hostile.MUTATIONS)), where=st.floats(0, 1), reload=st.booleans())
    def one(doc: Any, mutation: str, where: float, reload: bool) -> None:
        text = hostile.MUTATIONS[mutation](hostile.dump(doc), where)
        tally.attempted += 1
        if len(json.dumps(text).encode()) + 200 > hostile.MAX_REQUEST:
            hostile.rejected(sb, "config.validate", "request too long", tally, yaml=text,
                             filename=hostile.NAME)
            reload_file(text)
        elif not hostile.call(sb, "config.validate", yaml=text, filename=hostile.NAME)["valid"]:
            hostile.rejected(sb, "config.merge", hostile.NAME, tally, yaml=text, filename=hostile.NAME)
            if reload:
                reload_file(text)
        if mutation != "as generated":
            value = hostile.MUTATIONS[mutation]("a", where)
            if len(value.encode()) <= (1 << 20) - 1000:
                with contextlib.suppress(AssertionError):
                    hostile.rejected(sb, "config.set", "<set>", tally, key="hostname", value=value)
        hostile.call(sb, "status")
        if tally.attempted in at:
            read(f"n{tally.attempted}")

    try:
        one()
        last = read(f"end{tally.attempted}-trim")
        mib = 1 << 20
        print(f"{tally.attempted} hostile configs (lost {tally.lost}): PID 1 VmRSS {first['rss'] / mib:.1f}"
              f" -> {last['rss'] / mib:.1f} MiB ({(last['rss'] - first['rss']) / mib:+.1f} MiB); "
              f"probe files in {probe}")
    finally:
        for _ in factory:
            pass


if __name__ == "__main__":
    main()
