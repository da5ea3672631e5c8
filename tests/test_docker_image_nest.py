"""The user dockerd's image runs ``/cgroup-nest`` before dockerd (image/docker-files/cgroup-nest): in the
container's own cgroup namespace it moves the root cgroup's processes into ``init`` and hands the root's
controllers to its children, so that the user's containers get memory and CPU limits (without it dockerd
logged "failed to enable controllers" and `docker run --memory` failed in the booted OS).

The script is run for real by ``sh`` with a stand-in cgroup directory bind-mounted over /sys/fs/cgroup in
a private mount namespace (this host's own hierarchy is v1: its cgroup2 has no controllers to give); the
booted OS's test (integration/test_guest_os.py) sees the limits inside a user container."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from image import docker

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                reason="needs root and unshare (a private mount namespace)")


def _run_nest(cgroup: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """cgroup-nest over a stand-in /sys/fs/cgroup, then a command that says it ran."""
    inner = (f"mount --bind {cgroup} /sys/fs/cgroup && "
             f"exec sh {docker.NEST_SOURCE} sh -c 'echo command ran: $0 $1' one two")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)


def _stand_in(tmp_path: Path, controllers: str, procs: str) -> Path:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "cgroup.controllers").write_text(controllers)
    (cgroup / "cgroup.subtree_control").write_text("")
    (cgroup / "cgroup.procs").write_text(procs)
    return cgroup


def test_the_roots_processes_move_to_init_and_its_controllers_go_to_the_children(tmp_path: Path) -> None:
    cgroup = _stand_in(tmp_path, "cpuset cpu io memory pids\n", "1\n7\n42\n")
    done = _run_nest(cgroup, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "command ran: one two\n"  # exec "$@", arguments kept apart
    assert (cgroup / "init" / "cgroup.procs").read_text().split() == ["1", "7", "42"]
    assert (cgroup / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids\n"
    assert done.stderr == ""


def test_no_controllers_to_give_is_no_write_and_the_command_still_runs(tmp_path: Path) -> None:
    cgroup = _stand_in(tmp_path, "\n", "1\n")
    done = _run_nest(cgroup, tmp_path)
    assert done.returncode == 0 and done.stdout == "command ran: one two\n", done.stderr
    assert (cgroup / "cgroup.subtree_control").read_text() == ""  # not "+": the kernel would refuse it


def test_on_cgroup_v1_it_does_nothing_but_run_the_command(tmp_path: Path) -> None:
    cgroup = tmp_path / "v1"
    cgroup.mkdir()  # no cgroup.controllers: not a cgroup2 root
    done = _run_nest(cgroup, tmp_path)
    assert done.returncode == 0 and done.stdout == "command ran: one two\n", done.stderr
    assert list(cgroup.iterdir()) == []


def test_the_image_runs_it_between_tini_and_dockerd(tmp_path: Path) -> None:
    archive = tmp_path / "docker.tar"
    docker.write_archive(archive, fs=docker.collect())
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    assert config["config"]["Entrypoint"] == ["/usr/bin/docker-init", "--", "/cgroup-nest"]
    assert config["config"]["Cmd"] == ["dockerd"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as rootfs:
        nest = rootfs.getmember("cgroup-nest")
        assert nest.isfile() and nest.mode == 0o755 and nest.uid == 0
        assert rootfs.extractfile(nest).read() == docker.NEST_SOURCE.read_bytes()  # type: ignore[union-attr]
