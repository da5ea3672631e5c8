"""Restart latency, container death -> running again, on the same system dockerd in one sandbox, the sides
alternated sample by sample (the order turned every round, ``bench._stats.alternate``):

- `corral`: a unit restarted by corral (restart: always, the container's own policy `no`), its exit seen
  through the init's pidfd (the default);
- `die-only`: the same, with the pidfd watch off for that unit (``corral debug init-watch UNIT off``): its
  exit is told by dockerd's `die` event alone, the path before the watch;
- `replace`: a unit in replace mode (``io.corral.restart-mode: replace``): at its init's exit corral
  starts the spare it created beforehand, in place of the dead container;
- `docker`: the same container under dockerd's own `--restart=always`, as `docker run --network NET`
  makes it;
- `docker-nd` (`--net none` only): dockerd's own policy on the config corral now creates for a `net: none`
  unit (``NetworkDisabled``, its hosts and resolv.conf bound), created through the API;
- `bare`: the floor, a bare `POST /start` of a stopped container of the config corral creates (its create
  body from ``units.inspect``, without corral's labels);
- `bare-libnet` (`--net none` only): the old floor, a bare start of the `NetworkMode: none` config alone
  (libnetwork's sandbox and its setkey hook at every start), which corral created before;
- `spare`: what the replace mode could reach, played by this script (it holds a pidfd of the init as corral
  does, and at its exit starts a container of corral's config created beforehand).

Death: SIGKILL to the container's init from the host (its pid from the container's cgroup), the time
taken just before. Running again: the new ``State.StartedAt`` (dockerd's clock; the same host clock) of
the unit's container (for `replace` and `spare`, the container that stands in). The bare start's clock
starts just before its ``POST /start``. Each restarted container is killed only after it has run for more
than 10 s, so the restart policies are at their first, fastest restart every time (they start their
backoff over after 10 s up): corral restarts at once, dockerd after 100 ms.

All are the same busybox `sleep`, on the network given (`--net`, default `none`: each run gets a
network namespace of its own; corral's containers (and `docker-nd`, `bare`, `spare`) have no libnetwork
sandbox, `docker` and `bare-libnet` have one and dockerd runs its `libnetwork-setkey` hook on each of
their starts; `host`: no namespace, no hook). Each sample's line shows the load average.

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
from typing import Any

import integration.sandbox as sandbox_mod
from bench._stats import Samples, alternate, pct
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
SIDES = ("corral", "die-only", "replace", "docker", "bare", "spare")
NONE_SIDES = ("docker-nd", "bare-libnet")  # with --net none only
UNITS = {"corral": "corral-managed", "die-only": "corral-dieonly", "replace": "corral-replace",
         "docker": "docker-managed", "docker-nd": "docker-nd"}  # the sides killed, by container name


def sides_of(net: str) -> tuple[str, ...]:
    return (*SIDES, *NONE_SIDES) if net == "none" else SIDES


def corral_body(sb: sandbox_mod.Sandbox, unit: str) -> dict[str, Any]:
    """The create body corral sends for ``unit`` (``units.inspect``), without corral's labels: a
    container of the same config that corral leaves alone."""
    body = dict(sb.request("units.inspect", name=unit)["create"])
    body["Labels"] = {k: v for k, v in (body.get("Labels") or {}).items() if not k.startswith("io.corral.")}
    return body


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
    """The `spare` side: a running container replaced at its init's exit by another of the same config
    created beforehand, the exit seen through a pidfd; containers named PREFIX-1, PREFIX-2, ..."""

    def __init__(self, sb: sandbox_mod.Sandbox, runtime: Runtime, prefix: str, body: dict[str, Any]) -> None:
        self.sb, self.runtime, self.prefix = sb, runtime, prefix
        self.body = body
        self.count = 0

    async def _create(self) -> str:
        self.count += 1
        return await self.runtime.create(self.body, name=f"{self.prefix}-{self.count}")

    async def setup(self) -> None:
        self.current = await self._create()
        await self.runtime.start(self.current)
        self.standby = await self._create()

    async def replace(self) -> float:
        state = await self.runtime.inspect(self.current)
        assert state is not None and state.running
        pid = init_of(self.sb, state.id)
        fd = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        def fire() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(fd, fire)
        killed = time.time()
        try:
            os.kill(pid, signal.SIGKILL)
            await gone
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        new = self.standby
        await self.runtime.start(new)
        took = await until_started(self.runtime, new, 0.0, killed)
        old, self.current = self.current, new
        await self.runtime.remove(old, force=True)
        self.standby = await self._create()
        return took


async def measure(sb: sandbox_mod.Sandbox, samples: int, net: str, body: dict[str, Any]) -> Samples:
    """``body``: the config corral creates for its units (``corral_body``)."""
    results = Samples()
    names = sides_of(net)
    async with Runtime(sb.paths.under("/run/system-docker.sock")) as runtime:
        await runtime.create(body, name="bare")
        spare = Replacer(sb, runtime, "spare", body)
        await spare.setup()
        sides: dict[str, Callable[[], Awaitable[float]]] = {
            **{who: killer(sb, runtime, name) for who, name in UNITS.items() if who in names},
            "bare": lambda: bare_start(runtime, "bare"),
            "spare": spare.replace,
        }
        if net == "none":
            host = dict(body["HostConfig"], RestartPolicy={"Name": "always", "MaximumRetryCount": 0})
            await runtime.create({**body, "HostConfig": host}, name="docker-nd")
            await runtime.start("docker-nd")
            await runtime.create({"Image": IMAGE, "Cmd": SLEEP, "HostConfig": {"NetworkMode": "none"}},
                                 name="bare-libnet")
            sides["bare-libnet"] = lambda: bare_start(runtime, "bare-libnet")
        last = {who: time.monotonic() for who in names}
        for i, who in alternate(names, samples):
            if who in UNITS:
                if who == "replace":  # its next spare is there (made after the last replacement)
                    await until_spare(runtime, UNITS[who])
                wait = last[who] + UP_BEFORE_KILL - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            else:
                await asyncio.sleep(0.5)  # the previous side's cleanup is done in dockerd
            latency = await sides[who]()
            last[who] = time.monotonic()
            results.record(who, latency, label=f"{i + 1:2d}")
    return results


def killer(sb: sandbox_mod.Sandbox, runtime: Runtime, name: str) -> Callable[[], Awaitable[float]]:
    return lambda: kill_and_time(sb, runtime, name)


async def until_spare(runtime: Runtime, unit: str) -> None:
    """Wait until the replace-mode unit's container has its name back and its spare exists."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = await runtime.list_summaries(label=f"io.corral.unit={unit}")
        names = {str((c.get("Names") or [""])[0]).lstrip("/"): c for c in listed}
        spares = [c for c in listed if (c.get("Labels") or {}).get("io.corral.spare") == "true"
                  and c.get("State") == "created"]
        if unit in names and names[unit].get("State") == "running" and spares:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{unit}: no spare within 30 s")


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
    sb = sandbox_mod.Sandbox(directory, config({
        "corral-managed": unit(restart="always", net=args.net),
        "corral-dieonly": unit(restart="always", net=args.net),
        "corral-replace": unit(restart="always", net=args.net, labels={"io.corral.restart-mode": "replace"}),
    }, debug=True))
    loads = [os.getloadavg()[0]]
    try:
        sb.wait_ready(90)
        for name in ("corral-managed", "corral-dieonly", "corral-replace"):
            wait_state(sb, name, "running")
        sb.request("debug.init_watch", name="corral-dieonly", watch=False)
        sb.cli("system-docker", "run", "-d", "--name", "docker-managed", "--restart=always",
               "--network", args.net, "corral/busybox", *SLEEP)
        minutes = args.samples * UP_BEFORE_KILL / 60
        print(f"{args.samples} samples of each of {', '.join(sides_of(args.net))}, alternating, the "
              f"restarted ones after {UP_BEFORE_KILL} s up, net {args.net} (about {minutes:.0f} min)")
        body = corral_body(sb, "corral-managed")
        host = body["HostConfig"]
        print(f"corral's container config: NetworkDisabled {body.get('NetworkDisabled', False)}, "
              f"NetworkMode {host.get('NetworkMode')}, binds {host.get('Binds', [])}")
        results = asyncio.run(measure(sb, args.samples, args.net, body))
        loads.append(os.getloadavg()[0])
        units = {u["name"]: u for u in sb.request("units.list")}
        status = sb.request("status")["units"]
    finally:
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    for who in sides_of(args.net):
        values = results.of(who)
        print(f"{who:11s}: median {statistics.median(values) * 1e3:6.1f} ms, "
              f"min {min(values) * 1e3:6.1f} ms, p90 {pct(values, 0.9) * 1e3:6.1f} ms, "
              f"max {max(values) * 1e3:6.1f} ms, n={len(values)}")
    for who in ("corral", "die-only", "replace", "spare"):
        same = (f"; / dockerd's own policy on the same config: {results.ratio(who, 'docker-nd'):.2f}x"
                if args.net == "none" else "")
        print(f"{who:8s} / dockerd's own policy (medians): {results.ratio(who, 'docker'):.2f}x "
              f"(target <= 0.6){same}; "
              f"- bare start: {(results.median(who) - results.median('bare')) * 1e3:+.1f} ms (target <= +10)")
    if args.net == "none":
        print(f"the two floors: bare start of corral's config / of the NetworkMode: none config (medians): "
              f"{results.ratio('bare', 'bare-libnet'):.2f}x, "
              f"{(results.median('bare') - results.median('bare-libnet')) * 1e3:+.1f} ms")
    print(f"pidfd path / die-only path (medians): {results.ratio('corral', 'die-only'):.2f}x, "
          f"{(results.median('corral') - results.median('die-only')) * 1e3:+.1f} ms")
    low, high = results.loads()
    print(f"restarts counted: corral {units['corral-managed']['restarts']}, die-only "
          f"{units['corral-dieonly']['restarts']}, replace {units['corral-replace']['restarts']}; "
          f"{status['inits_gone']} seen by an init's pidfd; load average {loads[0]:.2f} at the start, "
          f"{loads[1]:.2f} at the end, {low:.2f}-{high:.2f} over the samples")


if __name__ == "__main__":
    main()
