"""The state partition keeps what each shipped dockerd writes: their data roots are persistent directories."""

from __future__ import annotations

from pathlib import Path

import yaml

from storage.state import PERSISTENT_DIRS

DOCKER_UNIT = Path(__file__).resolve().parent.parent / "units" / "defaults" / "docker.yml"


def test_the_user_dockerds_data_root_is_on_the_state_partition() -> None:
    """Its images, containers and Docker Swarm membership survive a reboot (issue 16: a node powered off
    and on is back in its swarm with no command)."""
    unit = yaml.safe_load(DOCKER_UNIT.read_text())["docker"]
    [source] = [v.split(":")[0] for v in unit["volumes"] if v.split(":")[1] == "/var/lib/docker"]
    assert source.lstrip("/") in PERSISTENT_DIRS


def test_the_system_dockerds_data_root_is_on_the_state_partition() -> None:
    assert "var/lib/system-docker" in PERSISTENT_DIRS
