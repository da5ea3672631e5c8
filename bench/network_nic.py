"""A NIC appears -> its static address and default route are in place: corral vs systemd-networkd.

Each sample: a veth made in a test namespace is moved into the namespace of the system under test
(``ip link set bench<i> netns <pid>``); a watcher inside that namespace (bench/_netwatch.py) timestamps
the link's first RTM_NEWLINK and the moment both 198.18.70.2/24 and ``default via 198.18.70.1`` are on
it: both timestamps come from the same watcher, so both sides' clocks start at the same event. The link
is then deleted and the next sample starts. Both systems run side by side for the whole run and the
samples alternate between them (corral, networkd; networkd, corral; ...), each printed with the load
average at its time (the medians of one side measured after the other's were not comparable: the load
had changed in between).

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

from bench._stats import Samples, alternate
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


class Target:
    """One system under test: the namespace it manages and a watcher in it."""

    def __init__(self, name: str, pid: int) -> None:
        self.name, self.pid = name, pid
        self.watcher = Watcher(pid)

    def sample(self, ns: NetNS, i: int) -> float:
        """A veth moved into the target's namespace: first RTM_NEWLINK there -> address and default route
        on it (both timestamps from the same watcher, so both sides' clocks start at the same event)."""
        name = f"bench{i}"
        ns.ip("link", "add", name, "type", "veth", "peer", "name", f"bp{i}")
        ns.ip("link", "set", f"bp{i}", "up")
        ns.ip("link", "set", name, "netns", str(self.pid))
        watcher = self.watcher
        appeared = watcher.wait(lambda e: e["ev"] == "appeared" and e["link"] == name, 10)["t"]
        configured = watcher.wait(lambda e: e["ev"] == "configured" and e["link"] == name, 10)["t"]
        in_ns(self.pid, "ip", "link", "del", name)
        watcher.wait(lambda e: e["ev"] == "gone" and e["link"] == name, 10)
        time.sleep(0.05)  # let the system under test finish its reconcile of the removal
        return float(configured - appeared)

    def stop(self) -> None:
        self.watcher.stop()


def in_ns(pid: int, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], check=True, capture_output=True)


@contextlib.contextmanager
def corral_target() -> Iterator[Target]:
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-nic-"))
    gen: Iterator[Any] = sandbox_factory(directory)
    start = next(gen)
    try:
        sb: Sandbox = start({"corral": {"network": {"interfaces": {
            "bench*": {"address": f"{ADDRESS}/24", "gateway": GATEWAY}}}}})
        sb.wait_ready()
        target = Target("corral", sb.pid1)
        try:
            yield target
            status = sb.request("net.status")
            print(f"  corral: {status['rounds']} reconciles, {status['source']['messages']} netlink messages")
        finally:
            target.stop()
        sb.stop()
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


@contextlib.contextmanager
def networkd_target() -> Iterator[Target]:
    log = tempfile.NamedTemporaryFile(prefix="networkd-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(["unshare", "--net", "--mount", "--propagation", "private", "--",
                             "sh", "-c", NETWORKD_SETUP], stdout=log, stderr=log)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"systemd-networkd exited {proc.returncode}; see {log.name}")
        target = Target("systemd-networkd", proc.pid)
        try:
            yield target
        finally:
            target.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        os.unlink(log.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("network_nic: needs root (namespaces)", file=sys.stderr)
        return 1
    reason = networkd_unavailable()
    sides = ("corral",) if reason else ("corral", "systemd-networkd")
    print(f"NIC appears -> {ADDRESS}/24 and default via {GATEWAY} in place ({args.samples} samples each, "
          "alternated)")
    results = Samples()
    with netns_factory() as make, contextlib.ExitStack() as stack:
        ns = make()
        targets = {"corral": stack.enter_context(corral_target())}
        if not reason:
            targets["systemd-networkd"] = stack.enter_context(networkd_target())
        for i, side in alternate(sides, args.samples):
            results.record(side, targets[side].sample(ns, i), label=f"{i + 1:3d}")
    if reason:
        print(f"  systemd-networkd: not measured ({reason})")
        return 0
    print("\n".join(results.report("corral", "systemd-networkd")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
