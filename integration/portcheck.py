"""A tiny port checker run by the guests' own python3 (stdlib only; sent over ssh, not shipped in the image).

``serve ADDR EXPECT TIMEOUT``: listen on ADDR at Swarm's ports (2377/tcp, 7946/tcp+udp, 4789/udp), print
``listening``, answer each TCP connection and echo each datagram with ``PROTO/PORT ADDR``, and print, as
one JSON line, the ``PEER PROTO/PORT`` pairs seen, once EXPECT of them were seen or TIMEOUT seconds passed.
``probe ADDR...``: for each ADDR, connect or send to each port; print ``{ADDR: {PROTO/PORT: answer}}``
(an answer of ``None`` means nothing came back).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

TCP = (2377, 7946)
UDP = (7946, 4789)
PORTS = tuple(f"tcp/{p}" for p in TCP) + tuple(f"udp/{p}" for p in UDP)


def serve(addr: str, expect: int, timeout: float) -> None:
    sel = selectors.DefaultSelector()
    for p in TCP:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, p))
        s.listen(8)
        sel.register(s, selectors.EVENT_READ, ("tcp", p))
    for p in UDP:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((addr, p))
        sel.register(u, selectors.EVENT_READ, ("udp", p))
    print("listening", flush=True)
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < expect and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            proto, port = key.data
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            answer = f"{proto}/{port} {addr}\n".encode()
            if proto == "tcp":
                conn, peer = sock.accept()
                with conn:
                    conn.sendall(answer)
            else:
                _, peer = sock.recvfrom(512)
                sock.sendto(answer, peer)
            seen.add(f"{peer[0]} {proto}/{port}")
    print(json.dumps(sorted(seen)), flush=True)


def probe_one(addr: str, proto: str, port: int) -> str | None:
    deadline = time.monotonic() + 20  # the listener may be a moment late
    while time.monotonic() < deadline:
        try:
            if proto == "tcp":
                with socket.create_connection((addr, port), timeout=5) as c:
                    c.settimeout(5)
                    return c.recv(512).decode().strip()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(1)
                u.sendto(b"probe", (addr, port))
                return u.recvfrom(512)[0].decode().strip()
        except OSError:
            time.sleep(0.5)
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 4:
        serve(argv[1], int(argv[2]), float(argv[3]))
        return 0
    if argv[:1] == ["probe"]:
        result = {a: {f"{proto}/{p}": probe_one(a, proto, p) for proto, ports in (("tcp", TCP), ("udp", UDP))
                      for p in ports} for a in argv[1:]}
        print(json.dumps(result), flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
