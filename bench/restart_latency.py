"""Restart latency, container death -> running again: a unit restarted by corral (restart: always, the
container's own policy `no`) against the same container under dockerd's own `--restart=always`, and
against the floor, a bare `POST /start` of a stopped container; on the same system dockerd in one
sandbox, the sides alternated sample by sample.

Death: SIGKILL to the container's init from the host (its pid from the container's cgroup), the time
taken just before. Running again: the container's new ``State.StartedAt`` (dockerd's clock; the same
host clock). The bare start's clock starts just before its ``POST /start``. Each restarted container
is killed only after it has run for more than 10 s, so both restart policies are at their first,
fastest restart every time (both start their backoff over after 10 s up): corral restarts at once,
dockerd after 100 ms.

Two more sides show what corral could do around dockerd's handling of the exit (during which dockerd
holds the container: a start of it waits until that is done), played by this script, which holds a
pidfd of the init as corral does: `fresh`, at the init's exit a new container of the same config is
created and started; `spare`, a container of the same config created beforehand is started. Their
running again is the new container's ``StartedAt``.

All are the same busybox `sleep`, on the network given (`--net`, default `none`: each run gets a
network namespace of its own, and dockerd runs its `libnetwork-setkey` hook on every start; `host`:
neither). Each sample's line shows the load average.

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
from collections.abc import Awaitable, Callable
from pathlib import Path

import integration.sandbox as sandbox_mod
from bench._stats import pct
from integration.units_helpers import (
    IMAGE,
    SLEEP,
    config,
    container_host_pids,
    unit,
    wait_state,
    with_busybox,
)
from supervisor.paths import Paths
from units.runtime import Runtime
from units.system_dockerd import DockerdLayout, remove_cgroups

UP_BEFORE_KILL = 10.5  # seconds each restarted container runs before it is killed (backoffs start over)
SIDES = ("corral", "docker", "bare", "spare", "fresh")


async def started_at(runtime: Runtime, name: str) -> float | None:
    state = await runtime.inspect(name)
    return state.started_at if state is not None and state.running else None


async def until_started(runtime: Runtime, name: str, after: float, t0: float) -> float:
    """Seconds from ``t0`` until ``name`` runs with a start time past ``after``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = await started_at(runtime, name)
        if now is not None and now > after:
            return now - t0
        await asyncio.sleep(0.002)
    raise RuntimeError(f"{name} not running again within 30 s")


def init_of(sb: sandbox_mod.Sandbox, cid: str) -> int:
    return min(container_host_pids(sb, cid))


async def kill_and_time(sb: sandbox_mod.Sandbox, runtime: Runtime, name: str) -> float:
    """Kill the container's init; seconds until dockerd shows it running with a new start time."""
    state = await runtime.inspect(name)
    assert state is not None and state.running and state.started_at is not None
    pid = init_of(sb, state.id)
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    return await until_started(runtime, name, state.started_at, killed)


async def bare_start(runtime: Runtime, name: str) -> float:
    """``POST /start`` of the stopped container; seconds until it runs. Then stopped for the next."""
    state = await runtime.inspect(name)
    assert state is not None and not state.running
    t0 = time.time()
    await runtime.start(name)
    took = await until_started(runtime, name, state.started_at or 0.0, t0)
    await runtime.kill(name)
    await runtime.wait(name, timeout=30)
    return took


class Replacer:
    """The `spare` and `fresh` sides: a running container replaced at its init's exit by another of the
    same config, the exit seen through a pidfd; containers named PREFIX-0, PREFIX-1, ..."""

    def __init__(self, sb: sandbox_mod.Sandbox, runtime: Runtime, prefix: str, net: str, spare: bool) -> None:
        self.sb, self.runtime, self.prefix, self.spare = sb, runtime, prefix, spare
        self.body = {"Image": IMAGE, "Cmd": SLEEP, "HostConfig": {"NetworkMode": net}}
        self.count = 0

    async def _create(self) -> str:
        self.count += 1
        return await self.runtime.create(self.body, name=f"{self.prefix}-{self.count}")

    async def setup(self) -> None:
        self.current = await self._create()
        await self.runtime.start(self.current)
        self.standby = await self._create() if self.spare else None

    async def replace(self) -> float:
        state = await self.runtime.inspect(self.current)
        assert state is not None and state.running
        pid = init_of(self.sb, state.id)
        fd = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        gone = loop.create_future()
        loop.add_reader(fd, lambda: gone.done() or gone.set_result(None))
        killed = time.time()
        try:
            os.kill(pid, signal.SIGKILL)
            await gone
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        new = self.standby if self.standby is not None else await self._create()
        await self.runtime.start(new)
        took = await until_started(self.runtime, new, 0.0, killed)
        old, self.current = self.current, new
        await self.runtime.remove(old, force=True)
        if self.spare:
            self.standby = await self._create()
        return took


