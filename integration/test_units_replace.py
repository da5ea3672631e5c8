"""A replace-mode unit (`io.corral.restart-mode: replace`) against the real system dockerd in the sandbox:
its spare is made while it runs; a SIGKILLed init is replaced by the spare (one start, of the spare; the
old container gone; the name handed over; the next spare made); across a dockerd restart the spare made
before it is the one used; stopped by the user or removed from the config, it leaves no spare behind. A
plain unit beside it is restarted in place, with no spare."""

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
    dockerd_host_pid,
    inspect,
    kill_unit,
    records,
    system_docker_on,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)

pytestmark = pytest.mark.docker

REPLACE = {"io.corral.restart-mode": "replace"}


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def containers(sb: Sandbox, name: str) -> list[dict[str, Any]]:
    """The unit's containers (spares too): id, name, state, whether a spare (labelled, never started)."""
    out = sb.cli("system-docker", "ps", "-a", "--no-trunc", "--filter", f"label=io.corral.unit={name}",
                 "--format", "{{json .}}").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [{"id": r["ID"], "name": r["Names"], "state": r["State"],
             "spare": "io.corral.spare=true" in r["Labels"] and r["State"] == "created"} for r in rows]


def spare_of(sb: Sandbox, name: str) -> str:
    """The unit's one spare (waited for)."""
    found = wait_for(f"{name}'s spare", lambda: [c for c in containers(sb, name) if c["spare"]])
    assert len(found) == 1, found
    return str(found[0]["id"])


def starts(sb: Sandbox, name: str, since: float) -> list[str]:
    """The containers of the unit dockerd started since ``since`` (its `start` events)."""
    out = sb.cli("system-docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                 "--filter", f"label=io.corral.unit={name}", "--filter", "event=start",
                 "--format", "{{.ID}}").stdout
    return out.split()


def replaced(sb: Sandbox, old: str, spare: str, killed: float) -> None:
    """The spare runs under the unit's name, the old container is gone, one start (the spare's)."""
    wait_for("the spare running as web", lambda: inspect(sb, "web")["Id"] == spare
             and inspect(sb, "web")["State"]["Running"], 20)
    wait_for("the old container removed", lambda: all(c["id"] != old for c in containers(sb, "web")))
    time.sleep(1.0)  # dockerd's die has reached PID 1 too: it must start nothing more
    # from the kill on (the host's clock is dockerd's): the old container's own start may lie just before
    assert starts(sb, "web", killed) == [spare]


def test_a_replace_units_dead_container_is_replaced_by_its_spare(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({"plain": unit(restart="always")}, debug=True), setup=with_busybox)
    sb.wait_ready(90)
    sb.cli("config", "set", "corral.services.web", json.dumps(unit(restart="always", labels=REPLACE)))
    wait_state(sb, "web", "running")
    wait_state(sb, "plain", "running")
    old = inspect(sb, "web")["Id"]
    spare = spare_of(sb, "web")
    assert [c["spare"] for c in containers(sb, "plain")] == [False]
    wait_for("the inits watched", lambda: sb.request("status")["units"]["inits_watched"] == 2)

    killed = kill_unit(sb, "web")
    replaced(sb, old, spare, killed)
    status = wait_state(sb, "web", "running")
    assert (status["restarts"], status["last_exit"]) == (1, 137)
    assert [e["via"] for e in records(sb, "unit exited; restarting", "web")] == ["pidfd"]
    assert [e["exit_code"] for e in records(sb, "unit replaced", "web")] == [137]
    next_spare = spare_of(sb, "web")
    assert next_spare not in (old, spare)

    # The plain unit: restarted in place (the same container), no spare.
    plain = inspect(sb, "plain")["Id"]
    killed = kill_unit(sb, "plain")
    wait_for("plain restarted", lambda: units(sb)["plain"]["restarts"] == 1
             and inspect(sb, "plain")["State"]["Running"], 20)
    assert inspect(sb, "plain")["Id"] == plain
    assert [c["id"] for c in containers(sb, "plain")] == [plain]

    # dockerd restarts (the units live on): the listing after it shows the spare, which is the one used.
    os.kill(dockerd_host_pid(sb), signal.SIGKILL)
    wait_for("dockerd restarted", lambda: sb.request("status")["system_docker"]["starts"] == 2
             and sb.request("status")["system_docker"]["state"] == "up", 60)
    assert spare_of(sb, "web") == next_spare
    current = inspect(sb, "web")["Id"]
    wait_for("web's init watched", lambda: sb.request("status")["units"]["inits_watched"] == 2)
    killed = kill_unit(sb, "web")
    replaced(sb, current, next_spare, killed)
    spare_of(sb, "web")

    # Stopped by the user: stopped, no spare; up again: a spare again.
    sb.request("units.down", name="web")
    wait_for("no spare once stopped", lambda: [c["spare"] for c in containers(sb, "web")] == [False])
    sb.request("units.up", name="web")
    wait_state(sb, "web", "running")
    spare_of(sb, "web")
    # Removed from the config: nothing of it is left.
    sb.cli("config", "unset", "corral.services.web")
    wait_for("web and its spare removed", lambda: containers(sb, "web") == [], 30)
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
