"""The supervisor as a real PID 1 in its own PID namespace (via `corral sandbox`)."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.sandbox import Sandbox

DEBUG = {"corral": {"debug": True, "handlers": {"backoff_initial": 0.001, "backoff_cap": 0.002}}}


def test_boots_ready_with_mounts_hostname_and_loopback(sandbox: Any) -> None:
    host_hostname = socket.gethostname()
    sb: Sandbox = sandbox({"hostname": "corral-test"})
    status = sb.wait_ready()
    assert status["state"] == "ready", status
    assert status["pid"] == 1
    assert status["hostname"] == "corral-test"
    assert socket.gethostname() == host_hostname  # the host's name is untouched
    root = sb.dir / "root"
    for target in ("proc", "sys", "dev", "dev/pts", "dev/shm", "run", "sys/fs/cgroup"):
        assert str(root / target) in status["mounts"], target
    lo = sb.nsenter(["ip", "-o", "link", "show", "lo"]).stdout
    assert "UP" in lo.split(">")[0]
    assert sb.stop() == 0
    sb.assert_clean_journal()
    records = sb.journal()
    unmounted = [r for r in records if r.get("event") == "unmounted"]
    assert len(unmounted) == len(status["mounts"])
    # Lines logged before storage was attached (the mounts) were held in the ring and flushed, in order.
    mounted = [r["target"] for r in records if r.get("event") == "mounted"]
    assert mounted == status["mounts"]
    events = [r.get("event") for r in records]
    assert events.index("mounted") < events.index("hostname set")


def test_config_layers_in_a_real_boot(sandbox: Any) -> None:
    """Defaults < cloud-config.d < cloud-config.yml < kernel command line < datasource."""

    def drop_in(directory: Path) -> None:
        seed = directory / "seed"  # the sandbox's /seed: its paths live under its directory
        seed.mkdir()
        (seed / "user-data").write_text("#cloud-config\nrancher:\n  shutdown_grace: 3\n")
        (seed / "meta-data").write_text("local-hostname: from-datasource\n")
        conf_d = directory / "var/lib/corral/conf/cloud-config.d"
        conf_d.mkdir(parents=True)
        (conf_d / "10-log.yml").write_text("corral:\n  log:\n    level: warning\n    keep: 2\n")

    sb: Sandbox = sandbox(
        {"hostname": "from-file", "corral": {"log": {"keep": 3}}},
        cmdline="quiet corral.log.level=debug rancher.cloud_init.datasources=[file:/seed]",
        setup=drop_in,
    )
    status = sb.wait_ready()
    assert status["hostname"] == "from-datasource"  # meta-data is the last layer
    assert sb.request("config.get", key="corral.log.level") == "debug"  # cmdline over drop-in
    assert sb.request("config.get", key="corral.log.keep") == 3  # cloud-config.yml over drop-in
    assert sb.request("config.get", key="corral.shutdown_grace") == 3  # rancher: alias in user-data
    assert status["state"] == "ready" and status["config"]["warnings"] == []
    assert sb.stop() == 0


def test_config_warnings_are_listed_and_logged_but_not_degraded(sandbox: Any) -> None:
    sb: Sandbox = sandbox(cmdline="corral.cloud_init.datasources=[file:/missing-seed]")
    status = sb.wait_ready()
    assert status["state"] == "ready" and status["degraded"] == {}, status
    assert any("missing-seed" in w for w in status["config"]["warnings"])
    sb.wait_journal(lambda r: r.get("event") == "config warning" and "missing-seed" in r.get("warning", ""))
    assert sb.stop() == 0


def test_orphaned_grandchildren_are_reaped(sandbox: Any) -> None:
    sb: Sandbox = sandbox(DEBUG)
    sb.wait_ready()
    # Each subshell starts a sleep and exits at once: 100 sleeps are re-parented to PID 1.
    sb.nsenter(["sh", "-c", "for i in $(seq 100); do (sleep 0.3 &); done"])
    time.sleep(0.3 + 1.0)
    zombies = sb.nsenter(["sh", "-c", "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l"]).stdout
    assert int(zombies) == 0
    assert sb.request("status")["processes"]["orphans_reaped"] >= 100
    assert sb.stop() == 0


def test_exit_codes_of_1000_children_are_exact(sandbox: Any) -> None:
    sb: Sandbox = sandbox(DEBUG)
    sb.wait_ready()
    signals_used = [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGUSR1]
    commands, expected = [], []
    for i in range(1000):
        if i % 4 == 3:
            sig = signals_used[(i // 4) % len(signals_used)]
            commands.append(["sh", "-c", f"kill -{int(sig)} $$"])
            expected.append({"exitcode": None, "signal": int(sig)})
        else:
            commands.append(["sh", "-c", f"exit {i % 256}"])
            expected.append({"exitcode": i % 256, "signal": None})
    # Orphans are reaped by the same waitpid(-1) while the children run: the racy case.
    sb.nsenter(["sh", "-c", "for i in $(seq 200); do (true &); done"])
    got = []
    for start in range(0, 1000, 250):
        got += sb.request("debug.spawn", commands=commands[start:start + 250])
    assert [{"exitcode": g["exitcode"], "signal": g["signal"]} for g in got] == expected
    assert sb.stop() == 0


def test_handler_exceptions_leave_loop_alive_and_handler_restarted(sandbox: Any) -> None:
    sb: Sandbox = sandbox(DEBUG)
    sb.wait_ready()
    sb.request("debug.fail", handler="processes", count=100)
    deadline = time.monotonic() + 30
    handler: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = sb.request("status")
        handler = next(h for h in status["handlers"] if h["name"] == "processes")
        if handler["failures"] == 100 and handler["state"] == "idle":
            break
        time.sleep(0.05)
    assert handler["failures"] == 100 and handler["restarts"] == 100, handler
    assert handler["state"] == "idle"
    assert handler["reconciles"] >= 2  # it reconciled successfully after the failures
    assert sb.request("status")["state"] == "ready"
    assert sb.stop() == 0


def test_sigusr1_dumps_state_and_unknown_signals_are_ignored(sandbox: Any) -> None:
    sb: Sandbox = sandbox()
    sb.wait_ready()
    sb.signal(signal.SIGUSR1)
    dump = sb.wait_journal(lambda r: r.get("event") == "state dump")
    assert dump["state"] == "ready" and dump["pid"] == 1
    for sig in (signal.SIGUSR2, signal.SIGQUIT, signal.SIGALRM, signal.SIGWINCH, signal.SIGTSTP):
        sb.signal(sig)
    sb.wait_journal(lambda r: r.get("event") == "signal received" and r.get("signal") == "SIGTSTP")
    assert sb.request("status")["state"] == "ready"
    assert sb.proc.poll() is None
    assert sb.stop() == 0


def test_sighup_reloads_config(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "before"})
    first = sb.wait_ready()
    config = sb.paths.config_dir / "cloud-config.yml"
    config.write_text(yaml.safe_dump({"hostname": "after"}))
    sb.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while sb.request("status")["hostname"] != "after" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = sb.request("status")
    assert status["hostname"] == "after"
    assert status["config"]["generation"] > first["config"]["generation"]
    # An invalid host name costs only the host name: it stays on the last good config.
    config.write_text("hostname: [not, a, string]\n")
    sb.signal(signal.SIGHUP)
    sb.wait_journal(lambda r: "config error" in str(r.get("event")))
    status = sb.request("status")
    assert status["hostname"] == "after" and status["state"] == "degraded"
    assert any("hostname" in e for e in status["config"]["errors"])
    assert status["degraded"]["config"] == "hostname: 1 error(s); on the last good config"
    assert sb.stop() == 0


@pytest.mark.parametrize(("signum", "action"), [
    (signal.SIGTERM, "poweroff"), (signal.SIGPWR, "poweroff"), (signal.SIGINT, "reboot"),
])
def test_power_signals_shut_down_cleanly(sandbox: Any, signum: int, action: str) -> None:
    sb: Sandbox = sandbox(DEBUG)
    sb.wait_ready()
    sb.signal(signum)
    assert sb.wait_exit(60) == 0  # SIGINT does not kill PID 1: it runs an orderly reboot
    events = [r.get("event") for r in sb.journal()]
    assert "shutdown complete" in events
    assert any(r.get("event") == "shutting down" and r.get("action") == action for r in sb.journal())
    sb.assert_clean_journal()


def test_shutdown_stops_children_with_grace_then_sigkill(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"corral": {"debug": True, "shutdown_grace": 0.5}})
    sb.wait_ready()
    # A child that ignores SIGTERM: the supervisor must SIGKILL it after the grace period.
    stubborn = ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]
    threading.Thread(target=_ignore_errors, args=(lambda: sb.request("debug.spawn", commands=[stubborn]),),
                     daemon=True).start()
    time.sleep(0.5)
    sb.signal(signal.SIGTERM)
    assert sb.wait_exit(30) == 0
    killed = [r for r in sb.journal() if r.get("event") == "child did not stop in time; killing it"]
    assert killed, "stubborn child was not killed"


def test_fatal_startup_error_drops_to_emergency_shell(sandbox: Any) -> None:
    def break_run_dir(directory: Path) -> None:
        (directory / "run").write_text("not a directory")  # the control socket cannot be created

    shell = "sh -c 'echo EMERGENCY:$CORRAL_EMERGENCY_REASON'"
    sb: Sandbox = sandbox(emergency_shell=shell, setup=break_run_dir)
    sb.wait_exit(60)
    console = sb.console_text()
    assert "EMERGENCY:control:" in console, console


def _ignore_errors(fn: Any) -> None:
    with contextlib.suppress(Exception):  # the request dies with the sandbox
        fn()
