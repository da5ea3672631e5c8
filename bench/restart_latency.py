"""Restart latency, container death -> running again: a unit restarted by corral (restart: always, the
container's own policy `no`) against the same container under dockerd's own `--restart=always`, on the
same system dockerd in one sandbox, killed alternately.

Death: SIGKILL to the container's init from the host (its pid from the container's cgroup), the time
taken just before. Running again: the container's new ``State.StartedAt`` (dockerd's clock; the same
host clock). Each container is killed only after it has run for more than 10 s, so both restart
policies are at their first, fastest restart every time (both start their backoff over after 10 s up):
corral restarts at once, dockerd after 100 ms.

Both containers are the same busybox `sleep`, on the network given (`--net`, default `none`: each run
gets a network namespace of its own, and dockerd runs its `libnetwork-setkey` hook on every start;
`host`: neither).

    python -m bench.restart_latency [--samples 32] [--net none|host]"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

import integration.sandbox as sandbox_mod
from bench._stats import pct
from integration.units_helpers import SLEEP, config, container_host_pids, unit, wait_state, with_busybox
from supervisor.paths import Paths
from units.runtime import Runtime
from units.system_dockerd import DockerdLayout, remove_cgroups

UP_BEFORE_KILL = 10.5  # seconds each container runs before it is killed (both backoffs start over at 10 s)


async def started_at(runtime: Runtime, name: str) -> float | None:
    state = await runtime.inspect(name)
    return state.started_at if state is not None and state.running else None


async def kill_and_time(sb: sandbox_mod.Sandbox, runtime: Runtime, name: str) -> float:
    """Kill the container's init; seconds until dockerd shows it running with a new start time."""
    state = await runtime.inspect(name)
    assert state is not None and state.running and state.started_at is not None
    before = state.started_at
    pids = container_host_pids(sb, state.id)
    killed = time.time()
    os.kill(min(pids), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = await started_at(runtime, name)
        if now is not None and now > before:
            return now - killed
        await asyncio.sleep(0.002)
    raise RuntimeError(f"{name} not running again within 30 s")


async def measure(sb: sandbox_mod.Sandbox, samples: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"corral": [], "docker": []}
    async with Runtime(sb.paths.under("/run/system-docker.sock")) as runtime:
        last = {"corral": time.monotonic(), "docker": time.monotonic()}
        for i in range(samples):
            for who in ("corral", "docker"):
                wait = last[who] + UP_BEFORE_KILL - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                latency = await kill_and_time(sb, runtime, f"{who}-managed")
                last[who] = time.monotonic()
                results[who].append(latency)
                print(f"  {i + 1:2d} {who:6s} {latency * 1e3:7.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=32, help="kills of each container (default 32)")
    parser.add_argument("--net", choices=("none", "host"), default="none", help="the containers' network")
    args = parser.parse_args()
    sandbox_mod.SYSTEM_DOCKER_DEFAULT = True
    base = Path(tempfile.mkdtemp(prefix="corral-bench-restart-"))
    directory = base / "sb"
    directory.mkdir()
    with_busybox(directory)
    sb = sandbox_mod.Sandbox(directory, config({"corral-managed": unit(restart="always", net=args.net)}))
    try:
        sb.wait_ready(90)
        wait_state(sb, "corral-managed", "running")
        sb.cli("system-docker", "run", "-d", "--name", "docker-managed", "--restart=always",
               "--network", args.net, "corral/busybox", *SLEEP)
        print(f"{args.samples} kills of each, alternating, each after {UP_BEFORE_KILL} s up, net {args.net} "
              f"(about {args.samples * UP_BEFORE_KILL / 60:.0f} min)")
        results = asyncio.run(measure(sb, args.samples))
        restarts = sb.request("units.list")[0]["restarts"]
    finally:
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    corral, docker = results["corral"], results["docker"]
    for who, values in results.items():
        print(f"{who}-managed: median {statistics.median(values) * 1e3:.1f} ms, "
              f"min {min(values) * 1e3:.1f} ms, p90 {pct(values, 0.9) * 1e3:.1f} ms, "
              f"max {max(values) * 1e3:.1f} ms, n={len(values)}")
    ratio = statistics.median(corral) / statistics.median(docker)
    print(f"ratio corral / dockerd's own policy (medians): {ratio:.2f} (target <= 0.5); "
          f"corral counted {restarts} restarts")


if __name__ == "__main__":
    main()
