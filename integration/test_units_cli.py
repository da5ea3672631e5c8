"""`corral units ...` round trips against a real PID 1 and its system dockerd."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    config,
    inspect,
    started_at,
    system_docker_on,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)

pytestmark = pytest.mark.docker

EXTRA = """\
extra:
  image: corral/busybox:latest
  command: ["sh", "-c", "echo extra here; trap 'exit 0' TERM; sleep 600 & wait"]
  net: none
  restart: always
"""


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def setup(directory: Path) -> None:
    with_busybox(directory)
    units_dir = directory / "var/lib/corral/units"
    units_dir.mkdir(parents=True, exist_ok=True)
    (units_dir / "extra.yml").write_text(EXTRA)


def test_service_commands_round_trip(sandbox: Any) -> None:
    cfg = config({"web": unit(restart="unless-stopped"), "job": unit(restart="always")})
    sb: Sandbox = sandbox(cfg, setup=setup)
    sb.wait_ready(90)
    wait_state(sb, "web", "running")
    wait_state(sb, "job", "running")

    listing = sb.cli("units", "list").stdout.splitlines()
    assert listing[0].split() == ["NAME", "SCOPE", "STATE", "RESTARTS", "UPTIME", "LAST", "EXIT", "WHY"]
    assert [line.split()[:4] for line in listing[1:]] == [["job", "system", "running", "0"],
                                                          ["web", "system", "running", "0"]]
    as_json = json.loads(sb.cli("units", "list", "-o", "json").stdout)
    assert [u["name"] for u in as_json] == ["job", "web"] and as_json[1]["restart"] == "unless-stopped"

    # down: stopped, and the policy does not bring it back.
    down = json.loads(sb.cli("units", "down", "web", "-o", "json").stdout)
    assert down["state"] == "stopped"
    assert not inspect(sb, "web")["State"]["Running"]
    time.sleep(1.0)
    assert units(sb)["web"]["state"] == "stopped" and not inspect(sb, "web")["State"]["Running"]
    stops = json.loads((sb.paths.state_dir / "units-stopped.json").read_text())
    assert stops["stopped"] == ["web"]

    # restart: a new run.
    before = started_at(sb, "job")
    restarted = sb.cli("units", "restart", "job").stdout
    assert "job" in restarted and "running" in restarted
    assert started_at(sb, "job") > before

    # inspect: status, the create request, dockerd's view.
    detail = json.loads(sb.cli("units", "inspect", "job", "-o", "json").stdout)
    assert detail["name"] == "job" and detail["create"]["Image"] == "corral/busybox:latest"
    assert detail["create"]["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert detail["inspect"]["Name"] == "/job" and detail["image_id"].startswith("sha256:")
    text = sb.cli("units", "inspect", "job").stdout
    assert "image:" in text and "command:" in text

    # enable / disable a unit file.
    enabled = sb.cli("units", "enable", "extra").stdout
    assert "corral.services_include" in enabled
    wait_state(sb, "extra", "running")
    logs = sb.cli("units", "logs", "extra").stdout
    assert "[extra] extra here" in logs and "[extra] unit started" in logs
    sb.cli("units", "disable", "extra")
    wait_for("extra removed", lambda: "extra" not in units(sb))
    assert sb.cli("system-docker", "ps", "-a", "--format", "{{.Names}}").stdout.split().count("extra") == 0

    # errors: one line, exit 1
    nope = sb.cli("units", "down", "nope", check=False)
    assert nope.returncode == 1 and nope.stderr.strip() == "corral: no such unit: nope"
    missing = sb.cli("units", "enable", "nope", check=False)
    assert missing.returncode == 1 and "no unit file nope.yml" in missing.stderr
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)

    # A reboot: the unless-stopped unit stays stopped; the other comes back.
    again = Sandbox(sb.dir, cfg)
    try:
        again.wait_ready(90)
        wait_state(again, "job", "running")
        assert units(again)["web"]["state"] == "stopped"
        up = json.loads(again.cli("units", "up", "web", "-o", "json").stdout)
        assert up["state"] == "running"
        assert json.loads((again.paths.state_dir / "units-stopped.json").read_text())["stopped"] == []
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            os.kill(again.pid1, signal.SIGKILL)
            again.proc.wait(10)
