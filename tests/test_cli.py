"""The `corral` CLI against a real control server with fake handlers: every command, text and JSON."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor.cli import logs as logs_cli
from supervisor.cli.main import build_parser, main
from supervisor.config.schema import Schema
from supervisor.control.catalogue import COMMANDS
from supervisor.control.protocol import NOT_SET, ControlError
from supervisor.control.server import ControlServer

REPO = Path(__file__).resolve().parents[1]

STATUS = {
    "version": "0.1.0",
    "hostname": "edge-1",
    "pid": 1,
    "sandbox": None,
    "state": "degraded",
    "phase": "ready",
    "uptime": 3725.5,
    "boot_phases": {"mounts": 0.012, "config": 0.2},
    "degraded": {"network": "eth0 has no carrier"},
    "emergency": None,
    "config": {"generation": 3, "errors": ["cloud-config.yml: corral.log.level: 'loud' is not one of ..."],
               "warnings": ["cloud-config.yml: rancher.console: not implemented: ..."]},
    "handlers": [
        {"name": "network", "state": "backoff", "restarts": 2, "failures": 3, "last_error": "OSError: EBUSY"},
        {"name": "containers", "state": "idle", "restarts": 0, "failures": 0, "last_error": None},
    ],
    "processes": {"children": [{"name": "dockerd", "pid": 41}], "spawned": 7, "orphans_reaped": 2},
    "bus": {"published": 1234, "subscribers": {"network": {"pending": 0, "dropped": 5, "overflows": 1}}},
    "tasks": 9,
    "memory": {"rss_kib": 52224, "max_rss_kib": 60000},
    "mounts": [],
}
SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
RECORDS = [
    {"ts": "2024-05-01T12:00:00.000000Z", "level": "info", "logger": "supervisor.net", "event": "link up",
     "iface": "eth0"},
    {"ts": "2024-05-01T12:00:01.500000Z", "level": "error", "logger": "supervisor.units", "unit": "docker",
     "event": "exited", "code": 1, "msg": "out of space",
     "traceback": "Traceback (most recent call last):\nOSError"},
]  # fmt: skip
EVENTS = [
    {"ts": 1714564800.0, "kind": "config.changed", "generation": 4, "changed": ["corral.hostname"]},
    {"ts": 1714564801.25, "kind": "process.exited", "pid": 41, "name": "dockerd", "returncode": 0,
     "signal": None, "orphan": False},
]  # fmt: skip


class FakeSupervisor:
    """Records every call; answers like the real one would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.user_config: dict[str, Any] = {"corral": {"hostname": "edge-1", "network": {"dns": ["1.1.1.1"]}}}

    def register(self, server: ControlServer) -> None:
        for name in ("status", "config.get", "config.set", "config.unset", "config.export", "config.merge",
                     "config.validate", "config.schema", "reload", "poweroff", "reboot"):  # fmt: skip
            server.register(name, self._handler(name))
        server.register_stream("logs", self.logs)
        server.register_stream("events", self.events)

    def _handler(self, name: str) -> Any:
        async def handle(args: dict[str, Any]) -> Any:
            self.calls.append((name, args))
            return self.answer(name, args)

        return handle

    def answer(self, name: str, args: dict[str, Any]) -> Any:
        if name == "status":
            return STATUS
        if name == "config.get":
            if args["key"] == "corral.state":
                raise ControlError("corral.state: not set (a known key; ...)", NOT_SET)
            node: Any = self.user_config
            for part in args["key"].split("."):
                if not isinstance(node, dict) or part not in node:
                    raise ControlError(f"no such key: {args['key']}")
                node = node[part]
            return node
        if name in ("config.set", "config.unset", "config.merge", "reload"):
            return {"generation": 4, "changed": ["corral.hostname"] if name != "reload" else []}
        if name == "config.export":
            exported = json.loads(json.dumps(self.user_config))
            if args["secrets"]:
                exported["corral"]["password"] = "hunter2"
            return exported
        if name == "config.validate":
            if "bad" in args["yaml"]:
                errors = [
                    {"file": args["filename"], "key": "corral.log.level", "message": "'bad' is not a level",
                     "line": 2},
                    {"file": args["filename"], "key": "(document)", "message": "second problem",
                     "line": None},
                ]  # fmt: skip
                return {"valid": False, "errors": errors}
            return {"valid": True, "errors": []}
        if name == "config.schema":
            return SCHEMA
        return None  # poweroff, reboot

    async def logs(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        self.calls.append(("logs", args))
        for record in RECORDS:
            yield record
        if args["follow"]:
            yield {"ts": "2024-05-01T12:00:02.000000Z", "level": "info", "logger": "x", "event": "live"}

    async def events(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        self.calls.append(("events", args))
        for event in EVENTS:
            yield event


@pytest.fixture
def sockdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="corral-cli-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def fake(sockdir: Path) -> AsyncIterator[tuple[FakeSupervisor, Path]]:
    sup = FakeSupervisor()
    server = ControlServer(sockdir / "control.sock")
    sup.register(server)
    with capture_logs():
        await server.start()
        yield sup, server.socket_path
        await server.stop()


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


@pytest.fixture
def corral(capsys: pytest.CaptureFixture[str], fake: tuple[FakeSupervisor, Path]) -> Any:
    """Run the CLI in a thread (the server lives on this test's loop) against the fake supervisor."""

    async def run(*argv: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--socket", str(fake[1]), *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def calls(fake: tuple[FakeSupervisor, Path]) -> list[tuple[str, dict[str, Any]]]:
    return fake[0].calls


# --- status -----------------------------------------------------------------------------------


async def test_status_text(corral: Any) -> None:
    r = await corral("status")
    assert r.code == 0 and r.err == ""
    lines = r.out.splitlines()
    assert lines[0] == "corral 0.1.0 on edge-1, up 1h 02m 05s"
    assert "state:     degraded" in lines
    assert "degraded:  network: eth0 has no carrier" in lines
    assert "boot:      mounts 0.01s, config 0.20s" in lines
    assert "config:    generation 3, 1 error (the rest applied), 1 warning" in lines
    assert any("corral.log.level: 'loud'" in line for line in lines)
    warning = "warning: cloud-config.yml: rancher.console: not implemented: ..."
    assert any(line.strip() == warning for line in lines)
    assert "handlers:  2" in lines
    network = next(line for line in lines if line.strip().startswith("network "))
    assert network.split()[:4] == ["network", "backoff", "2", "3"] and network.endswith("OSError: EBUSY")
    assert "children:  1 (spawned 7, orphans reaped 2)" in lines
    assert "bus:       1234 events published, 1 subscriber, 5 dropped" in lines
    assert "memory:    51.0 MiB resident (peak 58.6 MiB)" in lines


async def test_status_json_is_the_result_as_is(corral: Any) -> None:
    r = await corral("status", "-o", "json")
    assert r.code == 0 and r.json() == STATUS


async def test_socket_option_after_the_command(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("status", "--socket", str(fake[1]), "-o", "json")
    assert r.json()["hostname"] == "edge-1"


# --- config -----------------------------------------------------------------------------------


async def test_config_get(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("config", "get", "corral.hostname")
    assert (r.code, r.out) == (0, "edge-1\n")
    r = await corral("config", "get", "corral.network")
    assert r.out == "dns:\n- 1.1.1.1\n"
    r = await corral("config", "get", "corral.network", "-o", "json")
    assert r.json() == {"dns": ["1.1.1.1"]}
    assert calls(fake)[-1] == ("config.get", {"key": "corral.network", "secrets": False})


async def test_config_get_asks_for_secrets_only_with_secrets_or_private(
    corral: Any, fake: tuple[FakeSupervisor, Path]
) -> None:
    for flag in ("--secrets", "--private"):
        assert (await corral("config", "get", "corral.hostname", flag)).code == 0
        assert calls(fake)[-1] == ("config.get", {"key": "corral.hostname", "secrets": True})
    assert (await corral("config", "export", "--private")).code == 0
    assert calls(fake)[-1] == ("config.export", {"secrets": True})


async def test_config_get_missing_key_fails_with_one_line(corral: Any) -> None:
    r = await corral("config", "get", "corral.nope")
    assert (r.code, r.out, r.err) == (1, "", "corral: no such key: corral.nope\n")


async def test_config_get_of_a_known_key_without_value_exits_4(corral: Any) -> None:
    r = await corral("config", "get", "corral.state")
    assert (r.code, r.out, r.err) == (4, "", "corral: corral.state: not set (a known key; ...)\n")
    r = await corral("config", "get", "corral.state", "-o", "json")
    assert (r.code, r.out) == (4, "null\n")


async def test_config_set_sends_the_value_as_yaml_text(
    corral: Any, fake: tuple[FakeSupervisor, Path]
) -> None:
    r = await corral("config", "set", "corral.network.dns", "[8.8.8.8, 1.1.1.1]")
    assert (r.code, r.out) == (0, "config generation 4; changed: corral.hostname\n")
    assert calls(fake)[-1] == ("config.set", {"key": "corral.network.dns", "value": "[8.8.8.8, 1.1.1.1]"})
    r = await corral("config", "set", "corral.hostname", "x", "-o", "json")
    assert r.json() == {"generation": 4, "changed": ["corral.hostname"]}


async def test_config_unset_sends_the_key(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("config", "unset", "corral.hostname")
    assert (r.code, r.out) == (0, "config generation 4; changed: corral.hostname\n")
    assert calls(fake)[-1] == ("config.unset", {"key": "corral.hostname"})


async def test_config_export(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("config", "export")
    assert r.code == 0
    assert r.out.startswith("#cloud-config\ncorral:\n  hostname: edge-1\n")
    assert "hunter2" not in r.out
    assert calls(fake)[-1] == ("config.export", {"secrets": False})
    r = await corral("config", "export", "--secrets", "-o", "json")
    assert r.json()["corral"]["password"] == "hunter2"
    assert calls(fake)[-1] == ("config.export", {"secrets": True})


async def test_config_merge_from_a_file_and_from_stdin(
    corral: Any, fake: tuple[FakeSupervisor, Path], sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = "#cloud-config\ncorral:\n  hostname: edge-2\n"
    (sockdir / "more.yml").write_text(doc)
    r = await corral("config", "merge", str(sockdir / "more.yml"))
    assert (r.code, r.out) == (0, "config generation 4; changed: corral.hostname\n")
    assert calls(fake)[-1] == ("config.merge", {"yaml": doc, "filename": str(sockdir / "more.yml")})
    monkeypatch.setattr(sys, "stdin", io.StringIO("corral: {hostname: edge-3}\n"))
    r = await corral("config", "merge", "-", "-o", "json")
    assert r.json() == {"generation": 4, "changed": ["corral.hostname"]}
    assert calls(fake)[-1] == ("config.merge",
                               {"yaml": "corral: {hostname: edge-3}\n", "filename": "<stdin>"})


async def test_config_merge_of_a_missing_file(corral: Any, sockdir: Path) -> None:
    r = await corral("config", "merge", str(sockdir / "absent.yml"))
    assert r.code == 1
    assert r.err == f"corral: cannot read {sockdir / 'absent.yml'}: No such file or directory\n"


async def test_config_validate_runs_here_not_in_the_supervisor(
    corral: Any, fake: tuple[FakeSupervisor, Path], sockdir: Path
) -> None:
    good, bad = sockdir / "good.yml", sockdir / "bad.yml"
    good.write_text("corral: {}\n")
    bad.write_text("corral:\n  log: {level: bad}\n  lgo: {}\n")
    r = await corral("config", "validate", str(good))
    assert (r.code, r.out) == (0, f"{good}: valid\n")
    r = await corral("config", "validate", str(bad))
    assert r.code == 1
    assert r.out.splitlines() == [
        f"{bad}: corral.log.level: 'bad' is not one of: debug, info, warning, error (line 2)",
        f"{bad}: corral.lgo: unknown key; did you mean 'corral.log'? (line 3)",
    ]
    r = await corral("config", "validate", str(bad), "-o", "json")
    assert r.code == 1 and r.json()["valid"] is False and len(r.json()["errors"]) == 2
    assert r.json()["errors"][1] == {
        "file": str(bad), "key": "corral.lgo", "message": "unknown key; did you mean 'corral.log'? (line 3)",
        "line": 3, "suggestion": "corral.log",
    }  # fmt: skip
    assert r.json()["errors"][0]["suggestion"] is None  # 'bad' is like no level
    assert not [c for c in calls(fake) if c[0] == "config.validate"]


async def test_config_schema_runs_here(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    for argv in (("config", "schema"), ("config", "schema", "-o", "json")):
        r = await corral(*argv)
        assert r.code == 0 and r.json() == Schema().copy()
    assert not [c for c in calls(fake) if c[0] == "config.schema"]


# --- logs and events --------------------------------------------------------------------------


async def test_logs_text(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("logs")
    assert r.code == 0
    assert r.out.splitlines() == [
        "2024-05-01T12:00:00.000000Z info    [supervisor.net] link up iface=eth0",
        "2024-05-01T12:00:01.500000Z error   [docker] exited logger=supervisor.units code=1"
        ' msg="out of space"',
        "    Traceback (most recent call last):",
        "    OSError",
    ]
    assert calls(fake)[-1] == ("logs", {**NO_FILTERS, "level": "info"})


async def test_logs_json_and_filters(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("logs", "-u", "docker", "-n", "5", "--level", "warning", "--since", "10m", "-o", "json")
    assert r.code == 0 and r.json_lines() == RECORDS
    name, args = calls(fake)[-1]
    assert name == "logs"
    assert (args["unit"], args["limit"], args["level"], args["follow"]) == (["docker"], 5, "warning", False)
    assert abs(args["since"] - (time.time() - 600)) < 60
    r = await corral("logs", "--json", "-u", "a", "-u", "b", "-p", "err", "-g", "Link", "-r", "-b", "-1",
                     "--since", "-1h", "--until", "-5m")
    assert r.code == 0 and r.json_lines() == RECORDS
    args = calls(fake)[-1][1]
    assert (args["unit"], args["level"], args["grep"], args["reverse"], args["boot"]) == (
        ["a", "b"], "error", "Link", True, -1)
    assert args["until"] - args["since"] == pytest.approx(3300, abs=5)


async def test_logs_follow_streams(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("logs", "-f", "-o", "json")
    assert r.code == 0
    assert [rec["event"] for rec in r.json_lines()] == ["link up", "exited", "live"]
    assert calls(fake)[-1] == ("logs", {**NO_FILTERS, "level": "info", "limit": 10, "follow": True})
    r = await corral("logs", "--follow", "-n", "3")
    assert r.out.splitlines()[-1] == "2024-05-01T12:00:02.000000Z info    [x] live"
    assert calls(fake)[-1][1]["limit"] == 3


async def test_logs_bad_since_is_a_usage_error(corral: Any) -> None:
    r = await corral("logs", "--since", "last tuesday")
    assert r.code == 2 and "--since" in r.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-f", "-r"], "corral: -r/--reverse cannot be combined with -f/--follow"),
        (["-f", "--until", "-5m"], "corral: -U/--until cannot be combined with -f/--follow"),
        (["-f", "-b", "-1"], "corral: -b with an earlier boot cannot be combined with -f/--follow"),
    ],
)
async def test_logs_options_that_do_not_combine_with_follow(
    corral: Any, fake: tuple[FakeSupervisor, Path], argv: list[str], message: str
) -> None:
    r = await corral("logs", *argv)
    assert (r.code, r.err.strip()) == (2, message)
    assert calls(fake) == []


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["-p", "loud"], "argument -p/--priority/--level: unknown level 'loud'"),
        (["-p", "8"], "unknown level '8'"),
        (["-g", "a(b"], "not a valid regular expression"),
        (["-b", "1"], "use 0 (this boot) or a negative offset"),
        (["-n", "0"], "must be 1 or more"),
        (["--until", "soon"], "cannot read time 'soon'"),
        (["--since"], "expected one argument"),
    ],
)
async def test_logs_bad_values_are_usage_errors(corral: Any, argv: list[str], error: str) -> None:
    r = await corral("logs", *argv)
    assert r.code == 2 and error in r.err


NO_FILTERS = {"since": None, "until": None, "unit": None, "limit": None, "level": None, "grep": None,
              "boot": None, "reverse": False, "follow": False}


def logs_request(*argv: str) -> dict[str, Any]:
    """What `corral logs ARGV` asks the supervisor for (the times as seconds before now)."""
    args = build_parser().parse_args(["logs", *argv])
    query = logs_cli.query_args(args, args.units)
    now = time.time()
    for key in ("since", "until"):
        if query[key] is not None:
            query[key] = round(now - query[key])
    return query


def documented_logs_commands() -> list[str]:
    """Every `corral logs ...` line in docs/journal.md and docs/cli.md (comments cut), and the examples of
    `corral logs --help`."""
    found = [command for command, _ in logs_cli.EXAMPLES]
    for doc in ("journal.md", "cli.md"):
        for line in (REPO / "docs" / doc).read_text().splitlines():
            line = line.split(" # ")[0].strip().removeprefix("$ ")
            if line.startswith("corral logs") and "[" not in line:
                found.append(line.split(" | ")[0])
    return found


@pytest.mark.parametrize("command", documented_logs_commands())
def test_every_documented_logs_command_parses(command: str) -> None:
    argv = shlex.split(command)[2:]
    query = logs_request(*argv)
    assert query["level"] in ("debug", "info", "warning", "error", "critical")
    if "-f" in argv or "--follow" in argv:
        assert query["follow"] and not query["reverse"] and query["until"] is None


def test_documented_logs_commands_are_all_found() -> None:
    commands = documented_logs_commands()
    for fragment in ("-p warning", "--since -5m", "--since=-5m", "-o json", "--json", "-u docker -u network",
                     "-g ", "-r", "-b -1", "-f", "--until"):
        assert any(fragment in c for c in commands), fragment


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"level": "info"}),
        (["-p", "warning"], {"level": "warning"}),
        (["--priority", "3"], {"level": "error"}),
        (["--level", "debug"], {"level": "debug"}),  # the old name
        (["-p", "notice"], {"level": "info"}),
        (["-p", "crit"], {"level": "critical"}),
        (["-u", "docker"], {"level": "info", "unit": ["docker"]}),
        (["-u", "docker", "--unit", "network"], {"level": "info", "unit": ["docker", "network"]}),
        (["--since", "-5m"], {"level": "info", "since": 300}),  # two words
        (["--since=-5m"], {"level": "info", "since": 300}),
        (["-S", "-1h30m"], {"level": "info", "since": 5400}),
        (["--since", "5 min ago"], {"level": "info", "since": 300}),
        (["--since", "-2 hours", "--until", "-1h"], {"level": "info", "since": 7200, "until": 3600}),
        (["-U", "-30s"], {"level": "info", "until": 30}),
        (["-g", "unit (started|stopped)"], {"level": "info", "grep": "unit (started|stopped)"}),
        (["-r", "-n", "20"], {"level": "info", "reverse": True, "limit": 20}),
        (["-b"], {"level": "info", "boot": 0}),
        (["-b", "-1"], {"level": "info", "boot": -1}),
        (["--boot=-2", "-n", "3"], {"level": "info", "boot": -2, "limit": 3}),
        (["-b", "-f"], {"level": "info", "boot": 0, "follow": True, "limit": 10}),
        (["-f", "-n", "3", "-u", "x", "-p", "error", "-g", "y", "--since", "-1m"],
         {"level": "error", "follow": True, "limit": 3, "unit": ["x"], "grep": "y", "since": 60}),
        (["--", "-5m"], None),  # nothing after -- is glued (and logs takes no positional)
    ],
)
def test_logs_options(argv: list[str], expected: dict[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(SystemExit):
            logs_request(*argv)
        return
    assert logs_request(*argv) == {**NO_FILTERS, **expected}


def test_json_output_options() -> None:
    for argv in (["--json"], ["-o", "json"], ["--output=json"]):
        assert build_parser().parse_args(["logs", *argv]).output == "json"
    assert build_parser().parse_args(["logs"]).output == "text"


def test_since_forms() -> None:
    now = 1_714_564_800.0  # 2024-05-01T12:00:00Z
    assert logs_cli.parse_since("10m", now) == now - 600
    assert logs_cli.parse_since("1h30m ago", now) == now - 5400
    assert logs_cli.parse_since("-2d", now) == now - 2 * 86400
    assert logs_cli.parse_since("2024-05-01T11:00:00Z", now) == now - 3600
    assert logs_cli.parse_since("1714564000", now) == 1714564000.0
    assert logs_cli.parse_since("today", now) == now - 12 * 3600
    with pytest.raises(ValueError):
        logs_cli.parse_since("soon", now)


async def test_events(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("events")
    assert r.code == 0
    assert r.out.splitlines() == [
        '2024-05-01T12:00:00.000000Z config.changed generation=4 changed=["corral.hostname"]',
        "2024-05-01T12:00:01.250000Z process.exited"
        " pid=41 name=dockerd returncode=0 signal=null orphan=false",
    ]
    assert calls(fake)[-1] == ("events", {"kinds": None})
    r = await corral("events", "-f", "--kind", "process", "--kind", "config.changed", "-o", "json")
    assert r.json_lines() == EVENTS
    assert calls(fake)[-1] == ("events", {"kinds": ["process", "config.changed"]})


# --- reload, poweroff, reboot -----------------------------------------------------------------


async def test_reload_poweroff_reboot(corral: Any, fake: tuple[FakeSupervisor, Path]) -> None:
    r = await corral("reload")
    assert (r.code, r.out) == (0, "reloaded: config generation 4; nothing changed\n")
    assert (await corral("reload", "-o", "json")).json() == {"generation": 4, "changed": []}
    assert (await corral("poweroff")).out == "powering off\n"
    assert (await corral("reboot")).out == "rebooting\n"
    assert (await corral("reboot", "-o", "json")).json() is None
    assert [c[0] for c in calls(fake)] == ["reload", "reload", "poweroff", "reboot", "reboot"]


# --- sandbox ----------------------------------------------------------------------------------


def test_sandbox_hands_its_options_to_main_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    import supervisor.sandbox

    seen: list[argparse.Namespace] = []

    def fake_main_sandbox(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    monkeypatch.setattr(supervisor.sandbox, "main_sandbox", fake_main_sandbox)
    argv = ["sandbox", "--config", "my.yml", "--dir", "/tmp/sb", "--cmdline", "corral.debug=true", "--detach"]
    assert main(argv) == 7
    args = seen[0]
    assert (args.config, args.dir, args.cmdline) == (Path("my.yml"), Path("/tmp/sb"), "corral.debug=true")
    assert (args.detach, args.foreground) == (True, False)
    assert main(["sandbox", "--dir", "/tmp/sb"]) == 7
    assert (seen[1].detach, seen[1].foreground, seen[1].config) == (False, True, None)


def test_sandbox_foreground_and_detach_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--dir", "x", "--foreground", "--detach"]) == 2
    assert "not allowed with" in capsys.readouterr().err


# --- help and failures ------------------------------------------------------------------------


def all_commands() -> list[list[str]]:
    """Every command and subcommand path, found in the parser itself."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append([*path, name])
                    walk(sub, [*path, name])

    walk(build_parser(), [])
    return found


def test_every_command_is_found() -> None:
    names = {" ".join(c) for c in all_commands()}
    assert names == {
        "status", "config", "config get", "config set", "config unset", "config export", "config merge",
        "config validate", "config schema", "logs", "events", "reload", "poweroff", "reboot", "sandbox",
        "debug", "debug fail",
        "debug spawn", "debug publish", "debug modules", "debug init-watch", "system-docker",
        "units", "units list", "units inspect", "units up", "units down", "units restart",
        "units enable", "units disable", "units logs",
        "service", "service list", "service inspect", "service up", "service down", "service restart",
        "service enable", "service disable", "service logs", "net", "net status", "net plan", "net apply",
        "net try", "net confirm", "storage", "storage status", "storage mount", "storage unmount", "dev",
        "swarm", "swarm status", "swarm token",
        "install", "os", "os upgrade", "os list", "os rollback",
    }  # fmt: skip


@pytest.mark.parametrize("command", [[], *all_commands()], ids=lambda c: " ".join(c) or "corral")
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    typed = ["units" if word == "service" else word for word in command]  # an alias shows its command's name
    assert out.startswith(f"usage: {' '.join(['corral', *typed])}")
    assert "examples:" in out
    assert len(out.split("\n\n")[1].strip()) > 30  # a description


def test_every_protocol_command_has_a_cli_command() -> None:
    cli = {" ".join(c).replace(" ", ".") for c in all_commands()}
    assert set(COMMANDS) <= cli


def test_socket_missing(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sockdir / "nothing.sock"
    assert main(["--socket", str(path), "status"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"corral: cannot reach the supervisor at {path} (is corral running?)\n"


def test_socket_from_the_environment(
    sockdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CORRAL_SOCKET", str(sockdir / "env.sock"))
    assert main(["reload"]) == 3
    assert f"{sockdir / 'env.sock'}" in capsys.readouterr().err
    monkeypatch.delenv("CORRAL_SOCKET")
    assert build_parser().parse_args(["reload"]).socket == Path("/run/corral/control.sock")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["config"]) == 2
    assert main(["logs", "-n", "0"]) == 2
    assert main(["status", "-o", "yaml"]) == 2


async def test_non_root_cli_gets_a_one_line_permission_error(fake: tuple[FakeSupervisor, Path]) -> None:
    os.chmod(fake[1].parent, 0o711)
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "supervisor.cli", "--socket", str(fake[1]), "status"],
        user=65534,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr == (
        f"corral: permission denied: cannot open {fake[1]} (the control socket is root-only; run as root)\n"
    )
    assert fake[0].calls == []
