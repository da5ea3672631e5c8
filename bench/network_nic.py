"""A NIC appears -> its static address and default route are in place: corral vs systemd-networkd.

Each sample: a veth made in a test namespace is moved into the namespace of the system under test
(``ip link set bench<i> netns <pid>``); a watcher inside that namespace (bench/_netwatch.py) timestamps
the link's first RTM_NEWLINK and the moment both 198.18.70.2/24 and ``default via 198.18.70.1`` are on
it. The link is then deleted and the next sample starts.

- corral: the supervisor as PID 1 in `corral sandbox` (its own namespaces), rule ``bench*``.
- systemd-networkd (Debian 12's, 252): run standalone in a new network + mount namespace with a private
  /run, a read-only sysfs of that namespace (so it does not wait for udev), ``container=other`` and a
  ``bench*`` .network file.

Run as root: ``.venv/bin/python -m bench.network_nic [--samples 100]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from bench._stats import pct
from integration.netns import NetNS, netns_factory
from integration.sandbox import Sandbox, sandbox_factory

REPO = Path(__file__).resolve().parents[1]
ADDRESS, GATEWAY = "198.18.70.2", "198.18.70.1"
NETWORKD = Path("/lib/systemd/systemd-networkd")

NETWORKD_SETUP = f"""set -e
mount -t tmpfs tmpfs /run
mount -t sysfs -o ro sysfs /sys
mkdir -p /run/systemd/network /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp
chown -R systemd-network:systemd-network /run/systemd/netif 2>/dev/null || true
printf '[Match]\\nName=bench*\\n[Network]\\nAddress={ADDRESS}/24\\nGateway={GATEWAY}\\n' \\
    > /run/systemd/network/50-bench.network
ip link set lo up
export container=other SYSTEMD_LOG_LEVEL=notice
exec {NETWORKD}
"""


class Watcher:
    """bench._netwatch in the namespace of ``pid``; its events arrive on a queue."""

    def __init__(self, pid: int) -> None:
        self.proc = subprocess.Popen(
            ["nsenter", "-t", str(pid), "-n", sys.executable, "-m", "bench._netwatch", "watch",
             "--address", ADDRESS, "--gateway", GATEWAY, "--prefix", "bench"],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.wait(lambda e: e["ev"] == "ready", 10)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.events.put(json.loads(line))

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("watcher: no matching event")
            event = self.events.get(timeout=left)
            if predicate(event):
                return event

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


def samples(target_pid: int, ns: NetNS, count: int, delete: Callable[[str], None]) -> list[float]:
    watcher = Watcher(target_pid)
    out: list[float] = []
    try:
        for i in range(count):
            name = f"bench{i}"
            ns.ip("link", "add", name, "type", "veth", "peer", "name", f"bp{i}")
            ns.ip("link", "set", f"bp{i}", "up")
            ns.ip("link", "set", name, "netns", str(target_pid))
            appeared = watcher.wait(lambda e, n=name: e["ev"] == "appeared" and e["link"] == n, 10)["t"]  # type: ignore[misc]
            configured = watcher.wait(lambda e, n=name: e["ev"] == "configured" and e["link"] == n, 10)["t"]  # type: ignore[misc]
            out.append(configured - appeared)
            delete(name)
            watcher.wait(lambda e, n=name: e["ev"] == "gone" and e["link"] == n, 10)  # type: ignore[misc]
            time.sleep(0.05)  # let the system under test finish its reconcile of the removal
    finally:
        watcher.stop()
    return out


def in_ns(pid: int, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], check=True, capture_output=True)


def run_corral(ns: NetNS, count: int) -> list[float]:
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-nic-"))
    gen: Iterator[Any] = sandbox_factory(directory)
    start = next(gen)
    try:
        sb: Sandbox = start({"corral": {"network": {"interfaces": {
            "bench*": {"address": f"{ADDRESS}/24", "gateway": GATEWAY}}}}})
        sb.wait_ready()
        pid = sb.pid1
        result = samples(pid, ns, count, lambda name: in_ns(pid, "ip", "link", "del", name))
        status = sb.request("net.status")
        print(f"  corral: {status['rounds']} reconciles, {status['source']['messages']} netlink messages")
        sb.stop()
        return result
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
        shutil.rmtree(directory, ignore_errors=True)


def networkd_unavailable() -> str | None:
    if not NETWORKD.exists():
        return f"{NETWORKD} is not installed"
    if subprocess.run(["id", "systemd-network"], capture_output=True).returncode != 0:
        return "no systemd-network user"
    return None


def run_networkd(ns: NetNS, count: int) -> list[float]:
    log = tempfile.NamedTemporaryFile(prefix="networkd-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                             "sh", "-c", NETWORKD_SETUP], stdout=log, stderr=log)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"systemd-networkd exited {proc.returncode}; see {log.name}")
        pid = proc.pid
        return samples(pid, ns, count, lambda name: in_ns(pid, "ip", "link", "del", name))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        os.unlink(log.name)


def report(name: str, values: list[float]) -> None:
    ms = sorted(v * 1e3 for v in values)
    print(f"  {name:16s} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms   "
          f"min {ms[0]:6.2f}   max {ms[-1]:7.2f}   n={len(ms)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("network_nic: needs root (namespaces)", file=sys.stderr)
        return 1
    print(f"NIC appears -> {ADDRESS}/24 and default via {GATEWAY} in place ({args.samples} samples each)")
    with netns_factory() as make:
        ns = make()
        corral = run_corral(ns, args.samples)
        report("corral", corral)
        reason = networkd_unavailable()
        if reason:
            print(f"  systemd-networkd: not measured ({reason})")
            return 0
        networkd = run_networkd(ns, args.samples)
        report("systemd-networkd", networkd)
    ratio = pct(corral, 0.5) / pct(networkd, 0.5)
    print(f"  ratio corral/networkd: p50 {ratio:.2f}x, p99 {pct(corral, 0.99) / pct(networkd, 0.99):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
