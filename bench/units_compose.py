"""N units -> all running: corral against `docker-compose up -d` of the same N services, on the same
system dockerd in one sandbox, alternated (the order turned round at every round).

One sandbox (the system dockerd, the busybox image preloaded) serves the whole run. A sample of N:

- corral: `corral config merge FILE` adding N units (busybox `sleep`, `net: none`, `restart: always`)
  to the running supervisor;
- compose: `docker-compose -p bench -f FILE up -d` of the same N services (Debian's docker-compose 1.29:
  the same image, command, `network_mode: none`, `restart: always`) against the sandbox's system dockerd.

The two do not make the same containers: corral creates a system unit with `net: none` with
``NetworkDisabled`` and its own hosts and resolv.conf bound (no libnetwork sandbox, no setkey hook at the
start: ``units.etc_files``), compose asks for dockerd's `none` network (a libnetwork sandbox and the
hook at every start). Each side's time is what its own way of running `network_mode: none` costs;
``bench.dockerd_starts`` compares the two configs without either client.

Both clocks start just before the command is spawned (both pay their CLI's start); a sample ends at the
last of the N containers' ``State.StartedAt`` (dockerd's clock, the same host clock) once all N are
running. One sample of each side with N=1 goes first and is not recorded (the first of each is cold:
the CLI's files, PID 1's first schema check). Between samples the side's containers are removed
(`corral config unset corral.services`, `docker-compose down`) and the next sample waits until they are
gone. dockerd's event stream is read throughout: for every sample the times of the first and last
`create` and `start` (from the command's spawn) say where the time goes: the client before its first
create, the creates, the starts; and how many reconciles PID 1's units reconciler ran meanwhile (it also
wakes on the events of compose's containers).

N=1 gets more samples (``--rounds1``, default 2 x rounds + 1): its samples are short and spread the
most (a CLI's start, a collection in PID 1, another process's burst of CPU move one by tens of %).

    python -m bench.units_compose [--sizes 1,10,50,100] [--rounds 3] [--rounds1 7]"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import integration.sandbox as sandbox_mod
from bench._stats import Samples, alternate
from integration.units_helpers import IMAGE, SLEEP, config, docker_time, dockerd_host_pid, unit, with_busybox
from supervisor.paths import Paths
from units.system_dockerd import DockerdLayout, remove_cgroups

PROJECT = "bench"
SIDES = ("corral", "compose")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Docker:
    """The few calls the bench makes to dockerd's API, and its container events in a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.events: list[tuple[float, str, str]] = []  # (time, action, container name)
        self._lock = threading.Lock()
        threading.Thread(target=self._follow, daemon=True).start()

    def get(self, url: str) -> Any:
        conn = UnixHTTP(self.path)
        try:
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {url}: {response.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def names(self, prefix: str, state: str | None = None) -> list[str]:
        """Names of the containers whose name starts with ``prefix`` (in ``state``, when given)."""
        found = []
        for c in self.get("/containers/json?all=1"):
            name = c["Names"][0].lstrip("/")
            if name.startswith(prefix) and (state is None or c["State"] == state):
                found.append(name)
        return found

    def started_at(self, name: str) -> float:
        return docker_time(self.get(f"/containers/{name}/json")["State"]["StartedAt"])

    def _follow(self) -> None:
        conn = UnixHTTP(self.path, timeout=None)
        filters = urllib.parse.quote(json.dumps({"type": ["container"], "event": ["create", "start"]}))
        conn.request("GET", f"/events?filters={filters}")
        response = conn.getresponse()
        while True:
            line = response.readline()
            if not line:
                return
            event = json.loads(line)
            with self._lock:
                self.events.append((event["timeNano"] / 1e9, event["Action"],
                                    event["Actor"]["Attributes"].get("name", "")))

    def actions(self, since: float, until: float, prefix: str) -> dict[str, list[float]]:
        with self._lock:
            out: dict[str, list[float]] = {"create": [], "start": []}
            for t, action, name in self.events:
                if since <= t <= until and name.startswith(prefix):
                    out[action].append(t)
        return out


@dataclass
class Where:
    """Seconds from the command's spawn to the first and last create and start of a sample, and the CPU
    seconds the client (PID 1 and the corral CLI, or docker-compose) and dockerd used meanwhile, and the
    reconciles of PID 1's units reconciler (each lists the units' containers)."""

    first_create: float
    last_create: float
    first_start: float
    last_start: float
    client_cpu: float
    dockerd_cpu: float
    reconciles: int

    def text(self) -> str:
        return (f"creates {self.first_create:6.2f}-{self.last_create:6.2f} s, "
                f"starts {self.first_start:6.2f}-{self.last_start:6.2f} s, "
                f"CPU client {self.client_cpu:5.2f} s, dockerd {self.dockerd_cpu:5.2f} s, "
                f"{self.reconciles} reconciles")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until(what: str, check: Any, timeout: float, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


class Bench:
    def __init__(self, sb: sandbox_mod.Sandbox, work: Path) -> None:
        self.sb = sb
        self.work = work
        self.socket = str(sb.paths.under("/run/system-docker.sock"))
        self.docker = Docker(self.socket)
        self.dockerd = dockerd_host_pid(sb)
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}", COMPOSE_HTTP_TIMEOUT="600")

    def reconciles(self) -> int:
        """The units reconciler's reconciles so far."""
        handlers = self.sb.request("status")["handlers"]
        return next((int(h["reconciles"]) for h in handlers if h["name"] == "containers"), 0)

    def prefix(self, side: str) -> str:
        return "cu" if side == "corral" else f"{PROJECT}_s"

    def files(self, n: int) -> tuple[Path, Path]:
        ours = self.work / f"units-{n}.yml"
        services = {f"cu{i:03d}": unit(restart="always") for i in range(n)}
        ours.write_text(json.dumps(config(services)))
        theirs = self.work / f"compose-{n}.yml"
        theirs.write_text(json.dumps({"version": "2.4", "services": {
            f"s{i:03d}": {"image": IMAGE, "command": SLEEP, "network_mode": "none", "restart": "always"}
            for i in range(n)}}))
        return ours, theirs

    def spawn(self, side: str, n: int, file: Path) -> None:
        if side == "corral":
            self.sb.cli("config", "merge", str(file), timeout=600)
        else:
            # docker-compose 1.x deadlocks when a project has more services than COMPOSE_PARALLEL_LIMIT
            # (default 64): each service's task waits for a nested task that finds no free thread
            # (docker/compose#5864, #8226). It hung at N=100 here; above the limit the limit is raised.
            env = dict(self.env, COMPOSE_PARALLEL_LIMIT=str(max(64, 2 * n + 8)))
            subprocess.run(["docker-compose", "-p", PROJECT, "-f", str(file), "up", "-d"], env=env,
                           check=True, capture_output=True, timeout=600)

    def sample(self, side: str, n: int, file: Path) -> tuple[float, Where]:
        prefix = self.prefix(side)
        reconciles = self.reconciles()
        cpu0 = (cpu_seconds(self.sb.pid1), children_cpu(), cpu_seconds(self.dockerd))
        t0 = time.time()
        self.spawn(side, n, file)
        wait_until(f"{n} {side} containers running",
                   lambda: len(self.docker.names(prefix, "running")) >= n, 600)
        cpu1 = (cpu_seconds(self.sb.pid1), children_cpu(), cpu_seconds(self.dockerd))
        reconciles = self.reconciles() - reconciles
        last = max(self.docker.started_at(name) for name in self.docker.names(prefix))
        time.sleep(0.2)  # the events of the last start reach the follower
        seen = self.docker.actions(t0, time.time(), prefix)
        creates, starts = sorted(seen["create"]), sorted(seen["start"])
        # The client: PID 1 and the CLI (a child of this process) for corral, docker-compose (a child).
        client = cpu1[1] - cpu0[1] + (cpu1[0] - cpu0[0] if side == "corral" else 0.0)
        where = Where(creates[0] - t0, creates[-1] - t0, starts[0] - t0, starts[-1] - t0, client,
                      cpu1[2] - cpu0[2], reconciles)
        self.remove(side, file)
        return last - t0, where

    def remove(self, side: str, file: Path) -> None:
        if side == "corral":
            self.sb.cli("config", "unset", "corral.services", timeout=600)
        else:
            subprocess.run(["docker-compose", "-p", PROJECT, "-f", str(file), "down", "-t", "1"],
                           env=self.env, check=True, capture_output=True, timeout=600)
        prefix = self.prefix(side)
        wait_until(f"{side} containers gone", lambda: not self.docker.names(prefix), 600, every=0.2)
        time.sleep(1)  # dockerd's cleanup of the removed containers settles before the next sample


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10,50,100", help="numbers of units (default 1,10,50,100)")
    parser.add_argument("--rounds", type=int, default=3, help="samples of each side per size (default 3)")
    parser.add_argument("--rounds1", type=int, default=None,
                        help="samples of each side at N=1 (default 2 x rounds + 1)")
    args = parser.parse_args()
    if shutil.which("docker-compose") is None:
        print("units_compose: docker-compose is not installed (make sysdeps)", file=sys.stderr)
        return 2
    sandbox_mod.SYSTEM_DOCKER_DEFAULT = True
    base = Path(tempfile.mkdtemp(prefix="corral-bench-compose-"))
    directory = base / "sb"
    directory.mkdir()
    with_busybox(directory)
    sb = sandbox_mod.Sandbox(directory, config({}))
    rows = []
    try:
        sb.wait_ready(120)
        wait_until("busybox loaded", lambda: bool(sb.cli("system-docker", "image", "inspect", IMAGE,
                                                         check=False).returncode == 0), 120, every=0.5)
        bench = Bench(sb, base)
        print(f"N units -> all running, corral (config merge) vs docker-compose up -d, {args.rounds} "
              "rounds each, alternated")
        warm = dict(zip(SIDES, bench.files(1), strict=True))
        for side in SIDES:  # not recorded: the first merge and the first compose run are cold
            bench.sample(side, 1, warm[side])
        for n in (int(x) for x in args.sizes.split(",")):
            files = dict(zip(SIDES, bench.files(n), strict=True))
            results = Samples(unit="s", scale=1.0)
            rounds = (args.rounds1 or 2 * args.rounds + 1) if n == 1 else args.rounds
            for i, side in alternate(SIDES, rounds):
                took, where = bench.sample(side, n, files[side])
                sample = results.add(side, took)
                print(results.line(sample, label=f"N={n:3d} {i + 1}") + f"   {where.text()}", flush=True)
            print("\n".join(results.report("corral", "compose")), flush=True)
            rows.append((n, results.median("corral"), results.median("compose"),
                         results.ratio("corral", "compose"), *results.loads()))
    finally:
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{'N':>4} {'corral':>9} {'compose':>9} {'ratio':>7}   load")
    for n, ours, theirs, ratio, low, high in rows:
        print(f"{n:4d} {ours:8.2f}s {theirs:8.2f}s {ratio:6.2f}x   {low:.1f}-{high:.1f}")
    print(f"(medians; {statistics.median(r[3] for r in rows):.2f}x over the sizes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
