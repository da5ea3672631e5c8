"""The units reconciler against the real system dockerd, in the sandbox: restarts under each policy and
their backoff, a late image, dockerd killed and frozen under running units, ordering, changes applied
by `corral reload`, unit output in the journal."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from image import busybox
from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    config,
    container_host_pids,
    docker_time,
    dockerd_host_pid,
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


def boot(sandbox: Any, cfg: dict[str, Any], preload: bool = True) -> Sandbox:
    sb: Sandbox = sandbox(cfg, setup=with_busybox if preload else None)
    status = sb.wait_ready(90)
    assert "units" not in status["degraded"], status["degraded"]
    return sb


def test_restarts_follow_each_policy_with_the_backoff(sandbox: Any) -> None:
    sb = boot(sandbox, config({
        "always": unit(restart="always"),
        "done": unit(["sh", "-c", "sleep 0.3; exit 0"], restart="on-failure"),
        "three": unit(["sh", "-c", "sleep 0.2; exit 7"], restart="on-failure:3"),
        "crash": unit(["sh", "-c", "exit 1"], restart="always"),
    }))
    wait_state(sb, "always", "running")
    first_start = started_at(sb, "always")
    # SIGKILLed: running again, one restart counted.
    killed = kill_unit(sb, "always")
    back = wait_for("always restarted", lambda: (s := started_at(sb, "always")) > first_start and s, 15)
    assert inspect(sb, "always")["State"]["Running"]
    status = wait_state(sb, "always", "running")
    assert status["restarts"] == 1 and status["last_exit"] == 137
    print(f"SIGKILL -> running again after {1e3 * (back - killed):.0f} ms")
    # Exit 0 under on-failure: stays down.
    done = wait_state(sb, "done", "exited")
    assert done["restarts"] == 0 and done["last_exit"] == 0
    # on-failure:3: three restarts, then it gives up.
    three = wait_state(sb, "three", "failed", timeout=20)
    assert three["restarts"] == 3 and three["last_exit"] == 7
    assert len(records(sb, "unit started", "three")) == 4
    assert len(records(sb, "unit failed; not restarting", "three")) == 1
    # An always-crashing unit: restarts immediately, then after 0.1, 0.2, 0.4, 0.8, 1.6 s; crash-looping
    # after more than 5 restarts in 10 s. The journal shows each exit's delay, and each start comes no
    # sooner than that delay after the exit it follows, and before the next exit (the start that exit
    # scheduled; no bound on how late it may come: a loaded machine is slow, and tests never time).
    wait_for("six crash restarts", lambda: len(records(sb, "unit started", "crash")) >= 7, 30)
    crash = units(sb)["crash"]
    assert crash["state"] == "crash-looping", crash
    exits = records(sb, "unit exited; restarting", "crash")[:6]
    starts = records(sb, "unit started", "crash")
    assert [e["restart_in"] for e in exits] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.6]
    assert [e["restarts"] for e in exits] == [1, 2, 3, 4, 5, 6]
    for i, exited in enumerate(exits):
        next_start = starts[i + 1]
        gap = ts(next_start) - ts(exited)
        assert gap >= exited["restart_in"] - 0.005, (i, gap, exited)
        if i + 1 < len(exits):
            assert ts(next_start) <= ts(exits[i + 1]), (i, next_start, exits[i + 1])
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_a_unit_whose_image_is_missing_comes_up_once_the_image_is_loaded(sandbox: Any) -> None:
    sb = boot(sandbox, config({"late": unit(restart="no")}), preload=False)
    # Wait until the next retry is seconds away (the backoff has grown), then load the image.
    late = wait_for("a distant retry", lambda: (u := units(sb)["late"])["next_start_in"] is not None
                    and u["next_start_in"] >= 3 and u, 30)
    assert late["state"] in ("restarting", "crash-looping") and "image" in late["error"].lower()
    assert late["failures"] >= 5
    tries = len(records(sb, "unit could not start; retrying", "late"))
    assert tries == late["failures"]  # one try per scheduled retry, no more
    loaded = time.monotonic()
    sb.cli("system-docker", "load", "-i", str(busybox.ensure()))
    up = wait_for("late up", lambda: (u := units(sb)["late"])["uptime"] is not None and u, 15)
    assert up["state"] == "crash-looping"  # until it has run for 10 s
    took = time.monotonic() - loaded
    print(f"image loaded -> unit running after {took:.2f} s (retry was due in {late['next_start_in']} s)")
    # The image event brought the retry forward: up before the retry was due (the backoff grows to 30 s).
    assert took < late["next_start_in"]
    assert len(records(sb, "image is here; starting the unit", "late")) == 1
    assert up["error"] is None
    assert took < 5  # the image event brings the retry forward; the backoff alone could be 30 s
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_dockerd_killed_or_frozen_under_running_units(sandbox: Any) -> None:
    sb = boot(sandbox, config({"one": unit(restart="always"), "two": unit(restart="unless-stopped"),
                               "victim": unit(restart="always")}))
    for name in ("one", "two", "victim"):
        wait_state(sb, name, "running")
    ids = {name: inspect(sb, name)["Id"] for name in ("one", "two", "victim")}
    # SIGKILL: restarted; the units lived on (--live-restore) and their restart counts are unchanged.
    os.kill(dockerd_host_pid(sb), signal.SIGKILL)
    wait_for("dockerd restarted", lambda: sb.request("status")["system_docker"]["starts"] == 2
             and sb.request("status")["system_docker"]["state"] == "up")
    for name in ("one", "two", "victim"):
        status = wait_state(sb, name, "running")
        assert status["restarts"] == 0, status
        assert inspect(sb, name)["Id"] == ids[name]
    # SIGSTOP: the watchdog notices and kills it; a unit that died meanwhile is running again.
    pid = dockerd_host_pid(sb)
    victim_pids = container_host_pids(sb, ids["victim"])
    os.kill(pid, signal.SIGSTOP)
    os.kill(min(victim_pids), signal.SIGKILL)  # its init: it dies while dockerd hears nothing
    wait_for("watchdog restarted dockerd", lambda: sb.request("status")["system_docker"]["starts"] == 3
             and sb.request("status")["system_docker"]["state"] == "up", 30)
    # Eventually, not fast: a reconcile that was waiting on the frozen daemon when it was killed fails and
    # is retried with the handlers' backoff (seen once past 20 s in a loaded CI-style run).
    victim = wait_for("victim back", lambda: (u := units(sb)["victim"])["restarts"] == 1
                      and u["state"] == "running" and u, 60)
    assert victim["last_exit"] == 137
    assert inspect(sb, "victim")["State"]["Running"]
    for name in ("one", "two"):
        status = units(sb)[name]
        assert status["state"] == "running" and status["restarts"] == 0, status
    # At least the one kill of the frozen dockerd; under load the restarted one may also miss two pings in
    # a row while it starts (seen once in a CI-style run) and be killed again: a timing, not the behaviour.
    assert sb.request("status")["system_docker"]["watchdog_kills"] >= 1
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_ordering_oneshots_createonly_parallel_and_reverse_stop(sandbox: Any) -> None:
    sb = boot(sandbox, config({
        "data": unit(labels={"io.corral.createonly": "true"}, volumes=["/data"]),
        "fill": unit(["sh", "-c", "sleep 0.5; echo filled > /data/mark"], volumes_from=["data"],
                     labels={"io.corral.oneshot": "true"}),
        "bad": unit(["sh", "-c", "sleep 0.5; exit 4"], labels={"io.corral.oneshot": "true"}),
        "early": unit(["sh", "-c", "sleep 0.5"], labels={"io.corral.oneshot": "true",
                                                          "io.corral.before": "app"}),
        "app": unit(["sh", "-c", "cat /data/mark; trap 'exit 0' TERM; sleep 600 & wait"],
                    volumes_from=["data"], restart="always",
                    labels={"io.corral.after": "fill, bad"}),
        "tail": unit(labels={"io.corral.after": "app"}),
    }))
    wait_state(sb, "tail", "running", timeout=30)
    state = {name: inspect(sb, name)["State"] for name in ("fill", "bad", "early", "app", "tail")}
    started = {n: docker_time(s["StartedAt"]) for n, s in state.items()}
    finished = {n: docker_time(s["FinishedAt"]) for n, s in state.items() if not s["Running"]}
    # The oneshots ran side by side (independent units start in parallel) ...
    for one, other in (("fill", "bad"), ("fill", "early"), ("bad", "early")):
        assert started[one] < finished[other] and started[other] < finished[one], (one, other)
    # ... and app started only after all three had exited (after: fill, bad; early: before app).
    assert started["app"] >= max(finished["fill"], finished["bad"], finished["early"])
    assert started["tail"] >= started["app"]
    status = units(sb)
    assert status["data"]["state"] == "created"
    assert inspect(sb, "data")["State"]["StartedAt"].startswith("0001-")  # never started
    assert status["bad"]["state"] == "failed" and status["bad"]["last_exit"] == 4  # failed; app still ran
    assert status["fill"]["state"] == "exited"
    assert records(sb, "oneshot failed", "bad")
    wait_for("app output", lambda: [r for r in sb.journal() if r.get("unit") == "app"
                                    and r.get("event") == "filled" and r.get("stream") == "stdout"])
    # A cycle is rejected with the names of its units, whole: nothing changes.
    merge = sb.cli("config", "set", "corral.services.app.labels", '{"io.corral.after": "tail"}', check=False)
    assert merge.returncode == 1
    assert "cycle" in merge.stderr and "app" in merge.stderr and "tail" in merge.stderr
    assert units(sb)["app"]["state"] == "running" and units(sb)["app"]["restarts"] == 0
    # Shutdown stops units in reverse order: tail, then app, then what app came after.
    assert sb.stop() == 0
    waves = [r["units"] for r in records(sb, "stopping units")]
    flat = [name for wave in waves for name in wave]
    assert flat.index("tail") < flat.index("app")
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_reload_recreates_only_the_changed_unit(sandbox: Any) -> None:
    services = {"keep": unit(restart="always"), "change": unit(restart="always")}
    sb = boot(sandbox, config(services))
    for name in services:
        wait_state(sb, name, "running")
    before = {name: inspect(sb, name) for name in services}
    cloud_config = sb.paths.config_dir / "cloud-config.yml"
    text = yaml.safe_load(cloud_config.read_text())
    text["corral"]["services"]["change"]["environment"] = ["COLOUR=blue"]
    cloud_config.write_text("#cloud-config\n" + yaml.safe_dump(text))
    reload = sb.cli("reload")
    assert "corral.services" in reload.stdout
    wait_for("change recreated", lambda: inspect(sb, "change")["Id"] != before["change"]["Id"]
             and inspect(sb, "change")["State"]["Running"])
    time.sleep(0.5)
    after = {name: inspect(sb, name) for name in services}
    assert "COLOUR=blue" in after["change"]["Config"]["Env"]
    assert after["keep"]["Id"] == before["keep"]["Id"]
    assert after["keep"]["State"]["StartedAt"] == before["keep"]["State"]["StartedAt"]
    status = units(sb)
    assert status["keep"]["restarts"] == 0 and status["change"]["restarts"] == 0
    assert len(records(sb, "recreating unit", "change")) == 1
    assert not records(sb, "recreating unit", "keep")
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_unit_output_reaches_the_journal_with_the_supervisors_lines(sandbox: Any) -> None:
    sb = boot(sandbox, config({"talk": unit(["sh", "-c", "echo out-$$; echo err >&2; sleep 0.3; exit 1"],
                                            restart="on-failure:2")}))
    wait_state(sb, "talk", "failed", timeout=20)
    logs = sb.cli("logs", "-u", "talk", "-o", "json").stdout
    lines = [yaml.safe_load(line) for line in logs.splitlines()]
    assert all(r["unit"] == "talk" for r in lines)
    out = [r for r in lines if r.get("stream") == "stdout"]
    err = [r for r in lines if r.get("stream") == "stderr"]
    assert len(out) == 3 and len(err) == 3, lines  # one line per run, each once
    events = [r["event"] for r in lines if r.get("logger") == "units"]
    assert events.count("unit started") == 3 and "unit failed; not restarting" in events
    text = sb.cli("units", "logs", "talk").stdout
    assert "[talk] unit started" in text and "[talk] err" in text
    assert sb.stop() == 0
