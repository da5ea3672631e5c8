"""units.runtime's pure parts: inspect parsing, log demultiplexing, load replies, the liveness watch;
units.system_dockerd's command line and log parsing; the system-docker switch and CLI socket."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.system_docker import derived_socket
from supervisor.paths import Paths
from units import runtime
from units.runtime import ContainerState, DockerAPIError, LogLine, Runtime, watch_liveness
from units.system_dockerd import (
    HEALTHY_AFTER,
    DockerdLayout,
    Watchdog,
    healthy_for,
    restart_backoff,
    system_socket,
)

INSPECT: dict[str, Any] = {
    "Id": "abc123",
    "Name": "/web",
    "Image": "sha256:feed",
    "RestartCount": 2,
    "Config": {"Image": "corral/busybox:latest", "Labels": {"io.corral.unit": "web", "x": "y"}},
    "State": {"Status": "exited", "Running": False, "ExitCode": 3, "OOMKilled": False, "Pid": 0,
              "StartedAt": "2024-05-01T12:00:00.5Z", "FinishedAt": "2024-05-01T12:00:02.000000001Z"},
}


def test_container_state_from_inspect() -> None:
    c = ContainerState.from_inspect(INSPECT)
    assert (c.id, c.name, c.image, c.image_id, c.state) == ("abc123", "web", "corral/busybox:latest",
                                                            "sha256:feed", "exited")
    assert c.unit == "web" and c.exit_code == 3 and not c.running and c.restart_count == 2
    assert c.started_at == pytest.approx(1714564800.5)
    assert c.finished_at is not None and c.finished_at - c.started_at == pytest.approx(1.5)
    assert c.raw["Id"] == "abc123"


def test_container_never_started_has_no_exit_code_or_times() -> None:
    data = {**INSPECT, "State": {"Status": "created", "Running": False, "ExitCode": 0,
                                 "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}}
    c = ContainerState.from_inspect(data)
    assert c.exit_code is None and c.started_at is None and c.finished_at is None and c.state == "created"


def test_line_splitter_keeps_streams_and_partial_lines_apart() -> None:
    s = runtime._LineSplitter()
    assert s.feed("stdout", b"one\ntw") == [LogLine("stdout", "one")]
    assert s.feed("stderr", b"err\r\n") == [LogLine("stderr", "err")]
    assert s.feed("stdout", b"o\nthree") == [LogLine("stdout", "two")]
    assert s.flush() == [LogLine("stdout", "three")]
    assert s.feed("stdout", b"\xff\n") == [LogLine("stdout", "\ufffd")]


async def test_demux_reads_docker_frames() -> None:
    reader = asyncio.StreamReader()
    for stream, payload in ((1, b"out\n"), (2, b"err\n"), (1, b""), (1, b"tail")):
        reader.feed_data(struct.pack(">BxxxL", stream, len(payload)) + payload)
    reader.feed_data(struct.pack(">BxxxL", 2, 10) + b"cut")  # the connection broke midway
    reader.feed_eof()
    got = [item async for item in runtime._demux(reader)]  # type: ignore[arg-type]
    assert got == [("stdout", b"out\n"), ("stderr", b"err\n"), ("stdout", b"tail"), ("stderr", b"cut")]


def test_loaded_images_from_load_replies() -> None:
    replies = [{"stream": "Loaded image: corral/busybox:latest\n"},
               {"stream": "Loaded image ID: sha256:ab\n"}, {"status": "Loading layer", "progressDetail": {}}]
    assert runtime._loaded_images(replies) == ["corral/busybox:latest", "sha256:ab"]
    with pytest.raises(DockerAPIError, match="unexpected EOF"):
        runtime._loaded_images([{"error": "unexpected EOF", "errorDetail": {"message": "unexpected EOF"}}])


async def test_watch_liveness_needs_consecutive_misses() -> None:
    answers = iter([True, False, True, False, True, False, False])
    calls: list[float] = []

    async def ping(timeout: float) -> bool:
        calls.append(timeout)
        return next(answers)

    reason = await asyncio.wait_for(watch_liveness(ping, interval=0.001, timeout=0.5, misses=2), 5)
    assert len(calls) == 7 and set(calls) == {0.5}
    assert "2 times in a row" in reason


async def test_a_call_waiting_for_a_pooled_connection_is_not_taken_for_a_dockerd_that_cannot_be_reached(
        tmp_path: Path) -> None:
    """Issue 14: 100 units starting at once took every connection of the client's pool (aiohttp's
    default, 100); the next calls waited for one, and that wait counted against the 3 s connect timeout:
    they failed as if dockerd could not be reached, while it answered everyone else. Waiting for the
    pool is bounded by the call's own deadline; only connecting is bounded by the connect timeout."""
    path = tmp_path / "slow.sock"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await asyncio.sleep(0.5)  # a busy dockerd: each answer takes a while
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    try:
        async with Runtime(path, timeout=5.0, connect_timeout=0.2) as rt:
            answers = await asyncio.gather(*(rt.ping() for _ in range(150)))
        assert answers == [True] * 150
    finally:
        server.close()
        await server.wait_closed()


