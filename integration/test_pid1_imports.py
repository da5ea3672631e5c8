"""What a live PID 1 has imported (issue 17, item 1: memory): with the system dockerd and every handler
up, pyroute2's, structlog's and unittest's unused parts are not loaded (supervisor/lean.py), and once it
is ready its boot heap is frozen out of later collections (ConfigWorker.freeze). ``debug.modules`` lists
sys.modules and the frozen count; tests/test_lean.py holds the list and checks the same in a plain
process."""

from __future__ import annotations

import time
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
        reply = sb.request("debug.modules")
        for _ in range(300):  # frozen by the config worker just after ready
            if reply["frozen"]:
                break
            time.sleep(0.1)
            reply = sb.request("debug.modules")
        modules = set(reply["modules"])
        assert sb.stop() == 0
    assert reply["frozen"] > 20_000  # its modules, handlers, config (~60,000): out of later collections
    # every handler live: the system dockerd's API, netlink (the bridge, the loopback), udev, the journal
    assert {"aiodocker", "pyroute2.iproute.linux", "pyudev", "structlog", "jsonschema"} <= modules
    assert sorted(modules & set(ON_DEMAND)) == []
