"""The control socket server against real unix sockets: round trips, streams, failures, security."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor.bus import Bus
from supervisor.control import client
from supervisor.control.catalogue import kind_matches
from supervisor.control.protocol import PERMISSION_DENIED, ControlError, ControlUnavailable
from supervisor.control.server import ControlServer, SocketInUseError
from supervisor.events import ConfigChanged, TimerFired
from supervisor.tasks import spawn_task

NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # Short (AF_UNIX paths are limited to 108 bytes) and outside pytest's 0700 tmp tree.
    directory = Path(tempfile.mkdtemp(prefix="corral-ctl-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def echo(args: dict[str, Any]) -> Any:
    return {"echo": args}


@pytest.fixture
async def server(sockdir: Path) -> AsyncIterator[ControlServer]:
    srv = ControlServer(sockdir / "run" / "control.sock")
    srv.register("echo", echo)
    with capture_logs():
        await srv.start()
        yield srv
        await srv.stop()


async def raw(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection, half-close, and return every reply line."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    for line in lines:
        writer.write(line)
    await writer.drain()
    writer.write_eof()
    replies = [json.loads(line) async for line in reader]
    writer.close()
    await writer.wait_closed()
    return replies


# --- round trips ------------------------------------------------------------------------------


async def test_request_round_trip(server: ControlServer) -> None:
    assert await client.request(server.socket_path, "echo", a=1, b=[1, "x"]) == {
        "echo": {"a": 1, "b": [1, "x"]}
    }


async def test_blocking_client(server: ControlServer) -> None:
    async def count(args: dict[str, Any]) -> AsyncIterator[Any]:
        for i in range(args["n"]):
            yield i

    server.register_stream("count", count)
    path = server.socket_path
    assert await asyncio.to_thread(client.request_sync, path, "echo", cmd="x") == {"echo": {"cmd": "x"}}
    assert await asyncio.to_thread(lambda: list(client.stream_sync(path, "count", n=3))) == [0, 1, 2]
    with pytest.raises(ControlError, match=r"^unknown command 'nope'$"):
        await asyncio.to_thread(client.request_sync, path, "nope")
    with pytest.raises(ControlUnavailable, match="is corral running"):
        await asyncio.to_thread(client.request_sync, path.with_name("absent.sock"), "echo")


async def test_several_requests_on_one_connection(server: ControlServer) -> None:
    replies = await raw(server.socket_path, b'{"cmd": "echo", "args": {"n": 1}}\n', b'{"cmd": "echo"}\n')
    assert replies == [{"ok": True, "result": {"echo": {"n": 1}}}, {"ok": True, "result": {"echo": {}}}]


async def test_catalogued_arguments_are_checked_and_completed(server: ControlServer) -> None:
    seen: list[dict[str, Any]] = []

    async def logs(args: dict[str, Any]) -> AsyncIterator[Any]:
        seen.append(args)
        yield {"event": "x"}

    async def items(**args: Any) -> list[Any]:
        return [item async for item in client.stream(server.socket_path, "logs", **args)]

    server.register_stream("logs", logs)
    assert await items(unit="docker", since=5) == [{"event": "x"}]
    assert seen == [{"since": 5.0, "until": None, "unit": "docker", "limit": None, "level": None,
                     "grep": None, "boot": None, "reverse": False, "follow": False}]
    with pytest.raises(ControlError, match="argument 'limit' of 'logs': expected a whole number") as bad:
        await items(limit="ten")
    assert bad.value.code == "bad-argument" and bad.value.problem is not None  # the diagnostic came through
    assert (bad.value.problem.file, bad.value.problem.key) == ("logs", "limit")
    with pytest.raises(ControlError, match="argument 'follow' of 'logs': expected a boolean"):
        await items(follow=1)
    with pytest.raises(ControlError, match="argument 'colour' of 'logs': unknown argument"):
        await items(colour=True)
    with pytest.raises(ControlError, match="'level' of 'logs': 'loud' is not one of"):
        await items(level="loud")
    with pytest.raises(ControlError, match="'reverse' of 'logs': cannot be used with 'follow'"):
        await items(follow=True, reverse=True)
    server.register("config.get", echo)
    with pytest.raises(ControlError, match=r"argument 'key' of 'config\.get': required, but not given"):
        await client.request(server.socket_path, "config.get")
    assert len(seen) == 1


# --- failures ---------------------------------------------------------------------------------


async def test_handler_exception_is_an_error_reply_and_the_server_goes_on(server: ControlServer) -> None:
    async def broken(args: dict[str, Any]) -> Any:
        raise RuntimeError("boom\nand a second line")

    server.register("broken", broken)
    with capture_logs() as logs, pytest.raises(ControlError) as caught:
        await client.request(server.socket_path, "broken")
    assert caught.value.reason == "broken failed: RuntimeError: boom and a second line"
    assert not isinstance(caught.value, ControlUnavailable)
    failed = [e for e in logs if e["event"] == "control command failed"]
    assert failed and failed[0]["cmd"] == "broken" and failed[0]["log_level"] == "error"
    assert failed[0]["exc_info"] is True
    assert await client.request(server.socket_path, "echo") == {"echo": {}}


async def test_control_error_reason_goes_through_as_is(server: ControlServer) -> None:
    async def refuse(args: dict[str, Any]) -> Any:
        raise ControlError("no such key: corral.nope")

    server.register("refuse", refuse)
    with pytest.raises(ControlError, match=r"^no such key: corral\.nope$"):
        await client.request(server.socket_path, "refuse")


async def test_unserialisable_result_is_an_error_reply(server: ControlServer) -> None:
    async def odd(args: dict[str, Any]) -> Any:
        return {"x": object()}

    server.register("odd", odd)
    with pytest.raises(ControlError, match="odd failed: TypeError: object is not JSON-serialisable"):
        await client.request(server.socket_path, "odd")


async def test_unknown_command(server: ControlServer) -> None:
    with pytest.raises(ControlError, match=r"^unknown command 'nope'$"):
        await client.request(server.socket_path, "nope")


async def test_malformed_requests_get_errors_and_the_connection_goes_on(server: ControlServer) -> None:
    replies = await raw(
        server.socket_path,
        b"{not json\n",
        b"[1, 2]\n",
        b'{"args": {}}\n',
        b'{"cmd": "echo", "args": [1]}\n',
        b"\n",
        b'{"cmd": "echo"}\n',
    )
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert replies[0]["error"].startswith("malformed JSON: ")
    assert replies[1]["error"] == "malformed message: expected a JSON object, got list"
    assert replies[2]["error"] == 'malformed request: "cmd" must be a non-empty string'
    assert replies[3]["error"] == 'malformed request: "args" must be a JSON object'
    assert replies[4]["error"] == "malformed message: an empty line (expected a JSON object)"
    assert all("\n" not in r.get("error", "") for r in replies)


async def test_request_line_size_is_bounded(sockdir: Path) -> None:
    srv = ControlServer(sockdir / "c.sock", max_request=1024)
    srv.register("echo", echo)
    with capture_logs():
        await srv.start()
        try:
            replies = await raw(srv.socket_path, b'{"cmd": "echo", "args": {"x": "' + b"y" * 4000 + b'"}}\n')
            assert replies == [{"ok": False, "error": "request too long (the limit is 1024 bytes)"}]
            assert await client.request(srv.socket_path, "echo", x="y" * 900) == {"echo": {"x": "y" * 900}}
        finally:
            await srv.stop()


# --- streams ----------------------------------------------------------------------------------


async def test_stream_delivers_items_then_ends(server: ControlServer) -> None:
    async def count(args: dict[str, Any]) -> AsyncIterator[Any]:
        for i in range(3):
            yield {"n": i}

    server.register_stream("events", count)
    items = [item async for item in client.stream(server.socket_path, "events")]
    assert items == [{"n": 0}, {"n": 1}, {"n": 2}]
    lines = await raw(server.socket_path, b'{"cmd": "events"}\n')
    assert lines[0] == {"ok": True, "stream": True}
    assert lines[-1] == {"end": True}


async def test_live_bus_events_reach_a_stream(server: ControlServer) -> None:
    bus = Bus()
    subscribed = asyncio.Event()

    async def events(args: dict[str, Any]) -> AsyncIterator[Any]:
        sub = bus.subscribe("control.events")
        subscribed.set()
        try:
            async for event in sub:
                if kind_matches(args["kinds"], event.kind):
                    yield event.to_dict()
        finally:
            sub.close()

    server.register_stream("events", events)
    received: list[dict[str, Any]] = []

    async def read() -> None:
        async for item in client.stream(server.socket_path, "events", kinds=["config"]):
            received.append(item)
            if len(received) == 2:
                return

    reading = spawn_task(read(), name="test.read")
    await asyncio.wait_for(subscribed.wait(), 5)
    bus.publish(TimerFired(name="skipped"))
    bus.publish(ConfigChanged(generation=1, changed=("corral.hostname",)))
    bus.publish(ConfigChanged(generation=2))
    await asyncio.wait_for(reading, 5)
    assert [(e["kind"], e["generation"]) for e in received] == [("config.changed", 1), ("config.changed", 2)]
    assert received[0]["changed"] == ["corral.hostname"]
    for _ in range(100):  # the server notices the disconnect and ends the subscription
        if not bus.stats()["subscribers"]:
            break
        await asyncio.sleep(0.01)
    assert bus.stats()["subscribers"] == {}


async def test_logs_streams_with_and_without_follow(server: ControlServer) -> None:
    """Without follow, the stream ends after the stored records: they go out one by one as they are read,
    never gathered into one reply (the journal can be ~55 MB)."""
    follows: list[bool] = []

    async def logs(args: dict[str, Any]) -> AsyncIterator[Any]:
        follows.append(args["follow"])
        yield {"event": "old"}
        if args["follow"]:
            yield {"event": "live"}

    server.register_stream("logs", logs)
    assert [i async for i in client.stream(server.socket_path, "logs")] == [{"event": "old"}]
    items = [i async for i in client.stream(server.socket_path, "logs", follow=True)]
    assert items == [{"event": "old"}, {"event": "live"}]
    assert follows == [False, True]
    with pytest.raises(ControlUnavailable, match="answered 'logs' with a stream"):
        await client.request(server.socket_path, "logs")


async def test_stream_handler_failure_ends_the_stream_with_an_error(server: ControlServer) -> None:
    async def failing(args: dict[str, Any]) -> AsyncIterator[Any]:
        yield 1
        raise ValueError("disk on fire")

    server.register_stream("events", failing)
    got: list[Any] = []
    with capture_logs() as logs, pytest.raises(ControlError, match="events failed: ValueError: disk on fire"):
        async for item in client.stream(server.socket_path, "events"):
            got.append(item)
    assert got == [1]
    assert any(e["event"] == "control stream failed" for e in logs)
    assert await client.request(server.socket_path, "echo") == {"echo": {}}


async def test_client_disconnect_closes_the_stream_handler(server: ControlServer) -> None:
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def forever(args: dict[str, Any]) -> AsyncIterator[Any]:
        started.set()
        try:
            await asyncio.Event().wait()
            yield None
        finally:
            cleaned.set()

    server.register_stream("events", forever)
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(b'{"cmd": "events"}\n')
    assert json.loads(await reader.readline()) == {"ok": True, "stream": True}
    await asyncio.wait_for(started.wait(), 5)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(cleaned.wait(), 5)


async def test_stop_ends_open_streams_and_removes_the_socket(sockdir: Path) -> None:
    srv = ControlServer(sockdir / "c.sock")
    cleaned = asyncio.Event()

    async def forever(args: dict[str, Any]) -> AsyncIterator[Any]:
        try:
            yield "first"
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    srv.register_stream("events", forever)
    with capture_logs():
        await srv.start()
        stream = client.stream(srv.socket_path, "events")
        assert await anext(stream) == "first"
        await srv.stop()
        with pytest.raises(ControlUnavailable, match="closed the connection"):
            await anext(stream)
    assert cleaned.is_set()
    assert not srv.socket_path.exists()


async def test_follow_without_a_stream_handler_is_refused(server: ControlServer) -> None:
    server.register("logs", echo)
    with pytest.raises(ControlError, match="'logs' cannot stream"):
        async for _ in client.stream(server.socket_path, "logs", follow=True):
            pass


# --- the socket file --------------------------------------------------------------------------


async def test_socket_is_0600_in_a_0700_directory(server: ControlServer) -> None:
    mode = os.stat(server.socket_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(os.stat(server.socket_path.parent).st_mode) == 0o700


async def test_umask_is_restored_after_binding(sockdir: Path) -> None:
    old = os.umask(0o022)
    try:
        srv = ControlServer(sockdir / "c.sock")
        with capture_logs():
            await srv.start()
            await srv.stop()
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)


async def test_stale_socket_is_replaced(sockdir: Path) -> None:
    path = sockdir / "c.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    srv = ControlServer(path)
    srv.register("echo", echo)
    with capture_logs():
        await srv.start()
        try:
            assert await client.request(path, "echo") == {"echo": {}}
        finally:
            await srv.stop()


async def test_live_socket_and_other_files_are_not_replaced(server: ControlServer, sockdir: Path) -> None:
    with pytest.raises(SocketInUseError, match="another process"):
        await ControlServer(server.socket_path).start()
    assert await client.request(server.socket_path, "echo") == {"echo": {}}
    plain = sockdir / "plain"
    plain.write_text("keep me")
    with pytest.raises(SocketInUseError, match="not a socket"):
        await ControlServer(plain).start()
    assert plain.read_text() == "keep me"


# --- who may connect --------------------------------------------------------------------------


async def test_root_is_accepted_and_other_uids_are_refused(sockdir: Path) -> None:
    assert os.getuid() == 0, "these tests run as root"
    called: list[str] = []

    async def status(args: dict[str, Any]) -> Any:
        called.append("status")
        return "fine"

    root_only = ControlServer(sockdir / "root.sock")
    someone_else = ControlServer(sockdir / "other.sock", allowed_uid=4242)
    for srv in (root_only, someone_else):
        srv.register("status", status)
    with capture_logs() as logs:
        await root_only.start()
        await someone_else.start()
        try:
            assert await client.request(root_only.socket_path, "status") == "fine"
            with pytest.raises(ControlUnavailable, match=f"^{PERMISSION_DENIED}$"):
                await client.request(someone_else.socket_path, "status")
        finally:
            await root_only.stop()
            await someone_else.stop()
    assert called == ["status"]
    refused = [e for e in logs if e["event"] == "control connection refused"]
    assert refused == [
        {"event": "control connection refused", "pid": os.getpid(), "uid": 0, "log_level": "warning"}
    ]


PEER = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect": exc.errno}))
    sys.exit()
s.sendall(b'{"cmd": "status"}\\n')
print(s.makefile("rb").readline().decode(), end="")
"""


