"""`corral units ...` against a real control server with fake handlers: arguments sent, text and JSON."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor.cli.main import main
from supervisor.cli.units import render_inspect, render_list
from supervisor.control.catalogue import COMMANDS
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer

UNITS = [
    {"name": "docker", "scope": "system", "state": "running", "restarts": 0, "failures": 0, "uptime": 3725.2,
     "last_exit": None, "next_start_in": None, "restart": "always", "image": "corral/docker:latest",
     "container": "0123456789ab", "container_state": "running", "oneshot": False, "createonly": False,
     "waiting": None, "error": None},
    {"name": "ntp", "scope": "system", "state": "restarting", "restarts": 3, "failures": 3, "uptime": None,
     "last_exit": 1, "next_start_in": 0.4, "restart": "always", "image": "ntp", "container": None,
     "container_state": "exited", "oneshot": False, "createonly": False, "waiting": "restart scheduled",
     "error": None},
    {"name": "web", "scope": "user", "state": "pending", "restarts": 0, "failures": 1, "uptime": None,
     "last_exit": None, "next_start_in": None, "restart": "no", "image": "web", "container": None,
     "container_state": None, "oneshot": False, "createonly": False, "waiting": None,
     "error": "create web: No such image: web"},
]  # fmt: skip


class Fake:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def register(self, server: ControlServer) -> None:
        for name in COMMANDS:
            if name.startswith("units."):
                server.register(name, self._handler(name))
        server.register_stream("logs", self.logs)

    def _handler(self, name: str) -> Any:
        async def handle(args: dict[str, Any]) -> Any:
            self.calls.append((name, args))
            if name == "units.list":
                return UNITS
            if name in ("units.enable", "units.disable"):
                if args["name"] == "nope":
                    raise ControlError("corral.services_include.nope: no unit file nope.yml in /x")
                return {"generation": 5, "changed": ["corral.services_include"]}
            unit = next((u for u in UNITS if u["name"] == args["name"]), None)
            if unit is None:
                raise ControlError(f"no such unit: {args['name']}")
            if name == "units.inspect":
                return {**unit, "after": ["net"], "source": "config", "image_id": "sha256:1",
                        "create": {"Image": unit["image"], "Cmd": ["ntpd", "-n"]}, "inspect": {"Id": "x"}}
            return {**unit, "state": "stopped" if name == "units.down" else "running"}

        return handle

    async def logs(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        self.calls.append(("logs", args))
        yield {"ts": "2024-05-01T12:00:00.000000Z", "level": "info", "logger": "units", "unit": "ntp",
               "event": "unit started", "restarts": 3}
        yield {"ts": "2024-05-01T12:00:00.100000Z", "level": "info", "logger": "corral", "unit": "ntp",
               "event": "synchronised", "stream": "stdout"}


@pytest.fixture
def sockdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="corral-svc-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def fake(sockdir: Path) -> AsyncIterator[tuple[Fake, Path]]:
    f = Fake()
    server = ControlServer(sockdir / "control.sock")
    f.register(server)
    with capture_logs():
        await server.start()
        yield f, server.socket_path
        await server.stop()


@pytest.fixture
def corral(capsys: pytest.CaptureFixture[str], fake: tuple[Fake, Path]) -> Any:
    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["--socket", str(fake[1]), *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def test_service_list_text_and_json(corral: Any, fake: tuple[Fake, Path]) -> None:
    code, out, _ = await corral("units", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SCOPE", "STATE", "RESTARTS", "UPTIME", "LAST", "EXIT", "WHY"]
    assert lines[1].split()[:5] == ["docker", "system", "running", "0", "1h"]
    assert lines[2].rstrip().endswith("restart in 0.4s")
    assert lines[3].rstrip().endswith("create web: No such image: web")
    code, out, _ = await corral("units", "list", "-o", "json")
    assert code == 0 and json.loads(out) == UNITS
    assert fake[0].calls == [("units.list", {}), ("units.list", {})]


@pytest.mark.parametrize("command", ["up", "down", "restart"])
async def test_up_down_restart_send_the_name(corral: Any, fake: tuple[Fake, Path], command: str) -> None:
    code, out, _ = await corral("units", command, "ntp")
    assert code == 0
    assert out.splitlines()[1].split()[:3] == ["ntp", "system", "stopped" if command == "down" else "running"]
    assert fake[0].calls == [(f"units.{command}", {"name": "ntp"})]
    code, out, _ = await corral("units", command, "ntp", "-o", "json")
    assert json.loads(out)["name"] == "ntp"


async def test_inspect_enable_disable_and_errors(corral: Any, fake: tuple[Fake, Path]) -> None:
    code, out, _ = await corral("units", "inspect", "ntp")
    assert code == 0 and "command:         ntpd -n" in out and "after:           net" in out
    code, out, _ = await corral("units", "inspect", "ntp", "-o", "json")
    assert json.loads(out)["create"]["Cmd"] == ["ntpd", "-n"]
    code, out, _ = await corral("units", "enable", "monitoring")
    assert code == 0 and out.strip() == ("enabled monitoring: config generation 5; changed: "
                                         "corral.services_include")
    code, out, _ = await corral("units", "disable", "docker", "-o", "json")
    assert json.loads(out) == {"generation": 5, "changed": ["corral.services_include"]}
    code, _, err = await corral("units", "down", "nope")
    assert code == 1 and err.strip() == "corral: no such unit: nope"
    code, _, err = await corral("units", "enable", "nope")
    assert code == 1 and "no unit file nope.yml" in err
    code, _, err = await corral("units", "up")
    assert code == 2  # NAME is required


async def test_service_logs_is_logs_of_the_unit(corral: Any, fake: tuple[Fake, Path]) -> None:
    code, out, _ = await corral("units", "logs", "ntp", "-n", "5")
    assert code == 0
    assert out.splitlines()[0].endswith("[ntp] unit started logger=units restarts=3")
    assert out.splitlines()[1].endswith("[ntp] synchronised logger=corral stream=stdout")
    assert fake[0].calls == [("logs", {"since": None, "until": None, "unit": ["ntp"], "limit": 5,
                                       "level": "info", "grep": None, "boot": None, "reverse": False,
                                       "follow": False})]
    # the options of `corral logs`, -u aside
    code, _, _ = await corral("units", "logs", "-p", "debug", "--since", "-5m", "-g", "sync", "-b", "ntp")
    assert code == 0
    args = fake[0].calls[-1][1]
    assert (args["unit"], args["level"], args["grep"], args["boot"]) == (["ntp"], "debug", "sync", 0)
    code, _, err = await corral("units", "logs", "-u", "x", "ntp")
    assert code == 2 and "unrecognized arguments: -u" in err


def test_a_unit_corral_could_not_start_shows_its_error_and_its_next_attempt() -> None:
    row = dict(UNITS[-1], error="start web: cannot connect to /run/system-docker.sock", next_start_in=2.0)
    assert render_list([row]).splitlines()[1].rstrip().endswith(
        "start web: cannot connect to /run/system-docker.sock; retry in 2.0s")


def test_render_list_of_nothing() -> None:
    assert render_list([]) == "no units"


async def test_service_is_the_units_command_under_rancheros_name(corral: Any) -> None:
    """`corral service ...` (RancherOS's `ros service`) is `corral units ...`, the same requests."""
    assert await corral("service", "list") == await corral("units", "list")
    assert await corral("service", "down", "ntp", "-o", "json") == await corral("units", "down", "ntp",
                                                                               "-o", "json")


def test_render_inspect_shows_the_units_notes() -> None:
    note = "no io.rancher.os.scope label: runs in the user dockerd, as RancherOS ran it"
    text = render_inspect({**UNITS[0], "name": "ecs", "scope": "user", "notes": [note]})
    assert f"note:            {note}" in text.splitlines()
