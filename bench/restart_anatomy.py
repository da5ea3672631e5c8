"""Where the time goes between a container init's death and the container running again, from dockerd's
own debug log: a private dockerd (``--debug``, in a network namespace of its own), one busybox
container, killed ``--samples`` times with SIGKILL from the host.

Each kill is seen through a pidfd of the init (as corral's PID 1 sees it), then the container is started
again, alternately in two ways: ``at-once``, ``POST /start`` the moment the pidfd is readable (dockerd
answers 304 "already started" while it has not taken the exit yet; then ``POST /wait`` and start again),
and ``wait``, ``POST /wait?condition=not-running`` first and then ``POST /start`` (corral's path). For
each kill it prints, in ms after the SIGKILL: the pidfd readable; dockerd's lines about the container
(containerd's TaskExit reaching it, the task deleted, the shim cleaned up and the containerd container
deleted); its ``die`` event; the wait answered; the start that worked sent, and answered; and the new
``State.StartedAt``. Medians at the end.

    python -m bench.restart_anatomy [--samples 10] [--net none|host]"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import statistics
import time
from datetime import datetime
from typing import Any

from integration.dockerd import Dockerd, start_dockerd
from integration.netns import create_netns

MARKS = {  # debug log message (of the container's id, or after it) -> column
    "topic=/tasks/exit": "TaskExit",
    "topic=/tasks/delete": "TaskDelete",
    "topic=/containers/delete": "shim gone",
}
_TIME = re.compile(r'^time="([^"]+)"')


def docker_time(text: str) -> float:
    """RFC 3339 in UTC with up to nanoseconds (dockerd's) to unix seconds."""
    base, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{base}.{(frac + '000000')[:6]}+00:00").timestamp()


def api(d: Dockerd, method: str, path: str, timeout: float = 30.0) -> tuple[int, bytes]:
    return d.api(method, path, timeout=timeout)


def inspect(d: Dockerd, name: str) -> dict[str, Any]:
    status, body = api(d, "GET", f"/containers/{name}/json")
    assert status == 200, body
    return dict(json.loads(body))


def one_kill(d: Dockerd, name: str, at_once: bool) -> tuple[float, dict[str, float]]:
    """Kill the container's init and start it again; the kill's time and the row."""
    state = inspect(d, name)["State"]
    pid = int(state["Pid"])
    fd = os.pidfd_open(pid)
    times: dict[str, float] = {}
    killed = times["kill"] = time.time()
    os.kill(pid, signal.SIGKILL)
    select.select([fd], [], [])
    times["pidfd"] = time.time()
    os.close(fd)
    if at_once:
        status, _ = api(d, "POST", f"/containers/{name}/start")
        times["start 1 answered"] = time.time()
        times["start 1 status"] = status
        if status == 304:
            api(d, "POST", f"/containers/{name}/wait?condition=not-running")
            times["wait answered"] = time.time()
            times["start sent"] = time.time()
            status, _ = api(d, "POST", f"/containers/{name}/start")
    else:
        api(d, "POST", f"/containers/{name}/wait?condition=not-running")
        times["wait answered"] = time.time()
        times["start sent"] = time.time()
        status, _ = api(d, "POST", f"/containers/{name}/start")
    assert status == 204, status
    times["start answered"] = time.time()
    times["StartedAt"] = docker_time(inspect(d, name)["State"]["StartedAt"])
    return killed, {k: (v if k.endswith("status") else (v - killed) * 1e3) for k, v in times.items()}


def log_marks(d: Dockerd, cid: str, kills: list[float]) -> list[dict[str, float]]:
    """dockerd's debug lines after each kill (until the next): when each of MARKS first appears."""
    found: list[dict[str, float]] = [{} for _ in kills]
    for line in d.log_path.read_text(errors="replace").splitlines():
        m = _TIME.match(line)
        if m is None:
            continue
        at = docker_time(m.group(1))
        i = max((j for j, k in enumerate(kills) if k <= at), default=None)
        if i is None:
            continue
        for needle, column in MARKS.items():
            if needle in line and column not in found[i] and (cid in line or "libcontainerd" in line
                                                               or "event published" in line):
                found[i][column] = (at - kills[i]) * 1e3
    return found


def die_times(d: Dockerd, cid: str, since: float) -> list[float]:
    out = d.docker(["events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--filter",
                    f"container={cid}", "--filter", "event=die", "--format", "{{.TimeNano}}"]).stdout
    return [int(x) / 1e9 for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="kills (default 10)")
    parser.add_argument("--net", choices=("none", "host"), default="none", help="the container's network")
    args = parser.parse_args()
    netns = create_netns()
    d = start_dockerd(netns, extra_args=["--debug"])
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        d.load_test_image()
        cid = d.docker(["run", "-d", "--name", "anatomy", "--network", args.net, "corral/busybox",
                        "sleep", "600"]).stdout.strip()
        time.sleep(1)
        kills: list[float] = []
        for i in range(args.samples):
            how = "at-once" if i % 2 == 0 else "wait"
            killed, row = one_kill(d, "anatomy", how == "at-once")
            kills.append(killed)
            rows.append((how, row))
            time.sleep(1)
        for (_, row), mark in zip(rows, log_marks(d, cid, kills), strict=True):
            row.update(mark)
        dies = die_times(d, cid, kills[0] - 1)
        for (_, row), killed, die in zip(rows, kills, dies, strict=False):
            row["die"] = (die - killed) * 1e3
    finally:
        d.stop()
        netns.delete()
    columns = ["pidfd", "TaskExit", "TaskDelete", "shim gone", "die", "start 1 status", "start 1 answered",
               "wait answered", "start sent", "StartedAt", "start answered"]
    print(f"net {args.net}; ms after the SIGKILL; load average {os.getloadavg()[0]:.2f}")
    print("how     " + "".join(f"{c:>17s}" for c in columns))
    for how, row in rows:
        print(f"{how:8s}" + "".join(f"{row[c]:17.0f}" if c.endswith("status") and c in row
                                    else f"{row[c]:17.1f}" if c in row else f"{'':>17s}" for c in columns))
    for how in ("at-once", "wait"):
        mine = [r for h, r in rows if h == how]
        print(f"median {how:8s}" + "".join(
            f" {c}={statistics.median(vals):.1f}" for c in columns
            if (vals := [r[c] for r in mine if c in r]) and not c.endswith("status")))


if __name__ == "__main__":
    main()
