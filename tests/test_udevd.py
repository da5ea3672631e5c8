"""udevd as a supervised process: config, the decisions (start or not, argv, which uevents to follow),
the udev source's switching rule, the sandbox fencing's pure parts. No udevd runs here."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from handlers.udevd import (
    UDEVD_PATHS,
    Preflight,
    UdevdConfig,
    control_answers,
    find_binary,
    parse_udevd_config,
    preflight,
    settle_argv,
    trigger_argv,
    udevd_argv,
    udevd_env,
    wanted_source,
)
from handlers.udevd_isolation import direct_submounts, existing_dirs, run_is_the_sandboxes
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator
from supervisor.sources.udev import switch_needed

VALIDATOR = Validator(Schema())


def errors(text: str) -> list[tuple[str, str]]:
    return [(e.key, e.message) for e in check_text(text, "f.yml", VALIDATOR)[1]]


# ---- config ----------------------------------------------------------------------------------------------
def test_config_boolean_or_map_and_the_rancher_alias() -> None:
    assert errors("corral:\n  udev: true\n") == []
    assert errors("rancher:\n  udev: true\n") == []
    assert errors("corral:\n  udev: {path: /sbin/udevd, children_max: 2, trigger: [-s, block]}\n") == []
    bad = errors("corral:\n  udev: {childrenmax: 2}\n")
    assert bad and bad[0][0].startswith("corral.udev")
    bad = errors("corral:\n  udev: \"yes please\"\n")
    assert bad and bad[0][0] == "corral.udev"
    bad = errors("rancher:\n  udev: {children_max: 0}\n")
    assert bad and bad[0][0] == "rancher.udev.children_max"


def test_parse_defaults_off_and_a_map_turns_it_on() -> None:
    assert parse_udevd_config(None) == UdevdConfig()
    assert parse_udevd_config(False).enabled is False
    assert parse_udevd_config(True) == UdevdConfig(enabled=True)
    cfg = parse_udevd_config({"children_max": 2, "trigger": ["--subsystem-match=block"], "rules_dir": "/r"})
    assert cfg.enabled and cfg.children_max == 2 and cfg.trigger == ("--subsystem-match=block",)
    assert cfg.rules_dir == "/r"
    assert parse_udevd_config({"enabled": False, "path": "/x"}).enabled is False
    with pytest.raises(ValueError, match=r"corral\.udev"):
        parse_udevd_config("yes")


# ---- decisions ---------------------------------------------------------------------------------------------
ON = UdevdConfig(enabled=True)


def test_preflight_decides_whether_udevd_may_start() -> None:
    binary = UDEVD_PATHS[0]
    assert preflight(UdevdConfig(), binary=binary, sandbox=False, systemd_running=False) == Preflight("off")
    missing = preflight(ON, binary=None, sandbox=False, systemd_running=False)
    assert missing.state == "missing" and "not found" in missing.reason and "kernel" in missing.reason
    assert preflight(ON, binary=binary, sandbox=False, systemd_running=False).start
    # udevd started by PID 1 under systemd kills its whole cgroup: never.
    refused = preflight(ON, binary=binary, sandbox=False, systemd_running=True)
    assert refused.state == "refused" and "/run/systemd/system" in refused.reason
    # The sandbox shares the host's devices: only with a rules directory of its own.
    refused = preflight(ON, binary=binary, sandbox=True, systemd_running=False)
    assert refused.state == "refused" and "rules_dir" in refused.reason
    fenced = UdevdConfig(enabled=True, rules_dir="/rules")
    assert preflight(fenced, binary=binary, sandbox=True, systemd_running=False).start
    ignored = preflight(fenced, binary=binary, sandbox=False, systemd_running=False)
    assert ignored.start and "sandbox only" in ignored.warnings[0]


def test_binary_lookup() -> None:
    usr = "/usr/lib/systemd/systemd-udevd"
    assert find_binary(ON, lambda p: p == usr) == usr
    assert find_binary(ON, lambda p: False) is None
    custom = UdevdConfig(enabled=True, path="/opt/udevd")
    assert find_binary(custom, lambda p: True) == "/opt/udevd"
    assert find_binary(custom, lambda p: p != "/opt/udevd") is None  # no fallback to another udevd


def test_udevd_command_line_and_environment() -> None:
    cfg = UdevdConfig(enabled=True, children_max=3, args=("-e", "1"))
    argv = udevd_argv("/lib/systemd/systemd-udevd", cfg)
    assert argv == ("/lib/systemd/systemd-udevd", "--resolve-names=never", "--children-max=3", "-e", "1")
    assert "--debug" not in argv and "--daemon" not in argv  # foreground: it stays our child
    env = dict(udevd_env("/bin"))
    assert env["SYSTEMD_LOG_TARGET"] == "console"  # stderr (into the journal), never the kernel log
    assert "NOTIFY_SOCKET" not in env and env["PATH"] == "/bin"
    assert dict(udevd_env(None))["PATH"].endswith("/bin")


def test_coldplug_is_add_first_then_change() -> None:
    cfg = UdevdConfig(enabled=True, trigger=("--subsystem-match=block",), settle_timeout=7)
    assert trigger_argv("udevadm", cfg, first=True) == ("udevadm", "trigger", "--action=add",
                                                        "--subsystem-match=block")
    assert trigger_argv("udevadm", cfg, first=False)[2] == "--action=change"
    assert settle_argv("udevadm", cfg) == ("udevadm", "settle", "--timeout=7")


@pytest.mark.parametrize(("state", "source"), [
    ("running", "udev"), ("starting", "kernel"), ("restarting", "kernel"), ("unready", "kernel"),
    ("stopped", "kernel"),
])
def test_source_follows_udevd_only_while_it_is_ready(state: str, source: str) -> None:
    assert wanted_source(state) == source


def test_switch_needed() -> None:
    assert not switch_needed("udev", True, "udev")
    assert switch_needed("udev", True, "kernel")
    assert switch_needed("kernel", True, "udev")
    assert switch_needed("udev", False, "udev")  # closed (lost): reopen


def test_control_socket_probe(tmp_path: Path) -> None:
    path = tmp_path / "control"
    assert not control_answers(path)  # none
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server.bind(str(path))
    server.listen(4)
    try:
        assert control_answers(path)
    finally:
        server.close()
    assert path.exists() and not control_answers(path)  # a stale socket file left by a killed udevd


# ---- the sandbox fencing's pure parts -------------------------------------------------------------------
MOUNTINFO = """\
22 1 0:5 / /dev rw - devtmpfs udev rw
23 22 0:20 / /dev/pts rw - devpts devpts rw
24 22 0:21 / /dev/shm rw - tmpfs tmpfs rw
25 24 0:22 / /dev/shm/x rw - tmpfs tmpfs rw
26 1 0:23 / /run rw - tmpfs tmpfs rw
27 1 0:24 / /devices rw - tmpfs tmpfs rw
28 26 0:25 / /run rw - tmpfs corral-run rw
"""


def test_submounts_to_move_and_the_sandbox_check() -> None:
    assert direct_submounts(MOUNTINFO, "/dev") == ["/dev/pts", "/dev/shm"]
    assert run_is_the_sandboxes(MOUNTINFO)  # the last /run mount is the sandbox's
    assert not run_is_the_sandboxes(MOUNTINFO.replace("corral-run", "tmpfs"))


def test_existing_dirs_deduplicates_symlinked_paths() -> None:
    real = {"/lib/udev/rules.d": "/usr/lib/udev/rules.d"}
    found = existing_dirs(["/etc/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d", "/nope"],
                          realpath=lambda p: real.get(p, p), is_dir=lambda p: p != "/nope")
    assert found == ["/etc/udev/rules.d", "/usr/lib/udev/rules.d"]
