"""Every `corral` command against a real supervisor (PID 1 in a sandbox), through the real socket."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from typing import Any

import yaml

from integration.sandbox import CORRAL, Sandbox

SECRET = "hunter2-never-logged"


class Follow:
    """A following CLI (`logs -f`, `events -f`) whose lines a thread collects."""

    def __init__(self, sb: Sandbox, *argv: str) -> None:
        env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))
        self.proc = subprocess.Popen([CORRAL, *argv], env=env, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def until(self, fragment: str, timeout: float = 15) -> None:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if fragment in line:
                return
        raise AssertionError(f"{fragment!r} not seen; got:\n{''.join(seen[-20:])}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_cli_round_trips_against_real_pid1(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "cli-test"})
    sb.wait_ready()

    status = json.loads(sb.cli("status", "-o", "json").stdout)
    assert status["pid"] == 1 and status["state"] == "ready" and status["hostname"] == "cli-test"
    text = sb.cli("status").stdout
    assert "ready" in text and "cli-test" in text

    # config get / set / export / merge / validate / schema
    assert sb.cli("config", "get", "hostname").stdout.strip() == "cli-test"
    logs_f = Follow(sb, "logs", "-f", "-o", "json")
    events_f = Follow(sb, "events", "-f", "-o", "json")
    try:
        time.sleep(0.5)
        applied = sb.cli("config", "set", "hostname", "renamed", "-o", "json").stdout
        assert "hostname" in json.loads(applied)["changed"]
        # the hostname reconciler: the kernel's name (the sandbox's UTS namespace) and every file naming it
        sb.wait_journal(lambda r: r.get("event") == "hostname files written"
                        and r.get("hostname") == "renamed")
        assert sb.request("status")["hostname"] == "renamed"
        assert sb.nsenter(["hostname"]).stdout.strip() == "renamed"
        for hosts in ("etc/hosts", "var/lib/corral/console/hosts"):
            assert "\n127.0.1.1\trenamed\n" in (sb.dir / hosts).read_text(), hosts
        for name in ("etc/hostname", "var/lib/corral/console/hostname"):
            assert (sb.dir / name).read_text() == "renamed\n", name
        # logs -f follows: the reload's line arrives live; events -f shows the bus event.
        logs_f.until("config changed")
        events_f.until("config.changed")
    finally:
        logs_f.stop()
        events_f.stop()
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
    sb.cli("poweroff")
    assert sb.wait_exit(60) == 0

    # The secret never reached the journal, on disk or on the console.
    journal_text = "".join(p.read_text() for p in sb.paths.log_dir.glob("current.jsonl*"))
    assert SECRET not in journal_text and SECRET not in sb.console_text()
    sb.assert_clean_journal()


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
