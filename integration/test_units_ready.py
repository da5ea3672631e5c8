"""``corral <version> ready`` reaches the journal only once every unit is up, through the real PID 1 in the
sandbox with its system dockerd: not while a unit crash-loops (the status says "ready" at once all the
same), and as soon as that unit has come up; never when a shutdown comes first."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    config,
    records,
    system_docker_on,
    ts,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)

pytestmark = pytest.mark.docker

# Under the sandbox's directory: the unit's /var/lib/... bind source is moved there.
FLAG_DIR = "var/lib/ready-test"
# Fails at once until the test creates the flag file, then runs.
FLAKY = ["sh", "-c", "test -f /flag/ok || exit 1; trap 'exit 0' TERM; sleep 600 & wait"]
READY = re.compile(r"corral \S+ ready")


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def with_flag_dir(directory: Path) -> None:
    with_busybox(directory)
    (directory / FLAG_DIR).mkdir(parents=True)


def is_ready(record: dict[str, Any]) -> bool:
    return bool(READY.fullmatch(str(record.get("event"))))


def ready_lines(sb: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sb.journal() if is_ready(r)]


def test_ready_is_logged_once_every_unit_is_up(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({
        "steady": unit(restart="always"),
        "flaky": unit(FLAKY, restart="always", volumes=[f"/{FLAG_DIR}:/flag"]),
    }), setup=with_flag_dir)
    status = sb.wait_ready(90)  # the boot phases are done: the status says so, crash loop or not
    assert status["state"] == "ready" and "units" not in status["degraded"], status
    wait_state(sb, "flaky", "crash-looping", timeout=60)
    wait_for("steady up for 2 s", lambda: (units(sb)["steady"]["uptime"] or 0) >= 2, 30)
    assert not ready_lines(sb), "ready while a unit crash-loops"
    # The unit can run now: it comes up at its next retry, and is "running" (not "crash-looping") once it
    # has run for 10 s. Then, and only then, "ready".
    flag_set = time.time()
    (sb.dir / FLAG_DIR / "ok").touch()
    ready = sb.wait_journal(is_ready, timeout=90)
    flaky = units(sb)["flaky"]
    assert flaky["state"] == "running" and flaky["uptime"] >= 1, flaky
    assert ts(ready) > flag_set
    last_start = records(sb, "unit started", "flaky")[-1]
    assert ts(last_start) >= flag_set and ts(ready) > ts(last_start)
    assert ready["boot_seconds"] > 0
    assert sb.stop() == 0
    assert len(ready_lines(sb)) == 1
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_a_shutdown_before_every_unit_is_up_ends_the_wait_quietly(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({"never": unit(["sh", "-c", "exit 1"], restart="always")}),
                          setup=with_busybox)
    sb.wait_ready(90)
    wait_state(sb, "never", "restarting", "crash-looping", timeout=30)
    assert sb.stop() == 0
    assert not ready_lines(sb)
    assert records(sb, "shutdown complete")
    sb.assert_clean_journal(EXPECTED_ERRORS)  # no "task failed"
