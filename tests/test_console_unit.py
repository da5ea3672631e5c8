"""The shipped console unit (units/defaults/console.yml): on by default, and created as the console needs
(privileged, the host's pid/net/uts/ipc namespaces, /home and its state directory bound)."""

from __future__ import annotations

from pathlib import Path

import yaml

from units.loader import load_units
from units.model import RestartSpec
from units.spec import create_body
from units.unitfiles import SHIPPED_DIR

DEFAULTS = Path(__file__).resolve().parent.parent / "supervisor/config/defaults/00-base.yml"


def test_the_shipped_defaults_turn_the_console_on() -> None:
    defaults = yaml.safe_load(DEFAULTS.read_text())
    assert defaults["corral"]["services_include"]["console"] is True
    loaded = load_units(defaults)
    assert loaded.errors == [] and SHIPPED_DIR / "console.yml" in loaded.files
    assert "console" in loaded.units


def test_the_console_unit_runs_in_the_hosts_namespaces_with_homes_and_state_bound() -> None:
    unit = load_units({"corral": {"services_include": {"console": True}}}).units["console"]
    assert unit.scope == "system" and unit.restart == RestartSpec("always")
    body = create_body(unit)
    host = body["HostConfig"]
    assert body["Image"] == "corral/console:latest"
    assert host["Privileged"] is True
    assert (host["NetworkMode"], host["PidMode"], host["UTSMode"], host["IpcMode"]) == ("host",) * 4
    assert sorted(host["Binds"]) == ["/home:/home", "/var/lib/corral/console:/var/lib/corral/console"]
    assert not any(e.startswith("CORRAL_CONSOLE_") for e in body.get("Env", []))  # test hooks stay off
