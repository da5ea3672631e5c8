"""Every `corral` command against a real supervisor (PID 1 in a sandbox), through the real socket."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any

import yaml

from integration.sandbox import Follow, Sandbox

SECRET = "hunter2-never-logged"


def test_cli_round_trips_against_real_pid1(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "cli-test"})
    sb.wait_ready()

    status = json.loads(sb.cli("status", "-o", "json").stdout)
    assert status["pid"] == 1 and status["state"] == "ready" and status["hostname"] == "cli-test"
    text = sb.cli("status").stdout
    assert "ready" in text and "cli-test" in text

    # config get / set / export / merge / validate / schema
    assert sb.cli("config", "get", "hostname").stdout.strip() == "cli-test"
    with (Follow(sb, "logs", "-f", "-o", "json") as logs_f,
          Follow(sb, "events", "-f", "-o", "json") as events_f):
        time.sleep(0.5)
        applied = sb.cli("config", "set", "hostname", "renamed", "-o", "json").stdout
        assert "hostname" in json.loads(applied)["changed"]
        assert sb.request("status")["hostname"] == "renamed"
        # logs -f follows: the reload's line arrives live; events -f shows the bus event.
        logs_f.until("config changed")
        events_f.until("config.changed")
        assert (logs_f.stop(), events_f.stop()) == (130, 130)
    persisted = yaml.safe_load((sb.paths.config_dir / "cloud-config.yml").read_text())
    assert persisted == {"hostname": "renamed"}  # only the difference from the defaults

    sb.cli("config", "set", "corral.password", SECRET)
    private = sb.paths.config_dir / "private.yml"
    assert private.stat().st_mode & 0o777 == 0o600 and SECRET in private.read_text()
    assert SECRET not in (sb.paths.config_dir / "cloud-config.yml").read_text()
    exported = sb.cli("config", "export").stdout
    assert SECRET not in exported and "renamed" in exported
    assert SECRET in sb.cli("config", "export", "--secrets").stdout

    merge_file = sb.dir.parent / "merge.yml"
    merge_file.write_text("corral:\n  log:\n    level: debug\n")
    sb.cli("config", "merge", str(merge_file))
    assert sb.cli("config", "get", "corral.log.level").stdout.strip() == "debug"

    bad = sb.dir.parent / "bad.yml"
    bad.write_text("hostname: [1, 2]\n")
    result = sb.cli("config", "validate", str(bad), check=False)
    assert result.returncode == 1 and "bad.yml" in result.stdout + result.stderr
    assert "hostname" in result.stdout + result.stderr
    good = sb.dir.parent / "good.yml"
    good.write_text("#cloud-config\nhostname: fine\n")
    assert sb.cli("config", "validate", str(good)).returncode == 0
    schema = json.loads(sb.cli("config", "schema").stdout)
    assert "properties" in schema and "corral" in schema["properties"]

    # reload, logs, then poweroff
    reloaded = sb.cli("reload", "-o", "json").stdout
    assert "generation" in json.loads(reloaded)
    logs = sb.cli("logs", "-n", "500", "-o", "json").stdout
    assert "config changed" in logs
    assert sb.cli("logs", "--level", "error").returncode == 0
    assert sb.cli("logs", "-p", "error", "--since", "-5m").returncode == 0
    sb.cli("poweroff")
    assert sb.wait_exit(60) == 0

    # The secret never reached the journal, on disk or on the console.
    journal_text = "".join(p.read_text() for p in sb.paths.log_dir.glob("current.jsonl*"))
    assert SECRET not in journal_text and SECRET not in sb.console_text()
    sb.assert_clean_journal()


def test_ctrl_c_ends_logs_follow_at_once(sandbox: Any) -> None:
    """`corral logs -f` was still running 10 s after SIGINT under load (a SIGINT that came just before
    its recv did not interrupt it: tests/test_control_client.py). Ctrl-C, while the follower waits for a
    record that does not come and while it prints under load, ends it with 130 before the grace runs
    out."""
    sb: Sandbox = sandbox()
    sb.wait_ready()
    for _ in range(3):  # waiting: nothing matches, the journal stays quiet for it
        with Follow(sb, "logs", "-f", "-g", "no record says this") as waiting:
            time.sleep(0.3)
            assert waiting.stop() == 130
            assert waiting.seen == []

    busy = threading.Event()
    stop = threading.Event()

    def keep_logging() -> None:  # two records (config changed, hostname set) per round
        n = 0
        while not stop.is_set():
            sb.request("config.set", key="hostname", value=f"busy-{n % 2}")
            n += 1
            busy.set()

    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    logger = threading.Thread(target=keep_logging)
    logger.start()
    try:
        assert busy.wait(20)
        for backlog in ("1", "10", "200", "200", "1000"):
            with Follow(sb, "logs", "-f", "-n", backlog, "-o", "json") as printing:
                printing.until("hostname set")  # printing live records as they come
                assert printing.stop() == 130
    finally:
        stop.set()
        logger.join(30)
        for burner in burners:
            burner.kill()
            burner.wait(10)
    assert sb.stop() == 0


def test_cli_reboot(sandbox: Any) -> None:
    sb: Sandbox = sandbox()
    sb.wait_ready()
    assert sb.cli("reboot").returncode == 0
    assert sb.wait_exit(60) == 0
    assert any(r.get("event") == "shutting down" and r.get("action") == "reboot" for r in sb.journal())


def test_cli_invalid_set_is_refused_and_changes_nothing(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "keep"})
    sb.wait_ready()
    before = (sb.paths.config_dir / "cloud-config.yml").read_text()
    result = sb.cli("config", "set", "corral.log.level", "loud", check=False)
    assert result.returncode == 1
    assert "corral.log.level" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (sb.paths.config_dir / "cloud-config.yml").read_text() == before
    assert sb.request("status")["state"] == "ready"
    assert sb.stop() == 0


def test_logs_refuses_what_does_not_combine_with_follow(sandbox: Any) -> None:
    sb: Sandbox = sandbox()
    sb.wait_ready()
    for argv in (["-f", "-r"], ["-f", "--until", "-5m"], ["-f", "-b", "-1"]):
        result = sb.cli("logs", *argv, check=False)
        assert result.returncode == 2 and "cannot be combined with -f/--follow" in result.stderr
    result = sb.cli("logs", "-b", "-1", check=False)  # the first boot of this journal
    assert result.returncode == 1
    assert result.stderr.startswith("corral: the journal has no boot -1 (it holds records of 1 boot)")
    assert sb.stop() == 0
