"""The shipped `docker` unit: the user's dockerd, a privileged system unit built from Debian's packages
(image/docker.py), reached from the host with DOCKER_HOST; the user's containers come and go without
touching the OS's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import integration.sandbox
from image import busybox, docker
from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    config,
    run,
    system_docker_on,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)

pytestmark = pytest.mark.docker
DOCKER_CLI = shutil.which("docker") or "/usr/bin/docker"


def privileged_unavailable() -> str | None:
    """Docker 20.10 gives a privileged container every capability the kernel knows; runc cannot when
    this machine's bounding set lacks one (e.g. inside a container without CAP_SYS_RESOURCE)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    status = Path("/proc/self/status").read_text()
    bounding = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:")), 16)
    missing = [cap for cap in range(last + 1) if not bounding >> cap & 1]
    if missing:
        return (f"privileged containers cannot start on this machine: its capability bounding set lacks "
                f"{missing} and Docker 20.10 asks for every capability")
    return None


@pytest.fixture(autouse=True)
def _user_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    reason = privileged_unavailable()
    if reason:
        pytest.skip(reason)
    if docker.missing():
        pytest.skip(f"cannot build {docker.IMAGE}: missing {docker.missing()}")
    monkeypatch.setattr(integration.sandbox, "USER_DOCKER_DEFAULT", True)
    with system_docker_on(monkeypatch, tmp_path):
        yield


def setup(directory: Path) -> None:
    with_busybox(directory)
    docker.link_or_copy(docker.ensure(), directory / "var/lib/corral/preload/docker.tar")


def test_user_docker_runs_containers_and_deleting_them_leaves_the_os(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({"keeper": unit(restart="always")}), setup=setup)
    sb.wait_ready(120)
    wait_state(sb, "docker", "running", timeout=60)
    wait_state(sb, "keeper", "running")
    socket = sb.dir / "run/docker.sock"  # the host's /var/run/docker.sock, under the sandbox's prefix
    env = {**os.environ, "DOCKER_HOST": f"unix://{socket}"}
    ask = [DOCKER_CLI, "version", "--format", "{{.Server.Version}}"]
    version = wait_for("user dockerd answers",
                       lambda: (r := run(ask, env)).returncode == 0 and r.stdout.strip(), 60)
    print(f"user dockerd {version} answers at {socket}")
    assert (sb.dir / "var/lib/user-docker").is_dir()  # its data root, under the prefix too
    info = run([DOCKER_CLI, "info", "--format", "{{.DockerRootDir}}"], env)
    assert info.stdout.strip() == "/var/lib/docker"
    loaded = run([DOCKER_CLI, "load", "-i", str(busybox.ensure())], env)
    assert loaded.returncode == 0, loaded.stderr
    argv = [DOCKER_CLI, "run", "--rm", "--network", "none", "corral/busybox", "echo", "hi from user docker"]
    hello = run(argv, env)
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout == "hi from user docker\n"
    for name in ("u1", "u2"):
        started = run([DOCKER_CLI, "run", "-d", "--name", name, "--network", "none", "corral/busybox",
                       "sleep", "600"], env)
        assert started.returncode == 0, started.stderr
    everything = run([DOCKER_CLI, "ps", "-qa"], env).stdout.split()
    assert len(everything) == 2
    removed = run([DOCKER_CLI, "rm", "-f", *everything], env)
    assert removed.returncode == 0, removed.stderr
    assert run([DOCKER_CLI, "ps", "-qa"], env).stdout.split() == []
    # The OS is untouched: the system units run on, never restarted.
    status = units(sb)
    for name in ("docker", "keeper"):
        assert status[name]["state"] == "running" and status[name]["restarts"] == 0, status[name]
    system = sb.cli("system-docker", "ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(system) == ["docker", "keeper"]
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
