"""Shared by the units integration tests: sandboxes with the system dockerd and preloaded images, waiting
for unit states, container pids as the host sees them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import integration.sandbox
from image import busybox
from integration.dockerd import unavailable_reason
from integration.sandbox import Sandbox
from supervisor.paths import Paths
from units.system_dockerd import DockerdLayout, remove_cgroups

IMAGE = "corral/busybox:latest"
# A command that stops at once on SIGTERM (busybox sh as PID 1 would ignore it).
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
EXPECTED_ERRORS = (
    # dockerd's own complaints when it is shut down or killed under its containers
    "Failed to get event", "stream copy error", "dockerd is not answering; killing it",
    # dockerd posting an event while the containerd killed with it is not back yet:
    # "failed to connect: dial unix .../containerd.sock.ttrpc: connect: connection refused"
    "containerd.sock",
)


@contextlib.contextmanager
def system_docker_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(integration.sandbox, "SYSTEM_DOCKER_DEFAULT", True)
    try:
        yield
    finally:
        for directory in tmp_path.iterdir():
            if directory.is_dir() and (directory / "cmdline").exists():
                remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)


def with_busybox(directory: Path) -> None:
    """Sandbox setup: the busybox archive in DIR/var/lib/corral/preload/."""
    preload = directory / "var/lib/corral/preload"
    preload.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox.ensure(), preload / "busybox.tar")


def unit(command: list[str] | str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"image": IMAGE, "net": "none", "command": SLEEP if command is None else command}
    body.update(extra)
    return body


def config(services: dict[str, Any], **corral: Any) -> dict[str, Any]:
    return {"corral": {"shutdown_grace": 1, "services": services, **corral}}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def units(sb: Sandbox) -> dict[str, dict[str, Any]]:
    return {u["name"]: u for u in sb.request("units.list")}


def wait_state(sb: Sandbox, name: str, *states: str, timeout: float = 30.0) -> dict[str, Any]:
    return dict(wait_for(f"{name} {'/'.join(states)}",
                         lambda: u if (u := units(sb)[name])["state"] in states else None, timeout))


def inspect(sb: Sandbox, name: str) -> dict[str, Any]:
    out = sb.cli("system-docker", "inspect", name).stdout
    return dict(json.loads(out)[0])


def docker_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def started_at(sb: Sandbox, name: str) -> float:
    return docker_time(inspect(sb, name)["State"]["StartedAt"])


def container_host_pids(sb: Sandbox, cid: str) -> list[int]:
    """A container's processes, as host pids (cgroup.procs translates them for the reader)."""
    parent = DockerdLayout.system(sb.paths, sandbox=True).cgroup_parent.lstrip("/")
    for hierarchy in ("pids", "memory", "cpu", "unified", ""):
        procs = Path("/sys/fs/cgroup") / hierarchy / parent / cid / "cgroup.procs"
        if procs.exists():
            return [int(p) for p in procs.read_text().split()]
    raise AssertionError(f"no cgroup for container {cid[:12]}")


def kill_unit(sb: Sandbox, name: str, sig: int = signal.SIGKILL) -> float:
    """Kill every process of the unit's container from the host; returns when (time.time())."""
    cid = inspect(sb, name)["Id"]
    pids = container_host_pids(sb, cid)
    assert pids, f"{name} has no process"
    when = time.time()
    os.kill(min(pids), sig)  # its init (started first): the rest go with it
    return when


def dockerd_host_pid(sb: Sandbox) -> int:
    needle = f"unix://{sb.dir}/run/system-docker.sock".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline.startswith(b"/usr/sbin/dockerd\0") and needle in cmdline:
                    return int(entry.name)
    raise AssertionError("no system dockerd found")


def records(sb: Sandbox, event: str, unit_name: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sb.journal()
            if r.get("event") == event and (unit_name is None or r.get("unit") == unit_name)]


def ts(record: dict[str, Any]) -> float:
    return docker_time(str(record["ts"]).replace("Z", "+00:00"))


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
