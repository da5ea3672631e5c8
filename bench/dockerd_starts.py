"""Where dockerd's time goes when it starts N containers at once: N busybox containers created and started
straight through the system dockerd's API (N client threads, no corral units, no docker-compose), for
three kinds of network, alternated (the order turned round at every round):

- ``none``: ``HostConfig.NetworkMode: none``, what compose's ``network_mode: none`` (and a corral unit
  with ``net: none`` before it had files of its own) asks for. dockerd's libnetwork makes a sandbox (a
  network namespace with its loopback) and runc runs libnetwork's prestart hook: a re-exec of the
  dockerd binary that calls back into dockerd (``SetKey``), which binds the new namespace and brings its
  loopback up;
- ``corral``: what corral creates for a system unit with ``net: none`` now: the same plus
  ``Config.NetworkDisabled: true`` (no libnetwork sandbox and no hook; runc makes the namespace and brings
  its loopback up itself) and the read-only binds of the hosts and resolv.conf corral writes for it
  (``units.etc_files``; written here once, below the sandbox, for all the containers);
- ``host``: ``NetworkMode: host``: no namespace, no hook.

A sample is from just before the first create to the last container's ``State.StartedAt``; dockerd's CPU
seconds are printed with it. With ``--debug`` dockerd runs with its debug log (its config file's
``debug``, reloaded with SIGHUP; the journal at debug to keep it) and each ``none`` sample also prints
from it: when the start requests arrived, each libnetwork ``SetKey`` ("sandbox set key processing took
..."), how many of them ran at once at most, and when the starts ended.

    python -m bench.dockerd_starts [--n 10] [--rounds 3] [--debug]"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import integration.sandbox as sandbox_mod
from bench._stats import Samples, alternate
from bench.units_compose import UnixHTTP, cpu_seconds, wait_until
from integration.units_helpers import IMAGE, SLEEP, docker_time, dockerd_host_pid, with_busybox
from supervisor.paths import Paths
from units.etc_files import write_files
from units.model import Unit
from units.spec import create_body
from units.system_dockerd import DockerdLayout, remove_cgroups

KINDS: dict[str, dict[str, Any]] = {
    "none": {"HostConfig": {"NetworkMode": "none"}},
    "corral": {"HostConfig": {"NetworkMode": "none"}, "NetworkDisabled": True},  # + the binds: corral_kind
    "host": {"HostConfig": {"NetworkMode": "host"}},
}


def corral_kind(directory: Path) -> dict[str, Any]:
    """``corral``: the create body's network part as ``units.spec`` makes it for a system ``net: none``
    unit whose files are in ``directory`` (written here)."""
    unit = Unit(name="bench", image=IMAGE, network_mode="none", etc_dir=str(directory))
    write_files(directory, Path("/etc/resolv.conf"))
    body = create_body(unit)
    assert body["NetworkDisabled"] is True
    host = {k: body["HostConfig"][k] for k in ("NetworkMode", "Binds")}
    return {"HostConfig": host, "NetworkDisabled": True}


SETKEY = re.compile(r"sandbox set key processing took ([0-9.]+)(ms|s|µs) for container ([0-9a-f]+)")


def call(socket_path: str, method: str, url: str, body: Any = None) -> Any:
    conn = UnixHTTP(socket_path, timeout=600)
    try:
        conn.request(method, url, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {url}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None
    finally:
        conn.close()


def journal_time(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).timestamp()


def seconds(value: str, unit: str) -> float:
    return float(value) * {"ms": 1e-3, "s": 1.0, "µs": 1e-6}[unit]


def anatomy(records: list[dict[str, Any]], t0: float, n: int) -> str:
    """From dockerd's debug records of one sample: the start requests, the SetKeys, the starts' end."""
    requests, setkeys = [], []
    for record in records:
        text = str(record.get("event", ""))
        if "Calling POST" in text and text.endswith("/start"):
            requests.append(journal_time(record) - t0)
        elif (found := SETKEY.search(text)) is not None:
            end = journal_time(record) - t0
            setkeys.append((end - seconds(found.group(1), found.group(2)), end))
    if not setkeys:
        return "  (no SetKey in dockerd's log)"
    most = max(sum(1 for s, e in setkeys if s <= start < e) for start, _ in setkeys)
    busy = sum(e - s for s, e in setkeys)
    span = max(e for _s, e in setkeys) - min(s for s, _e in setkeys)
    durations = sorted(e - s for s, e in setkeys)
    return (f"  start requests in {min(requests):.2f}-{max(requests):.2f} s; {len(setkeys)}/{n} SetKeys in "
            f"{min(s for s, _ in setkeys):.2f}-{max(e for _, e in setkeys):.2f} s, each "
            f"{statistics.median(durations) * 1e3:.0f} ms median ({durations[0] * 1e3:.0f}-"
            f"{durations[-1] * 1e3:.0f}), at most {most} at once, busy {busy:.2f} s of {span:.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="containers per sample (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="samples of each kind (default 3)")
    parser.add_argument("--debug", action="store_true", help="dockerd's debug log: where a start's time goes")
    args = parser.parse_args()
    sandbox_mod.SYSTEM_DOCKER_DEFAULT = True
    base = Path(tempfile.mkdtemp(prefix="corral-bench-starts-"))
    directory = base / "sb"
    directory.mkdir()
    with_busybox(directory)
    level = "debug" if args.debug else "info"
    sb = sandbox_mod.Sandbox(directory, {"corral": {"shutdown_grace": 1, "services": {},
                                                    "log": {"level": level}}})
    pool = ThreadPoolExecutor(max_workers=args.n)
    try:
        sb.wait_ready(120)
        wait_until("busybox loaded", lambda: sb.cli("system-docker", "image", "inspect", IMAGE,
                                                    check=False).returncode == 0, 120, every=0.5)
        sock = str(sb.paths.under("/run/system-docker.sock"))
        dockerd = dockerd_host_pid(sb)
        if args.debug:
            (sb.paths.run_dir / "system-docker.json").write_text('{"debug": true}\n')
            os.kill(dockerd, signal.SIGHUP)
            time.sleep(1)

        KINDS["corral"] = corral_kind(sb.paths.state_dir / "units-etc" / "bench")

        def one(kind: str, i: int) -> str:
            name = f"bench-{kind}-{i:03d}"
            body = {"Image": IMAGE, "Cmd": SLEEP, **KINDS[kind]}
            call(sock, "POST", f"/containers/create?name={name}", body)
            call(sock, "POST", f"/containers/{name}/start")
            return name

        print(f"{args.n} containers created and started at once through dockerd's API, {args.rounds} rounds "
              f"of {', '.join(KINDS)}, alternated (one warm-up round first)")
        results = Samples(unit="s", scale=1.0)
        for i, kind in alternate(tuple(KINDS), args.rounds + 1):
            seen = len(sb.journal()) if args.debug else 0
            cpu0, t0 = cpu_seconds(dockerd), time.time()
            names = list(pool.map(one, [kind] * args.n, range(args.n)))
            took = max(docker_time(call(sock, "GET", f"/containers/{n}/json")["State"]["StartedAt"])
                       for n in names) - t0
            cpu = cpu_seconds(dockerd) - cpu0
            if i == 0:
                print(f"  warm-up {kind:<8} {took:6.2f} s")
            else:
                print(results.line(results.add(kind, took), label=f"{i}") + f"   dockerd CPU {cpu:.2f} s",
                      flush=True)
                if args.debug and kind == "none":
                    time.sleep(0.5)  # the last lines reach the journal
                    mine = [r for r in sb.journal()[seen:] if r.get("unit") == "system-docker"]
                    print(anatomy(mine, t0, args.n), flush=True)
            for name in names:
                call(sock, "DELETE", f"/containers/{name}?force=1")
            time.sleep(1)  # dockerd's cleanup settles before the next sample
        print("\n".join(results.report("corral", "none")))
        print("\n".join(results.report("host", "none")))
    finally:
        pool.shutdown(wait=False)
        sb.stop()
        remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