async def test_calls_to_a_socket_that_does_not_answer_time_out(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "frozen.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)  # accepts (the kernel queues connections) but never answers: a frozen dockerd
    try:
        async with Runtime(path, timeout=0.3) as rt:
            assert await rt.ping(timeout=0.2) is False
            with pytest.raises(runtime.DockerUnavailable, match="no answer"):
                await rt.list_containers()
        async with Runtime(tmp_path / "missing.sock", timeout=0.3) as rt:
            with pytest.raises(runtime.DockerUnavailable, match="cannot connect"):
                await rt.inspect("x")
    finally:
        server.close()


def test_layout_on_a_host() -> None:
    layout = DockerdLayout.system(Paths(), sandbox=False)
    argv = layout.argv()
    assert argv[0] == "/usr/sbin/dockerd"
    opts = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert opts["--host"] == "unix:///run/system-docker.sock"
    assert opts["--data-root"] == "/var/lib/system-docker"
    assert opts["--exec-root"] == "/run/system-docker"
    assert opts["--pidfile"] == "/run/system-docker.pid"
    assert opts["--bridge"] == "corral-sys0"
    assert opts["--config-file"] == "/run/corral/system-docker.json"
    assert opts["--cgroup-parent"] == "/system-docker"
    assert "--live-restore" in argv and "--dns" not in argv
    assert system_socket(Paths()) == Path("/run/system-docker.sock")


def test_layout_in_a_sandbox(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path / "sb")
    layout = DockerdLayout.system(paths, sandbox=True)
    assert layout.socket == tmp_path / "sb/run/system-docker.sock"  # reachable from the host
    assert layout.data_root == tmp_path / "sb/var/lib/system-docker"
    # containerd's sockets live below the exec root: it stays short, in the sandbox's private /run
    assert layout.exec_root == Path("/run/system-docker")
    assert layout.cgroup_parent.startswith("/corral-sandbox-")
    assert layout.cgroup_parent != DockerdLayout.system(Paths.sandbox(tmp_path / "other"), True).cgroup_parent
    assert layout.bridge_cidr == "198.19.42.1/24" and layout.dns == "198.19.42.1"
    assert layout.env()["PATH"].startswith("/usr/local/sbin")


def test_watchdog_worst_case() -> None:
    assert Watchdog().worst_case == 8.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_dockerd_that_dies_while_starting_waits_longer_each_time() -> None:
    backoff = restart_backoff()
    backoff.clock = Clock()
    # It never answered /_ping: however long its start took, no health was earned.
    delays = [backoff.next_delay(ran_for=healthy_for(None, 45.0)) for _ in range(9)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_dockerd_that_was_healthy_is_restarted_at_once() -> None:
    backoff = restart_backoff()
    backoff.clock = Clock()
    for _ in range(8):  # at the cap
        backoff.next_delay(ran_for=0.0)
    # Up at 20 s, answering until it died at 31 s: 11 s healthy (issue 14 killed it every 31 s).
    assert backoff.next_delay(ran_for=healthy_for(20.0, 20.0 + HEALTHY_AFTER + 1)) == 0.0
    assert backoff.next_delay(ran_for=healthy_for(40.0, 41.0)) == 0.5  # a second down soon after: waits
    # 29 s since its spawn, but healthy for 2 s only: the start time does not count.
    assert backoff.next_delay(ran_for=healthy_for(27.0, 29.0)) == 1.0


def test_cli_derives_the_socket_from_the_control_socket() -> None:
    assert derived_socket(Path("/run/corral/control.sock")) == Path("/run/system-docker.sock")
    assert derived_socket(Path("/tmp/sb/run/corral/control.sock")) == Path("/tmp/sb/run/system-docker.sock")


def test_cli_runs_debian_docker_with_the_system_socket(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    from supervisor.cli import main as cli_main
    from supervisor.cli import system_docker

    seen: dict[str, Any] = {}

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        seen.update(path=path, argv=argv, env=env)
        raise SystemExit(0)

    monkeypatch.setattr(system_docker.os, "execve", fake_execve)
    monkeypatch.setenv("DOCKER_HOST", "tcp://elsewhere:2375")
    control = tmp_path / "run/corral/control.sock"  # nobody serves it: the socket is derived
    with pytest.raises(SystemExit):
        cli_main.main(["--socket", str(control), "system-docker", "ps", "-a", "--format", "{{.Names}}"])
    assert seen["path"] == "/usr/bin/docker"
    assert seen["argv"] == ["/usr/bin/docker", "-H", f"unix://{tmp_path}/run/system-docker.sock", "ps", "-a",
                            "--format", "{{.Names}}"]
    assert "DOCKER_HOST" not in seen["env"]


INITRAMFS_MOUNTINFO = """\
1 1 0:2 / / rw shared:1 - rootfs rootfs rw,size=747712k,nr_inodes=186928
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
23 1 0:5 / /dev rw,nosuid shared:3 - devtmpfs devtmpfs rw,size=4096k
"""
DISK_MOUNTINFO = """\
25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 25 0:5 / /dev rw,nosuid shared:2 - devtmpfs udev rw
"""


def test_dockerd_on_an_initramfs_root_is_told_it_cannot_pivot_root(tmp_path: Path) -> None:
    from units.system_dockerd import root_fstype_of

    assert root_fstype_of(INITRAMFS_MOUNTINFO) == "rootfs"
    assert root_fstype_of(DISK_MOUNTINFO) == "ext4"
    layout = DockerdLayout.system(Paths.sandbox(tmp_path), sandbox=True)
    assert layout.env(root_fstype="rootfs")["DOCKER_RAMDISK"] == "true"
    assert "DOCKER_RAMDISK" not in layout.env(root_fstype="ext4")
