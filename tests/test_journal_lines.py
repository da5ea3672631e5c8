"""Children's lines into the journal at their own level: one decision (supervisor.journal.lines) for the
system dockerd's output, units' output and PID 1's helpers; library chatter at debug."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.journal import Journal, reset, setup
from supervisor.journal.lines import ChildLine, log_line, parse_line
from supervisor.journal.records import LEVELS
from units.logs import UnitLogs
from units.runtime import LogLine

CORPUS = Path(__file__).parent / "logs_corpus"
# Captured from the real dockerd 20.10 fixture (integration/dockerd.py; its TMP/dockerd.log): start, a
# `docker run --rm`, a `docker run -d` removed with `rm -f`, then SIGTERM. TMP is /var/lib/corral-test.
DOCKERD_LOG = (CORPUS / "dockerd-20.10.log").read_text().splitlines()


@pytest.fixture
def journal() -> Iterator[Journal]:
    yield setup(console=None)
    reset()


def own_level(line: str) -> str:
    return line.split(" level=", 1)[1].split(" ", 1)[0]


def test_every_captured_dockerd_line_is_read_as_logrus() -> None:
    for line in DOCKERD_LOG:
        parsed = parse_line(line)
        assert parsed.message != line, line  # the msg= value, not the whole line
        assert "time" not in parsed.fields and "level" not in parsed.fields and "msg" not in parsed.fields
        own = {"warning": "warning", "info": "info", "error": "error"}[own_level(line)]
        # never raised above the line's own level; lowered only to debug
        assert parsed.level in (own, "debug"), line


@pytest.mark.parametrize(
    ("line", "level", "message", "fields"),
    [
        (DOCKERD_LOG[0], "info", "Starting up", {}),
        ('time="2026-12-07T06:56:06.258029838Z" level=info msg="libcontainerd: started new containerd '
         'process" pid=21870', "info", "libcontainerd: started new containerd process", {"pid": "21870"}),
        # gRPC's resolver and balancer chatter
        ('time="2026-12-07T06:56:06.258103133Z" level=info msg="[core] parsed scheme: \\"unix\\"" '
         'module=grpc', "debug", '[core] parsed scheme: "unix"', {"module": "grpc"}),
        ('time="2026-12-07T06:56:06.258137318Z" level=info msg="[core] ClientConn switching balancer to '
         '\\"pick_first\\"" module=grpc', "debug", '[core] ClientConn switching balancer to "pick_first"',
         {"module": "grpc"}),
        # containerd's plugin list
        ('time="2026-12-07T06:56:06.301345219Z" level=info msg="loading plugin '
         '\\"io.containerd.content.v1.content\\"..." type=io.containerd.content.v1', "debug",
         'loading plugin "io.containerd.content.v1.content"...', {"type": "io.containerd.content.v1"}),
        ('time="2026-12-07T06:56:06.304478041Z" level=info msg="skip loading plugin '
         '\\"io.containerd.snapshotter.v1.zfs\\"..." error="path /var/lib/corral-test/data must be a zfs '
         'filesystem to be used with the zfs snapshotter: skip plugin" type=io.containerd.snapshotter.v1',
         "debug", 'skip loading plugin "io.containerd.snapshotter.v1.zfs"...', None),
        # warnings of dockerd and containerd themselves stay warnings
        ('time="2026-12-07T06:56:06.337870402Z" level=warning msg="Your kernel does not support cgroup blkio '
         'weight"', "warning", "Your kernel does not support cgroup blkio weight", {}),
        ('time="2026-12-07T06:56:06.302186474Z" level=warning msg="failed to load plugin '
         'io.containerd.snapshotter.v1.devmapper" error="devmapper not configured"', "warning",
         "failed to load plugin io.containerd.snapshotter.v1.devmapper",
         {"error": "devmapper not configured"}),
        ('time="2026-12-07T06:56:07.383915942Z" level=warning msg="cleaning up after shim disconnected" '
         'id=c83f85 namespace=moby', "warning", "cleaning up after shim disconnected",
         {"id": "c83f85", "namespace": "moby"}),
        ('time="2026-12-07T06:56:08.342535301Z" level=info msg="Processing signal \'terminated\'"', "info",
         "Processing signal 'terminated'", {}),
    ],
)
def test_dockerd_lines(line: str, level: str, message: str, fields: dict[str, str] | None) -> None:
    parsed = parse_line(line)
    assert (parsed.level, parsed.message) == (level, message)
    if fields is not None:
        assert parsed.fields == fields


def test_the_captured_start_is_mostly_chatter() -> None:
    """What made `corral logs -n 50` after boot all gRPC: most of dockerd's start is chatter at debug,
    and every line it prints at warning or worse stays there (but gRPC's reconnect warnings)."""
    parsed = [parse_line(line) for line in DOCKERD_LOG]
    shown = [p for p in parsed if p.level != "debug"]
    assert len(shown) < len(parsed) / 3
    assert not any(p.fields.get("module") == "grpc" or "loading plugin" in p.message for p in shown)
    kept_warnings = [line for line, p in zip(DOCKERD_LOG, parsed, strict=True)
                     if own_level(line) == "warning" and "module=grpc" not in line]
    assert kept_warnings and all(parse_line(line).level == "warning" for line in kept_warnings)
    grpc_warning = next(line for line in DOCKERD_LOG
                        if own_level(line) == "warning" and "module=grpc" in line)
    assert "createTransport failed" in grpc_warning and parse_line(grpc_warning).level == "debug"


def test_logrus_text_lines() -> None:
    line = ('time="2024-05-01T12:00:00Z" level=warning msg="failed to load plugin \\"x\\"" '
            'error="devmapper not configured" module=libcontainerd')
    assert parse_line(line) == ChildLine("warning", 'failed to load plugin "x"',
                                         {"error": "devmapper not configured", "module": "libcontainerd"})
    assert parse_line('level=info msg="[core] Channel" module=grpc').level == "debug"
    assert parse_line("level=error msg=boom") == ChildLine("error", "boom")
    assert parse_line("level=fatal msg=dead").level == "critical"
    assert parse_line("level=trace msg=deep").level == "debug"
    assert parse_line('level=error msg="[core] grpc: broken" module=grpc').level == "error"  # never demoted
    assert "traceback" not in parse_line("level=info msg=x traceback=y boot=z").fields
    assert "boot" not in parse_line("level=info msg=x boot=z").fields
    assert parse_line("level=loud msg=x").level == "info"


def test_lines_without_a_level_of_their_own() -> None:
    for text in ("plain text from a child", "the level=error of x msg=y",  # not logrus: must start so
                 "{not json", '{"msg": "no level"}', '["level", "info"]', 'time="x" msg="no level"'):
        assert parse_line(text) == ChildLine("info", text)


def test_logrus_on_a_terminal_and_json_lines() -> None:
    assert parse_line("WARN[0000] failed to load plugin   error=x") == ChildLine(
        "warning", "failed to load plugin   error=x")
    assert parse_line("DEBU[2018-07-09T11:49:24.429516715Z] Listener created") == ChildLine(
        "debug", "Listener created")
    assert parse_line('INFO[0000] parsed scheme: "unix"   module=grpc').level == "info"
    line = '{"level":"error","msg":"pull failed","time":"2024-05-01T12:00:00Z","ref":"x:1","n":3}'
    assert parse_line(line) == ChildLine("error", "pull failed", {"ref": "x:1", "n": 3})
    assert parse_line('{"level":"warn","message":"slow","unit":"spoofed"}') == ChildLine("warning", "slow")


def test_containerd_going_away_is_an_error_unless_corral_stops_dockerd() -> None:
    line = ('time="2026-11-27T03:53:09Z" level=error msg="Failed to get event" error="rpc error: code = '
            'Unavailable desc = transport is closing" module=libcontainerd namespace=moby')
    assert parse_line(line).level == "error"
    assert parse_line(line, stopping=True).level == "info"
    other = 'level=error msg="Failed to get event" error="rpc error: code = Internal" module=libcontainerd'
    assert parse_line(other, stopping=True).level == "error"
    assert parse_line('level=error msg="boom" module=libcontainerd', stopping=True).level == "error"


def test_dockerd_restarting_its_containerd_at_start_is_a_warning_only_while_dockerd_starts() -> None:
    """What the system dockerd printed in a guest boot under load (TCG, both cores busy): its containerd
    did not answer in time, so dockerd killed and restarted it, then came up. While dockerd starts that is
    its routine (warning); at any other time it stays an error."""
    failed = ('time="2026-12-07T06:53:32.232372Z" level=error msg="failed connecting to containerd" '
              'error="failed to dial \\"/run/system-docker/containerd/containerd.sock\\": connection error: '
              'desc = \\"transport: error while dialing: dial unix '
              '/run/system-docker/containerd/containerd.sock: '
              'connect: connection refused\\"" module=libcontainerd')
    killed = ('time="2026-12-07T06:53:32.406779Z" level=error msg="containerd did not exit successfully" '
              'error="signal: killed" module=libcontainerd')
    for line in (failed, killed):
        assert parse_line(line).level == "error"
        assert parse_line(line, stopping=True).level == "error"
        assert parse_line(line, starting=True).level == "warning"
    other = 'level=error msg="failed to start daemon" error="boom" module=libcontainerd'
    assert parse_line(other, starting=True).level == "error"
    assert parse_line('level=error msg="failed connecting to containerd"', starting=True).level == "error"


def test_log_line_stores_chatter_only_at_debug(journal: Journal) -> None:
    """At the default level (info) gRPC's chatter is not stored; with corral.log.level debug it is,
    with its unit, so `corral logs -u docker -p debug` shows it."""
    for level in ("info", "debug"):
        journal.set_level(level)
        for line in DOCKERD_LOG[:12]:
            log_line(journal, line, logger="dockerd", unit="docker", stream="stderr")
    stored = journal.query()
    at_info, at_debug = stored[: len(stored) - 12], stored[len(stored) - 12:]
    assert [r["event"] for r in at_info] == [parse_line(line).message for line in DOCKERD_LOG[:12]
                                             if parse_line(line).level != "debug"]
    assert {r["level"] for r in at_debug} >= {"debug", "info", "warning"}
    grpc = [r for r in journal.query(unit="docker", level="debug") if r.get("module") == "grpc"]
    assert grpc and all(r["level"] == "debug" and r["unit"] == "docker" and r["stream"] == "stderr"
                        and r["logger"] == "dockerd" for r in grpc)
    assert not [r for r in journal.query(unit="docker", level="info") if r.get("module") == "grpc"]


class LinesRuntime:
    """A dockerd whose container printed ``lines`` (with dockerd's timestamps), then stopped."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    async def follow_logs(self, container: str, **_: Any) -> AsyncIterator[LogLine]:
        for n, text in enumerate(self.lines):
            yield LogLine("stderr", f"2026-12-07T06:56:06.{n:09d}Z {text}")


async def test_unit_output_is_recorded_at_its_own_level(journal: Journal) -> None:
    """The user's dockerd runs as the unit `docker`: its output takes the same decision."""
    journal.set_level("debug")
    lines = [*DOCKERD_LOG[:12], "plain line"]
    logs = UnitLogs(journal, lambda scope: LinesRuntime(lines))  # type: ignore[arg-type,return-value]
    logs.started("docker", "c0ffee", "system", at=0.0)
    for _ in range(200):
        if len(journal.query(unit="docker")) == len(lines):
            break
        await asyncio.sleep(0.01)
    await logs.stop()
    records = journal.query(unit="docker")
    assert [(r["level"], r["event"]) for r in records] == [
        (p.level, p.message) for p in map(parse_line, lines)]
    assert {r["level"] for r in records} == {"debug", "info", "warning"}
    assert all(r["stream"] == "stderr" for r in records)
    assert records[-1]["event"] == "plain line" and records[-1]["level"] == "info"
    assert LEVELS[records[2]["level"]] == LEVELS["debug"] and records[2]["module"] == "grpc"
