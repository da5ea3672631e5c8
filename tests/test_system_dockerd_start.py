"""The system dockerd's start-up timeout grows while dockerd keeps running out of it, and starts over once
it answers: a dockerd that is only slow (a loaded machine, a large data root) is not killed at the same
point of its start for ever. A fake dockerd (a script serving ``GET /_ping`` on its ``--host`` socket from
its third start on) stands in for the real one; the supervisor, the process module and the bus are real."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events.docker import DockerdState
from supervisor.process import ProcessManager
from units.system_dockerd import START_TIMEOUT_CAP, DockerdLayout, SystemDockerd, start_timeout

FAKE = textwrap.dedent("""\
    #!{python}
    # A stand-in for dockerd: silent on its starts 1, 2 and 4; answers /_ping on 3 (the count is a file).
    import http.server, os, socketserver, sys, time
    count_file = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "starts")
    n = int(open(count_file).read()) + 1 if os.path.exists(count_file) else 1
    open(count_file, "w").write(str(n))
    if n != 3:
        time.sleep(3600)
    sock = sys.argv[sys.argv.index("--host") + 1].removeprefix("unix://")
    if os.path.exists(sock):
        os.unlink(sock)

    class Ping(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def address_string(self):
            return "unix"

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    Server(sock, Ping).serve_forever()
    """)


def test_start_timeout_doubles_per_slow_start_up_to_its_cap() -> None:
    assert [start_timeout(60.0, n) for n in range(5)] == [60.0, 120.0, 240.0, 480.0, START_TIMEOUT_CAP]
    assert start_timeout(60.0, 10_000) == START_TIMEOUT_CAP  # no overflow, however many
    assert start_timeout(900.0, 3) == 900.0  # a base above the cap is kept, never shortened


@pytest.fixture
async def processes() -> AsyncIterator[tuple[Bus, ProcessManager]]:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    yield bus, pm
    await pm.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def test_a_slow_start_gets_longer_each_time_and_an_answer_starts_over(
        processes: tuple[Bus, ProcessManager], tmp_path: Path) -> None:
    bus, pm = processes
    fake = tmp_path / "bin" / "dockerd"
    fake.parent.mkdir()
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    run = Path("/tmp") / f"corral-t-{tmp_path.name[-12:]}"  # a unix socket path must stay short
    layout = DockerdLayout(socket=run / "d.sock", data_root=tmp_path / "data", exec_root=run / "exec",
                           pidfile=run / "d.pid", config_file=tmp_path / "daemon.json",
                           cgroup_parent="corral-test", bridge=None, binary=fake)
    sub = bus.subscribe("test", DockerdState)
    daemon = SystemDockerd(pm, bus, layout, ready_timeout=0.3, daemon="test", unit="test-docker",
                           backoff=Backoff(initial=0.01, cap=0.02))
    daemon.start()
    try:
        events: list[DockerdState] = []
        async with asyncio.timeout(60):
            while not any(e.state == "up" for e in events):
                event = await sub.get()
                if isinstance(event, DockerdState):  # a Resync comes through every subscription too
                    events.append(event)
            assert daemon.child is not None
            daemon.child.send_signal(signal.SIGKILL)  # the answering start dies: the next is silent again
            while len([e for e in events if e.state == "down"]) < 4:
                event = await sub.get()
                if isinstance(event, DockerdState):  # a Resync comes through every subscription too
                    events.append(event)
        downs = [e.reason for e in events if e.state == "down"]
        assert downs[0] == "not answering /_ping 0.3 s after start (the next start waits 0.6 s)"
        assert downs[1] == "not answering /_ping 0.6 s after start (the next start waits 1.2 s)"
        assert downs[2].startswith("dockerd ")  # the answering one, killed
        assert downs[3] == "not answering /_ping 0.3 s after start (the next start waits 0.6 s)", downs
    finally:
        await daemon.stop()
        shutil.rmtree(run, ignore_errors=True)
