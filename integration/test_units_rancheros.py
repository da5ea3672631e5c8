"""A RancherOS-style service file run by the real system dockerd, in the sandbox: ${REGISTRY_DOMAIN} and
${SUFFIX} in its image, corral.environment (given as rancher.environment) in its command, ``$$`` kept for
the shell, ordering after RancherOS's built-ins (network, ntp), volumes_from user-volumes, libcompose's
``privileged: "false"``; the warnings listed by `corral status`."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    inspect,
    system_docker_on,
    units,
    wait_for,
    wait_state,
    with_busybox,
)
from supervisor.paths import Paths

pytestmark = pytest.mark.docker

SERVICE_FILE = """\
# RancherOS style: compose v1, io.rancher.os.* labels, RancherOS's variables and built-in units.
rosdemo-setup:
  image: ${REGISTRY_DOMAIN}/corral/busybox:latest${SUFFIX}
  command: sh -c 'echo ${GREETING} from $$0 > /home/rosdemo.out'
  net: none
  privileged: "false"
  labels:
    io.rancher.os.scope: system
    io.rancher.os.detach: "false"
    io.rancher.os.after: network,udev
  volumes_from:
  - user-volumes
rosdemo:
  image: ${REGISTRY_DOMAIN}/corral/busybox:latest${SUFFIX}
  command: ["sh", "-c", "trap 'exit 0' TERM; cat /home/rosdemo.out; sleep 600 & wait"]
  net: none
  restart: always
  labels:
    io.rancher.os.scope: system
    io.rancher.os.after: rosdemo-setup,ntp
  volumes_from:
  - user-volumes
"""


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    if platform.machine() != "x86_64":
        pytest.skip("${SUFFIX} is empty on amd64 only")
    with system_docker_on(monkeypatch, tmp_path):
        yield


def setup(directory: Path) -> None:
    with_busybox(directory)
    units_dir = Paths.sandbox(directory).units_dir
    units_dir.mkdir(parents=True, exist_ok=True)
    (units_dir / "rosdemo.yml").write_text(SERVICE_FILE)


def test_rancheros_service_file_runs_as_rancheros_ran_it(sandbox: Any) -> None:
    cfg = {
        "rancher": {
            "shutdown_grace": 1,
            "environment": {"GREETING": "hello"},
            "services_include": {"rosdemo": True},
        }
    }
    sb: Sandbox = sandbox(cfg, setup=setup)
    status = sb.wait_ready(90)
    assert "units" not in status["degraded"], status["degraded"]
    done = wait_state(sb, "rosdemo-setup", "exited", timeout=60)
    assert done["last_exit"] == 0
    wait_state(sb, "rosdemo", "running", timeout=60)
    # $$0 reached the shell as $0; ${GREETING} came from rancher.environment; the bind from user-volumes
    # is the sandbox's /home
    assert (sb.dir / "home/rosdemo.out").read_text() == "hello from sh\n"
    said = wait_for("rosdemo's output", lambda: [
        r for r in sb.journal() if r.get("unit") == "rosdemo" and r.get("stream") == "stdout"
    ])
    assert said[0]["event"] == "hello from sh"
    container = inspect(sb, "rosdemo")
    assert container["Config"]["Image"] == "docker.io/corral/busybox:latest"
    assert not container["HostConfig"]["Privileged"]
    binds = container["HostConfig"]["Binds"]
    assert any(b.endswith(":/home") for b in binds) and any(b.endswith(":/opt") for b in binds)
    assert set(units(sb)) >= {"rosdemo", "rosdemo-setup"}
    # ntp has no equivalent here: a warning, listed by status; network and udev: silently satisfied
    text = "\n".join(sb.request("status")["config"]["warnings"])
    assert "'ntp' is RancherOS's built-in unit" in text and "'network'" not in text
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
