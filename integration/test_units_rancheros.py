"""A RancherOS-style service file run by the real system dockerd, in the sandbox: ${REGISTRY_DOMAIN} and
${SUFFIX} in its image, corral.environment (given as rancher.environment) in its command, ``$$`` kept for
the shell, ordering after RancherOS's built-ins (network, ntp), volumes_from user-volumes, libcompose's
``privileged: "false"``; the warnings listed by `corral status`. A services_include URL served in the
sandbox's network namespace: fetched and run, then its copy used on the next boot without the server."""

from __future__ import annotations

import platform
import subprocess
import sys
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


URL_FILE = """\
# A RancherOS service file served over HTTP, as services_include fetched it
rosurl:
  image: ${REGISTRY_DOMAIN}/corral/busybox:latest${SUFFIX}
  command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
  net: none
  restart: always
  labels:
    io.rancher.os.scope: system
"""


def _serve(sb: Sandbox, directory: Path, port: int) -> subprocess.Popen[bytes]:
    """An HTTP server on the sandbox's 127.0.0.1 (inside its network namespace, which has only lo)."""
    return subprocess.Popen(
        ["nsenter", "-t", str(sb.pid1), "-n", "--", sys.executable, "-m", "http.server", "--bind",
         "127.0.0.1", "--directory", str(directory), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_services_include_url_is_fetched_and_run_then_its_copy_used_when_the_server_is_gone(
        sandbox: Any, tmp_path: Path) -> None:
    sb: Sandbox = sandbox({"rancher": {"shutdown_grace": 1}}, setup=with_busybox)
    sb.wait_ready(90)
    served = tmp_path / "served"
    served.mkdir()
    (served / "rosurl.yml").write_text(URL_FILE)
    url = "http://127.0.0.1:8765/rosurl.yml"
    server = _serve(sb, served, 8765)
    try:
        change = tmp_path / "change.yml"
        change.write_text(f"#cloud-config\nrancher:\n  services_include:\n    {url}: true\n")
        sb.cli("config", "merge", str(change))  # a config change adds the URL: fetched when it comes
        fetched = sb.wait_journal(lambda r: r.get("event") == "unit file fetched", timeout=60)
        assert fetched["url"] == url and fetched["units"] == ["rosurl"]
        wait_state(sb, "rosurl", "running", timeout=60)
        assert inspect(sb, "rosurl")["Config"]["Image"] == "docker.io/corral/busybox:latest"
    finally:
        server.terminate()
        server.wait(10)
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)

    again: Sandbox = sandbox(again=sb)  # the next boot: nothing serves the URL now
    again.wait_ready(90)
    used = again.wait_journal(
        lambda r: r.get("event") == "unit file not fetched; using the copy fetched before", timeout=60)
    assert used["url"] == url and used["level"] == "warning"
    wait_state(again, "rosurl", "running", timeout=60)
    assert again.stop() == 0
    again.assert_clean_journal(EXPECTED_ERRORS)
