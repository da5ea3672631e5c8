"""Helpers the network benchmarks run *inside* a network namespace (``nsenter -t PID -n python -m
bench._netwatch ...``), so that their timestamps come from where the changes happen.

``watch --address A --gateway G --prefix P``: follow rtnetlink (raw socket, 64 MiB buffer, headers
decoded by hand) and print one JSON line per link named P*: ``appeared`` (first RTM_NEWLINK),
``configured`` (address A and a default route via G on it, both seen), ``gone`` (RTM_DELLINK). Times are
CLOCK_MONOTONIC, which every namespace shares.

``storm --dev D --address A --gateway G --route R --batch FILE``: run ``ip -force -batch FILE`` here,
then dump (pyroute2) every millisecond until D is up with A, a default route via G and a route to R;
print ``{"batch": seconds, "converged": seconds after the batch ended, "polls": n}``."""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import time

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR, RTM_NEWROUTE, RTM_DELROUTE = 16, 17, 20, 21, 24, 25
GROUPS = 0x1 | 0x10 | 0x40  # links, IPv4 addresses, IPv4 routes
HDR = struct.Struct("=LHHLL")
IFINFO = struct.Struct("=BxHiII")
IFADDR = struct.Struct("=BBBBi")
RTMSG = struct.Struct("=BBBBBBBBI")


def _attrs(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = start
    while off + 4 <= end:
        length, kind = struct.unpack_from("=HH", buf, off)
        if length < 4:
            break
        out[kind & 0x3FFF] = buf[off + 4 : off + length]
        off += (length + 3) & ~3
    return out


def watch(address: str, gateway: str, prefix: str) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)
    sock.bind((0, GROUPS))
    want_addr = socket.inet_aton(address)
    want_gw = socket.inet_aton(gateway)
    names: dict[int, str] = {}
    has_addr: set[int] = set()
    has_route: set[int] = set()
    configured: set[int] = set()
    print(json.dumps({"ev": "ready", "t": time.monotonic()}), flush=True)

    def emit(ev: str, index: int, t: float) -> None:
        print(json.dumps({"ev": ev, "link": names.get(index), "t": t}), flush=True)

    while True:
        data = sock.recv(1 << 16)
        t = time.monotonic()
        off = 0
        while off + 16 <= len(data):
            length, mtype = HDR.unpack_from(data, off)[:2]
            body, end = off + 16, off + length
            if mtype in (RTM_NEWLINK, RTM_DELLINK):
                index, flags = IFINFO.unpack_from(data, body)[2:4]
                name = _attrs(data, body + 16, end).get(3, b"").split(b"\0")[0].decode()
                if not name.startswith(prefix):
                    pass
                elif mtype == RTM_NEWLINK and index not in names:
                    names[index] = name
                    emit("appeared", index, t)
                elif mtype == RTM_DELLINK and index in names:
                    emit("gone", index, t)
                    names.pop(index, None)
                    has_addr.discard(index)
                    has_route.discard(index)
                    configured.discard(index)
                elif mtype == RTM_NEWLINK and not flags & 1:  # down: the kernel drops its routes quietly
                    has_route.discard(index)
            elif mtype in (RTM_NEWADDR, RTM_DELADDR):
                family, _pl, _f, _s, index = IFADDR.unpack_from(data, body)
                if family == socket.AF_INET and _attrs(data, body + 8, end).get(2) == want_addr:
                    (has_addr.add if mtype == RTM_NEWADDR else has_addr.discard)(index)
            elif mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                family, dst_len = RTMSG.unpack_from(data, body)[:2]
                attrs = _attrs(data, body + 12, end)
                if family == socket.AF_INET and dst_len == 0 and attrs.get(5) == want_gw and 4 in attrs:
                    index = struct.unpack("=I", attrs[4])[0]
                    (has_route.add if mtype == RTM_NEWROUTE else has_route.discard)(index)
            off += (length + 3) & ~3
        for index in list(names):
            ok = index in has_addr and index in has_route
            if ok and index not in configured:
                configured.add(index)
                emit("configured", index, t)
            elif not ok and index in configured:
                configured.discard(index)
                emit("unconfigured", index, t)


def storm(dev: str, address: str, gateway: str, route: str, batch: str) -> None:
    from pyroute2 import IPRoute

    start = time.monotonic()
    subprocess.run(["ip", "-force", "-batch", batch], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    ended = time.monotonic()
    polls = 0
    with IPRoute() as ipr:
        while True:
            polls += 1
            now = time.monotonic()
            found = ipr.link_lookup(ifname=dev)
            if found:
                index = found[0]
                link = ipr.get_links(index)[0]
                addrs = {a.get("IFA_LOCAL") for a in ipr.get_addr(index=index, family=socket.AF_INET)}
                routes = ipr.get_routes(family=socket.AF_INET, oif=index)
                gws = {r.get("RTA_GATEWAY") for r in routes if r["dst_len"] == 0}
                dsts = {f"{r.get('RTA_DST')}/{r['dst_len']}" for r in routes}
                if link["flags"] & 1 and address in addrs and gateway in gws and route in dsts:
                    print(json.dumps({"batch": ended - start, "converged": now - ended, "polls": polls}),
                          flush=True)
                    return
            if now - ended > 120:
                print(json.dumps({"batch": ended - start, "converged": None, "polls": polls}), flush=True)
                return
            time.sleep(0.001)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._netwatch")
    sub = parser.add_subparsers(dest="mode", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--address", required=True)
    w.add_argument("--gateway", required=True)
    w.add_argument("--prefix", required=True)
    s = sub.add_parser("storm")
    for name in ("--dev", "--address", "--gateway", "--route", "--batch"):
        s.add_argument(name, required=True)
    args = parser.parse_args(argv)
    if args.mode == "watch":
        watch(args.address, args.gateway, args.prefix)
    else:
        storm(args.dev, args.address, args.gateway, args.route, args.batch)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
