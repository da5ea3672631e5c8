"""Every `corral` command against a real supervisor (PID 1 in a sandbox), through the real socket."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
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
            # connected (its stream and this status request), so past its start-up (0.3 s and more
            # under load): a SIGINT during the imports ends it by the signal (-2), not with 130
            deadline = time.monotonic() + 30
            while sb.request("status")["control"]["open"] < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.1)
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


CMDLINE_SECRET = "cmdline-pw-never-shown"
IMAGE_DEFAULTS = Path(__file__).resolve().parents[1] / "image" / "config" / "10-image.yml"


def booted_like_make_run(directory: Path) -> None:
    """The layout `make run CONFIG=seed.yml` gives the booted image: the image's defaults (which list
    the datasource file:/etc/corral/seed) and the given file as that seed's user-data."""
    image_dir = directory / "usr" / "share" / "corral" / "cloud-config.d"
    image_dir.mkdir(parents=True)
    shutil.copyfile(IMAGE_DEFAULTS, image_dir / IMAGE_DEFAULTS.name)
    seed = directory / "etc" / "corral" / "seed"
    seed.mkdir(parents=True)
    (seed / "user-data").write_text("#cloud-config\nhostname: from-seed\ncorral:\n  environment: {ZONE: a}\n")


def test_config_set_of_a_key_a_higher_layer_gives_is_refused_naming_it(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "users-own"}, setup=booted_like_make_run,
                          cmdline=f"corral.password={CMDLINE_SECRET} corral.log.level=debug")
    sb.wait_ready()
    user_data = sb.dir / "etc" / "corral" / "seed" / "user-data"
    cloud_config = sb.paths.config_dir / "cloud-config.yml"
    before = cloud_config.read_text()
    assert sb.request("status")["hostname"] == "from-seed"  # the datasource wins over cloud-config.yml

    r = sb.cli("config", "set", "hostname", "edge-9", check=False)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        f"corral: <set>: hostname: not changed: hostname is set by {user_data} (datasource "
        "file:/etc/corral/seed), which wins over the user's config; change it there\n"
    )
    r = sb.cli("config", "set", "corral.log.level", "warning", check=False)
    assert r.returncode == 1
    assert "corral.log.level is set by the kernel command line (cmdline)" in r.stderr
    r = sb.cli("config", "set", "corral.password", "other-pw", check=False)
    assert r.returncode == 1 and "the kernel command line (cmdline)" in r.stderr
    r = sb.cli("config", "unset", "hostname", check=False)  # cloud-config.yml holds it; the seed wins
    assert r.returncode == 1 and f"hostname is set by {user_data}" in r.stderr
    merge_file = sb.dir.parent / "override.yml"
    merge_file.write_text("corral:\n  environment: {ZONE: b, RACK: r1}\n")
    r = sb.cli("config", "merge", str(merge_file), check=False)
    assert r.returncode == 1 and f"{merge_file}: corral.environment.ZONE: not changed" in r.stderr
    assert "RACK" not in r.stderr  # only the key that a higher layer gives
    # nothing was written, nothing changed
    assert cloud_config.read_text() == before and not (sb.paths.config_dir / "private.yml").exists()
    assert sb.cli("config", "get", "hostname").stdout == "from-seed\n"
    assert sb.cli("config", "get", "corral.environment", "-o", "json").stdout.strip() == '{\n  "ZONE": "a"\n}'

    # what no higher layer gives still changes, and says so
    applied = json.loads(sb.cli("config", "set", "corral.environment.RACK", "r1", "-o", "json").stdout)
    assert applied["changed"] == ["corral.environment"]
    assert sb.cli("config", "get", "corral.environment.RACK").stdout == "r1\n"


def test_config_views_keep_secrets_and_tell_unset_keys_from_unknown_ones(sandbox: Any) -> None:
    sb: Sandbox = sandbox(cmdline=f"corral.password={CMDLINE_SECRET}")
    sb.wait_ready()
    assert sb.cli("config", "get", "corral.password").stdout == "<redacted>\n"
    whole = json.loads(sb.cli("config", "get", "corral", "-o", "json").stdout)
    assert whole["password"] == "<redacted>" and whole["log"]["level"] == "info"
    assert CMDLINE_SECRET not in sb.cli("config", "get", "corral").stdout
    assert sb.cli("config", "get", "corral.password", "--secrets").stdout == f"{CMDLINE_SECRET}\n"
    assert sb.cli("config", "get", "corral.password", "--private").stdout == f"{CMDLINE_SECRET}\n"

    r = sb.cli("config", "get", "corral.network", check=False)  # docs/cli.md's example
    assert (r.returncode, r.stdout) == (4, "")
    assert r.stderr == (
        "corral: corral.network: not set (a known key; no layer of the config in force gives it a value)\n"
    )
    r = sb.cli("config", "get", "corral.network", "-o", "json", check=False)
    assert (r.returncode, r.stdout) == (4, "null\n")
    r = sb.cli("config", "get", "corral.netwrk", check=False)
    assert r.returncode == 1
    assert r.stderr == (
        "corral: no such key: corral.netwrk (corral.netwrk: unknown key; did you mean 'corral.network'?)\n"
    )
    sb.cli("poweroff")
    assert sb.wait_exit(60) == 0
    journal_text = "".join(p.read_text() for p in sb.paths.log_dir.glob("current.jsonl*"))
    assert CMDLINE_SECRET not in journal_text and CMDLINE_SECRET not in sb.console_text()


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
