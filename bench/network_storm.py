"""A storm of link flaps in the namespace corral manages: how long until the config is back, and what it
cost PID 1.

The sandbox's PID 1 manages ``eth8`` (198.18.40.2/24, default via 198.18.40.1, a route to
198.18.41.0/24). Inside the sandbox's namespace, ``ip -force -batch`` sets eth8 down and up 10,000
times and then flushes its addresses (so there is always something to repair once the storm is over);
the kernel drops eth8's routes at every down. A poller in that namespace (bench/_netwatch.py) then dumps
every millisecond until eth8 is up with its address and both routes again.

Printed: the storm's duration, the time to converge after it, the netlink messages PID 1 read, the
reconciles it ran, its CPU time per message and per reconcile, and the decoding cost per message with
corral's header decoding vs pyroute2's full parse (why the source reads raw datagrams).

Run as root: ``.venv/bin/python -m bench.network_storm [--flaps 10000]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._stats import loadavg
from integration.netns import netns_factory
from integration.sandbox import Sandbox, sandbox_factory

REPO = Path(__file__).resolve().parents[1]

DECODE_BENCH = r"""
import socket, struct, subprocess, time
from supervisor.sources.netlink import decode
from pyroute2.netlink.rtnl.marshal import MarshalRtnl
subprocess.run(["ip", "link", "add", "va", "type", "veth", "peer", "name", "vb"], check=True)
subprocess.run(["ip", "addr", "add", "198.18.90.1/24", "dev", "va"], check=True)
subprocess.run(["ip", "link", "set", "va", "up"], check=True)
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
sock.bind((0, 0))
datagrams = []
for mtype in (18, 22, 26):  # RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE
    sock.send(struct.pack("=LHHLLB3x", 20, mtype, 0x301, 1, 0, 0))
    done = False
    while not done:
        data = sock.recv(65536)
        off = 0
        while off < len(data):
            length, t = struct.unpack_from("=LH", data, off)
            if t == 3:
                done = True
                break
            msg = bytearray(data[off:off + length])
            struct.pack_into("=H", msg, 4, {18: 16, 22: 20, 26: 24}[mtype])
            datagrams.append(bytes(msg))
            off += (length + 3) & ~3
n = 20000
picks = [datagrams[i % len(datagrams)] for i in range(n)]
t = time.process_time()
for d in picks:
    decode(d, len(d))
raw = (time.process_time() - t) / n
marshal = MarshalRtnl()
t = time.process_time()
for d in picks:
    list(marshal.parse(d))
full = (time.process_time() - t) / n
print(f"{raw * 1e6:.2f} {full * 1e6:.2f} {len(datagrams)}")
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flaps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("network_storm: needs root (namespaces)", file=sys.stderr)
        return 1
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-storm-"))
    gen: Iterator[Any] = sandbox_factory(directory)
    start = next(gen)
    print(f"storm: {args.flaps} flaps of a managed link, then its addresses flushed ({args.runs} runs)")
    try:
        with netns_factory() as make:
            ns = make()
            ns.ip("link", "add", "eth8", "type", "veth", "peer", "name", "peer8")
            ns.ip("addr", "add", "198.18.40.1/24", "dev", "peer8")
            ns.ip("link", "set", "peer8", "up")
            sb: Sandbox = start({"corral": {"network": {"interfaces": {"eth8": {
                "address": "198.18.40.2/24", "gateway": "198.18.40.1",
                "routes": [{"to": "198.18.41.0/24", "via": "198.18.40.254"}]}}}}})
            sb.wait_ready()
            pid = sb.pid1
            ns.ip("link", "set", "eth8", "netns", str(pid))
            deadline = time.monotonic() + 10
            while sb.request("net.plan")["changes"] or not sb.request("net.status")["rounds"]:
                if time.monotonic() > deadline:
                    raise RuntimeError("eth8 not configured")
                time.sleep(0.05)
            batch = directory / "storm.batch"
            batch.write_text("link set eth8 down\nlink set eth8 up\n" * args.flaps + "addr flush dev eth8\n")
            for run in range(args.runs):
                time.sleep(0.5)
                before = sb.request("net.status")
                cpu0 = cpu_seconds(pid)
                out = subprocess.run(
                    ["nsenter", "-t", str(pid), "-n", sys.executable, "-m", "bench._netwatch", "storm",
                     "--dev", "eth8", "--address", "198.18.40.2", "--gateway", "198.18.40.1",
                     "--route", "198.18.41.0/24", "--batch", str(batch)],
                    cwd=REPO, capture_output=True, text=True, check=True, timeout=300,
                )  # fmt: skip
                result = json.loads(out.stdout)
                while sb.request("net.plan")["changes"]:
                    time.sleep(0.01)
                time.sleep(0.3)  # let the last reconciles (of corral's own changes) run
                cpu = cpu_seconds(pid) - cpu0
                after = sb.request("net.status")
                messages = after["source"]["messages"] - before["source"]["messages"]
                rounds = after["rounds"] - before["rounds"]
                overflows = after["source"]["overflows"] - before["source"]["overflows"]
                converged = result["converged"]
                print(f"  run {run + 1}: storm {result['batch']:.2f} s; converged "
                      + (f"{converged * 1e3:.1f} ms after it" if converged is not None else "NEVER")
                      + f"; {messages} netlink messages, {rounds} reconciles, {overflows} overflows; "
                      f"PID 1 CPU {cpu:.2f} s = {cpu / max(messages, 1) * 1e6:.1f} us/message, "
                      f"{cpu / max(rounds, 1) * 1e3:.2f} ms/reconcile; load {loadavg():.2f}")
            sb.stop()
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)
        shutil.rmtree(directory, ignore_errors=True)
    decoded = subprocess.run(["unshare", "--net", sys.executable, "-c", DECODE_BENCH], cwd=REPO,
                             capture_output=True, text=True, check=True)
    raw, full, kinds = decoded.stdout.split()
    print(f"  decoding one rtnetlink message ({kinds} kinds from a dump): corral's header decoding {raw} us, "
          f"pyroute2's full parse {full} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
