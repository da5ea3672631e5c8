"""What a live PID 1 has imported (issue 17, item 1: memory): with the system dockerd and every handler
up, pyroute2's and structlog's unused parts are not loaded (supervisor/lean.py). ``debug.modules`` lists
sys.modules; tests/test_lean.py holds the list and checks the same in a plain process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import system_docker_on
from tests.test_lean import ON_DEMAND


def test_a_live_pid1_loads_only_what_it_uses(sandbox: Any, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    with system_docker_on(monkeypatch, tmp_path):
        sb: Sandbox = sandbox({"corral": {"debug": True}})
        status = sb.wait_ready(90)
        assert status["system_docker"]["state"] == "up", status["system_docker"]
        modules = set(sb.request("debug.modules")["modules"])
        assert sb.stop() == 0
    # every handler live: the system dockerd's API, netlink (the bridge, the loopback), udev, the journal
    assert {"aiodocker", "pyroute2.iproute.linux", "pyudev", "structlog", "jsonschema"} <= modules
    assert sorted(modules & set(ON_DEMAND)) == []