async def run_as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, *argv],
        user=NOBODY,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)},
    )


async def test_non_root_peer_is_refused_by_peer_credentials(sockdir: Path) -> None:
    os.chmod(sockdir, 0o711)  # traversable, so the peer gets as far as the socket
    called: list[str] = []

    async def status(args: dict[str, Any]) -> Any:
        called.append("status")
        return "secret state"

    srv = ControlServer(sockdir / "control.sock")
    srv.register("status", status)
    with capture_logs() as logs:
        await srv.start()
        try:
            # Loosen the file mode on purpose: SO_PEERCRED must refuse the peer all the same.
            os.chmod(srv.socket_path, 0o666)
            proc = await run_as_nobody("-c", PEER, str(srv.socket_path))
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout) == {"ok": False, "error": PERMISSION_DENIED}
            assert await client.request(srv.socket_path, "status") == "secret state"  # root still served
        finally:
            await srv.stop()
    assert called == ["status"]
    assert any(e["event"] == "control connection refused" and e["uid"] == NOBODY for e in logs)


async def test_non_root_peer_cannot_even_connect_to_the_0600_socket(sockdir: Path) -> None:
    os.chmod(sockdir, 0o711)
    srv = ControlServer(sockdir / "control.sock")
    srv.register("status", echo)
    with capture_logs():
        await srv.start()
        try:
            proc = await run_as_nobody("-c", PEER, str(srv.socket_path))
        finally:
            await srv.stop()
    assert json.loads(proc.stdout) == {"connect": 13}  # EACCES


async def test_socket_is_born_0600_even_without_the_final_chmod(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file must never be world-accessible, not even between bind() and chmod()."""
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)
    try:
        srv = ControlServer(sockdir / "fresh" / "c.sock")
        with capture_logs():
            await srv.start()
            try:
                assert stat.S_IMODE(os.stat(srv.socket_path).st_mode) == 0o600
                assert stat.S_IMODE(os.stat(srv.socket_path.parent).st_mode) == 0o700
            finally:
                await srv.stop()
    finally:
        os.umask(old)


async def test_blocking_client_times_out_on_a_silent_supervisor(server: ControlServer) -> None:
    async def slow(args: dict[str, Any]) -> Any:
        await asyncio.sleep(30)

    server.register("slow", slow)
    sync = client.SyncClient(server.socket_path, timeout=0.2)
    with pytest.raises(ControlUnavailable, match=r"did not answer within 0\.2 s"):
        await asyncio.to_thread(sync.request, "slow")
