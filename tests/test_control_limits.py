"""The control socket's limits (issue 14): connection cap, idle timeout, eviction of idle connections,
refusals logged once per burst, accept out of file descriptors, and the client's retries of a busy
supervisor. The decision (``ConnectionTable``) is tested pure; the rest against real unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor.control import client, protocol
from supervisor.control.limits import ConnectionTable, Limits
from supervisor.control.protocol import ControlUnavailable
from supervisor.control.server import ControlServer

REPO = Path(__file__).resolve().parents[1]


# --- the decision, pure ------------------------------------------------------------------------


def test_below_the_limit_every_connection_is_admitted() -> None:
    table = ConnectionTable(Limits(max_connections=2, idle_timeout=10, evict_idle=1))
    first, second = table.admit(0.0), table.admit(0.0)
    assert first.connection is not None and second.connection is not None and len(table) == 2
    assert first.evicted is None and second.evicted is None


def test_at_the_limit_the_longest_idle_makes_room_else_the_new_one_is_refused() -> None:
    table = ConnectionTable(Limits(max_connections=2, idle_timeout=10, evict_idle=1))
    a, b = table.admit(0.0).connection, table.admit(0.0).connection
    assert a is not None and b is not None
    assert table.admit(5.0).connection is None  # both busy (a request or a stream running)
    a.idle_since, b.idle_since = 4.5, 3.0
    assert table.admit(3.5).connection is None  # idle, but for less than evict_idle: fresh clients
    admitted = table.admit(5.0)
    assert admitted.connection is not None and admitted.evicted is b  # idle longest
    assert len(table) == 2
    table.remove(a)
    table.remove(a)  # twice is harmless (an evicted connection's task removes it again)
    assert len(table) == 1
    assert table.stats() == {"open": 1, "limit": 2, "admitted": 3, "evicted": 1, "refused": 2}


def test_limits_from_the_environment() -> None:
    assert Limits.from_environment({}) == Limits()
    got = Limits.from_environment({"CORRAL_CONTROL_MAX_CONNECTIONS": "8",
                                   "CORRAL_CONTROL_IDLE_TIMEOUT": "0.5"})
    assert got == Limits(max_connections=8, idle_timeout=0.5, evict_idle=0.5)
    with capture_logs() as logs:
        bad = Limits.from_environment({"CORRAL_CONTROL_MAX_CONNECTIONS": "-1",
                                       "CORRAL_CONTROL_IDLE_TIMEOUT": "nan"})
    assert bad == Limits()
    assert [e["variable"] for e in logs] == ["CORRAL_CONTROL_MAX_CONNECTIONS", "CORRAL_CONTROL_IDLE_TIMEOUT"]


# --- against real sockets ----------------------------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="corral-lim-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def echo(args: dict[str, Any]) -> Any:
    return {"echo": args}


class Streams:
    """A stream handler that runs until released: a busy connection."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0

    async def events(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        self.running += 1
        yield "started"
        await self.release.wait()


async def start(sockdir: Path, limits: Limits) -> tuple[ControlServer, Streams]:
    srv = ControlServer(sockdir / "c.sock", limits=limits)
    streams = Streams()
    srv.register("echo", echo)
    srv.register_stream("events", streams.events)
    await srv.start()
    return srv, streams


async def idle_connection(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(str(path))


async def busy_connection(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b'{"cmd": "events"}\n')
    assert json.loads(await reader.readline()) == {"ok": True, "stream": True}
    assert json.loads(await reader.readline()) == {"item": "started"}
    return reader, writer


async def bare_request(path: Path, line: bytes) -> dict[str, Any]:
    """Send a line on a bare socket and read the one reply: the server may close before reading it."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await loop.sock_sendall(sock, line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = await loop.sock_recv(sock, 4096)
            assert chunk, data
            data += chunk
        return dict(json.loads(data))


async def test_an_idle_connection_is_told_and_closed_after_the_timeout(sockdir: Path) -> None:
    with capture_logs():
        srv, _ = await start(sockdir, Limits(max_connections=4, idle_timeout=0.3, evict_idle=0.3))
        try:
            reader, writer = await idle_connection(srv.socket_path)
            writer.write(b'{"cmd": "echo"}\n')
            assert json.loads(await reader.readline())["ok"] is True
            writer.write(b'{"cmd": "ec')  # half a request, then nothing: idle all the same
            started = time.monotonic()
            reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert reply == {"ok": False, "error": "closing: no request for 0.3 s (the idle limit)"}
            assert await reader.read() == b""  # closed
            assert time.monotonic() - started >= 0.25
            writer.close()
            assert await client.request(srv.socket_path, "echo") == {"echo": {}}
        finally:
            await srv.stop()


async def test_idle_connections_cannot_lock_out_new_clients(sockdir: Path) -> None:
    """20 connections that send nothing against a limit of 5: those over the limit while the 5 are
    fresh are refused at once; then each new client takes the place of the one idle longest, and all
    are served. Every idle connection is told why it is closed."""
    with capture_logs() as logs:
        srv, _ = await start(sockdir, Limits(max_connections=5, idle_timeout=30, evict_idle=0.2))
        try:
            idle = [await idle_connection(srv.socket_path) for _ in range(20)]
            await asyncio.sleep(0.3)
            answers = await asyncio.gather(*(client.request(srv.socket_path, "echo", n=i) for i in range(10)))
            assert answers == [{"echo": {"n": i}} for i in range(10)]
            reasons = []
            for reader, writer in idle:
                reasons.append(json.loads(await asyncio.wait_for(reader.readline(), 5))["error"])
                writer.close()
            evicted = "closing: idle while the control socket is at its limit of 5 connections"
            busy = "busy: the control socket is at its limit of 5 connections; try again"
            assert set(reasons) <= {evicted, busy} and reasons[0] == evicted  # the first: idle longest
            stats = srv.stats()
            assert stats["evicted"] == reasons.count(evicted) >= 5  # room for the clients
            assert stats["refused"] >= reasons.count(busy)  # and the clients that found no room retried
        finally:
            await srv.stop()
    evictions = [e for e in logs if e["event"] == "idle control connections closed to make room"]
    refusals = [e for e in logs if e["event"] == "control connections refused: at the connection limit"]
    assert len(evictions) == len(refusals) == 1  # once per burst, not once per connection


async def test_busy_connections_make_new_ones_refused_once_per_burst(sockdir: Path) -> None:
    with capture_logs() as logs:
        srv, streams = await start(sockdir, Limits(max_connections=3, idle_timeout=30, evict_idle=0.05))
        try:
            busy = [await busy_connection(srv.socket_path) for _ in range(3)]
            refused = [await bare_request(srv.socket_path, b'{"cmd": "echo"}\n') for _ in range(50)]
            assert all(r["code"] == protocol.BUSY for r in refused)
            reason = "busy: the control socket is at its limit of 3 connections; try again"
            assert refused[0]["error"] == reason
            assert srv.stats()["refused"] == 50
            # the client retries busy, and is served once a stream ends
            asyncio.get_running_loop().call_later(0.3, streams.release.set)
            assert await client.request(srv.socket_path, "echo") == {"echo": {}}
            for _, writer in busy:
                writer.close()
        finally:
            await srv.stop()
    warnings = [e for e in logs if e["event"] == "control connections refused: at the connection limit"]
    assert len(warnings) == 1
    summary = [e for e in logs if e["event"].endswith("burst over")]  # written by stop(), ending the burst
    assert summary and summary[0]["more"] >= 49


async def test_a_busy_reply_is_retried_until_the_clients_timeout(sockdir: Path) -> None:
    with capture_logs():
        srv, streams = await start(sockdir, Limits(max_connections=1, idle_timeout=30, evict_idle=0.05))
        try:
            _, writer = await busy_connection(srv.socket_path)
            sync = client.SyncClient(srv.socket_path, timeout=0.3)
            with pytest.raises(ControlUnavailable, match=r"^busy: ") as caught:  # the CLI's exit code 3
                await asyncio.to_thread(sync.request, "echo")
            assert caught.value.code == protocol.BUSY
            assert srv.stats()["refused"] >= 3  # retried
            asyncio.get_running_loop().call_later(0.3, streams.release.set)
            sync = client.SyncClient(srv.socket_path, timeout=10)
            assert await asyncio.to_thread(sync.request, "echo") == {"echo": {}}
            writer.close()
        finally:
            await srv.stop()


async def test_a_client_that_reads_no_reply_is_closed(sockdir: Path) -> None:
    """A connection whose client sends requests and never reads holds no slot for ever."""
    big = "x" * 200_000

    async def large(args: dict[str, Any]) -> Any:
        return big

    with capture_logs():
        srv, _ = await start(sockdir, Limits(max_connections=4, idle_timeout=0.3, evict_idle=0.3))
        srv.register("large", large)
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(srv.socket_path))
            sock.sendall(b'{"cmd": "large"}\n' * 40)  # ~8 MB of replies, never read
            for _ in range(100):
                if not len(srv.table):
                    break
                await asyncio.sleep(0.05)
            assert len(srv.table) == 0
            sock.close()
        finally:
            await srv.stop()


# --- the client: a full listen backlog ---------------------------------------------------------


class Unaccepting:
    """A listener whose backlog is full: connect() on a unix socket fails with EAGAIN at once."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(0)
        self.queued = []
        for _ in range(4):
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            try:
                c.connect(str(path))
            except BlockingIOError:
                c.close()
                break
            self.queued.append(c)
        else:
            raise AssertionError("the backlog never filled")

    def serve_one_later(self, delay: float) -> threading.Thread:
        """After ``delay``, accept every queued connection and answer the one that sent a request."""

        def serve() -> None:
            time.sleep(delay)
            self.sock.settimeout(5)
            while True:
                conn, _ = self.sock.accept()
                conn.settimeout(0.2)
                try:
                    data = conn.recv(1024)
                except TimeoutError:
                    conn.close()
                    continue
                if data:
                    conn.sendall(b'{"ok": true, "result": "served"}\n')
                    conn.close()
                    return
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        for c in self.queued:
            c.close()
        self.sock.close()


def test_the_client_retries_a_full_backlog(sockdir: Path) -> None:
    path = sockdir / "full.sock"
    listener = Unaccepting(path)
    try:
        with pytest.raises(ControlUnavailable, match=r"its connection queue stayed full for 0\.[3-9] s"):
            client.SyncClient(path, timeout=0.3).request("status")
        serving = listener.serve_one_later(0.3)
        assert client.SyncClient(path, timeout=10).request("status") == "served"
        serving.join(5)
    finally:
        listener.close()


async def test_the_async_client_retries_a_full_backlog(sockdir: Path) -> None:
    path = sockdir / "full.sock"
    listener = Unaccepting(path)
    try:
        serving = listener.serve_one_later(0.3)
        assert await client.request(path, "status") == "served"
        serving.join(5)
    finally:
        listener.close()


# --- accept out of file descriptors ------------------------------------------------------------

STARVED = """
import asyncio, json, os, resource, socket, sys
from structlog.testing import capture_logs
from supervisor.control.limits import Limits
from supervisor.control.server import ControlServer

async def main():
    srv = ControlServer(sys.argv[1] + "/c.sock", limits=Limits(max_connections=64, idle_timeout=30))
    async def echo(args):
        return "ok"
    srv.register("echo", echo)
    with capture_logs() as logs:
        await srv.start()
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        hog = []
        try:
            while True:
                hog.append(os.dup(0))
        except OSError:
            pass
        print("starved", flush=True)
        await asyncio.sleep(float(sys.argv[2]))  # clients queue up meanwhile; accept keeps failing
        for fd in hog:
            os.close(fd)
        await asyncio.sleep(2)
        await srv.stop()
    events = [e["event"] for e in logs]
    print(json.dumps({"events": events}))

asyncio.run(main())
"""


def test_accept_out_of_file_descriptors_pauses_and_recovers_quietly(sockdir: Path) -> None:
    """asyncio's accept loop logged 'socket.accept() out of system resource' 23,051 times in 6 s and
    multiplied its own retries; the acceptor logs once per burst, and serves the queue once fds are back."""
    proc = subprocess.Popen([sys.executable, "-c", STARVED, str(sockdir), "2"], stdout=subprocess.PIPE,
                            text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "starved"
    answers: list[Any] = []

    def ask() -> None:
        answers.append(client.SyncClient(sockdir / "c.sock", timeout=15).request("echo"))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    out, _ = proc.communicate(timeout=30)
    assert answers == ["ok"] * 20
    report = json.loads(out)
    starved = "control socket cannot accept: out of resources; pausing accept"
    assert report["events"] == ["control socket listening", starved, f"{starved}: burst over",
                                "control socket closed"]  # the first of the burst; then how many more


async def test_a_large_request_is_parsed_off_the_loop(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to 1 MiB of JSON takes milliseconds: the server parses a request that large in a thread."""
    threads: list[str] = []
    parse = protocol.parse_request

    def recording(line: bytes, max_depth: int = protocol.MAX_DEPTH) -> protocol.Request:
        threads.append(threading.current_thread().name)
        return parse(line, max_depth)

    monkeypatch.setattr(protocol, "parse_request", recording)
    with capture_logs():
        srv, _ = await start(sockdir, Limits())
        try:
            assert await client.request(srv.socket_path, "echo", x="small") == {"echo": {"x": "small"}}
            big = "y" * 200_000
            assert await client.request(srv.socket_path, "echo", x=big) == {"echo": {"x": big}}
            reply = await bare_request(srv.socket_path, b'{"cmd": "echo", "args": ' + b"[" * 100_000 + b"}\n")
            assert reply["error"].endswith("nested deeper than the limit of 32 levels")
        finally:
            await srv.stop()
    main = threading.main_thread().name
    assert threads[0] == main and threads[1] != main and threads[2] != main