async def measure(sb: sandbox_mod.Sandbox, samples: int, net: str) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {who: [] for who in SIDES}
    async with Runtime(sb.paths.under("/run/system-docker.sock")) as runtime:
        await runtime.create({"Image": IMAGE, "Cmd": SLEEP, "HostConfig": {"NetworkMode": net}}, name="bare")
        spare = Replacer(sb, runtime, "spare", net, spare=True)
        fresh = Replacer(sb, runtime, "fresh", net, spare=False)
        await spare.setup()
        await fresh.setup()
        sides: dict[str, Callable[[], Awaitable[float]]] = {
            "corral": lambda: kill_and_time(sb, runtime, "corral-managed"),
            "docker": lambda: kill_and_time(sb, runtime, "docker-managed"),
            "bare": lambda: bare_start(runtime, "bare"),
            "spare": spare.replace,
            "fresh": fresh.replace,
        }
        last = {who: time.monotonic() for who in SIDES}
        for i in range(samples):
            for who in SIDES:
                if who in ("corral", "docker"):
                    wait = last[who] + UP_BEFORE_KILL - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                else:
                    await asyncio.sleep(0.5)  # the previous side's cleanup is done in dockerd
                latency = await sides[who]()
                last[who] = time.monotonic()
                results[who].append(latency)
                load = os.getloadavg()[0]
                print(f"  {i + 1:2d} {who:6s} {latency * 1e3:7.1f} ms  load {load:.2f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=32, help="samples of each side (default 32)")
    parser.add_argument("--net", choices=("none", "host"), default="none", help="the containers' network")
    args = parser.parse_args()
    sandbox_mod.SYSTEM_DOCKER_DEFAULT = True
    base = Path(tempfile.mkdtemp(prefix="corral-bench-restart-"))
    directory = base / "sb"
    directory.mkdir()
    with_busybox(directory)
    sb = sandbox_mod.Sandbox(directory, config({"corral-managed": unit(restart="always", net=args.net)}))
    loads = [os.getloadavg()[0]]
    try:
        sb.wait_ready(90)
        wait_state(sb, "corral-managed", "running")
        sb.cli("system-docker", "run", "-d", "--name", "docker-managed", "--restart=always",
               "--network", args.net, "corral/busybox", *SLEEP)
        print(f"{args.samples} samples of each of {', '.join(SIDES)}, alternating, the restarted ones after "
              f"{UP_BEFORE_KILL} s up, net {args.net} (about {args.samples * UP_BEFORE_KILL / 60:.0f} min)")
        results = asyncio.run(measure(sb, args.samples, args.net))
        loads.append(os.getloadavg()[0])
        units = sb.request("units.list")
        status = sb.request("status")["units"]
    finally:
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    for who, values in results.items():
        print(f"{who:6s}: median {statistics.median(values) * 1e3:6.1f} ms, "
              f"min {min(values) * 1e3:6.1f} ms, p90 {pct(values, 0.9) * 1e3:6.1f} ms, "
              f"max {max(values) * 1e3:6.1f} ms, n={len(values)}")
    med = {who: statistics.median(values) for who, values in results.items()}
    print(f"corral / dockerd's own policy (medians): {med['corral'] / med['docker']:.2f} (target <= 0.6)")
    print(f"corral - bare start (medians): {(med['corral'] - med['bare']) * 1e3:+.1f} ms (target <= +10 ms)")
    for who in ("spare", "fresh"):
        print(f"{who} / dockerd's own policy: {med[who] / med['docker']:.2f}; {who} - bare start: "
              f"{(med[who] - med['bare']) * 1e3:+.1f} ms")
    print(f"corral counted {units[0]['restarts']} restarts, {status['inits_gone']} of them seen by the "
          f"init's pidfd; load average {loads[0]:.2f} at the start, {loads[1]:.2f} at the end")


if __name__ == "__main__":
    main()
