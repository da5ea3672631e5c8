"""The units' container inits watched through pidfds, against the real system dockerd in the sandbox: a
SIGKILLed init is seen gone before dockerd's `die` event, the unit is restarted once (the `die` that
follows is coalesced), and the new init is watched again; a oneshot's is not watched."""

from __future__ import annotations

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
    kill_unit,
    records,
    started_at,
    system_docker_on,
    ts,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def units_status(sb: Sandbox) -> dict[str, Any]:
    return dict(sb.request("status")["units"])


def die_times(sb: Sandbox, cid: str, since: float) -> list[float]:
    """dockerd's `die` events of the container since ``since`` (unix seconds), by their own time."""
    out = sb.cli("system-docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                 "--filter", f"container={cid}", "--filter", "event=die", "--format", "{{.TimeNano}}").stdout
    return [int(line) / 1e9 for line in out.split()]


def test_an_init_killed_is_seen_gone_before_dockerds_die_and_restarted_once(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({"web": unit(restart="always"),
                                  "setup": unit(["sleep", "600"], labels={"io.corral.oneshot": "true"})}),
                          setup=with_busybox)
    sb.wait_ready(90)
    wait_state(sb, "web", "running")
    wait_state(sb, "setup", "running")
    wait_for("the init watched", lambda: units_status(sb)["inits_watched"] == 1)  # web's; not the oneshot's
    cid = inspect(sb, "web")["Id"]
    first = started_at(sb, "web")
    for round_ in (1, 2):  # the second kill proves the new init is watched again
        wait_for("the new init watched", lambda: units_status(sb)["inits_watched"] == 1)
        killed = kill_unit(sb, "web")
        wait_for("web restarted", lambda before=first: started_at(sb, "web") > before, 15)
        first = started_at(sb, "web")
        wait_for("dockerd's die", lambda since=killed - 0.5: die_times(sb, cid, since), 10)
        time.sleep(1.0)  # the die has reached PID 1 too: it must change nothing
        gone = records(sb, "container init gone", "web")
        assert len(gone) == round_
        died = die_times(sb, cid, killed - 0.5)
        assert len(died) == 1
        assert killed <= ts(gone[-1]) < died[0], (killed, ts(gone[-1]), died)
        exits = records(sb, "unit exited; restarting", "web")
        assert [(e["via"].split("+")[0], e["exit_code"]) for e in exits] == [("pidfd", 137)] * round_
        assert len(records(sb, "unit started", "web")) == 1 + round_
        status = units(sb)["web"]
        assert (status["state"], status["restarts"], status["last_exit"]) == ("running", round_, 137)
        assert inspect(sb, "web")["State"]["Running"]
        assert units_status(sb)["inits_gone"] == round_
        assert sb.cli("system-docker", "inspect", "-f", "{{.RestartCount}}", "web").stdout.strip() == "0"
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
