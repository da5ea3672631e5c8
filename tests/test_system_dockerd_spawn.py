"""The `system-docker-start` boot phase ends when the system dockerd has been spawned, not when its
supervising task was started: that task's preparation (directories, config file, the bridge through
pyroute2, in a thread) then competed for the CPU with what came after the phase (the API client's
import, the schema's own check, the loopback and network phases), and the spawn came 1.9 s after the
phase said done under TCG. A first start that fails before the spawn degrades the phase; it never holds
the boot (docs/supervisor.md)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor.app import Supervisor
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.process import ProcessManager
from units.system_dockerd import DockerdLayout, SystemDockerd


@pytest.fixture
async def processes() -> AsyncIterator[tuple[Bus, ProcessManager]]:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    yield bus, pm
    await pm.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


def layout(tmp_path: Path, config_file: Path | None = None) -> DockerdLayout:
    fake = tmp_path / "dockerd"
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(3600)\n")
    fake.chmod(0o755)
    run = tmp_path / "run"
    return DockerdLayout(socket=run / "d.sock", data_root=tmp_path / "data", exec_root=run / "exec",
                         pidfile=run / "d.pid", config_file=config_file or tmp_path / "daemon.json",
                         cgroup_parent="corral-test", bridge=None, binary=fake)


async def test_wait_spawned_returns_once_the_process_is_there(processes: tuple[Bus, ProcessManager],
                                                              tmp_path: Path) -> None:
    bus, pm = processes
    daemon = SystemDockerd(pm, bus, layout(tmp_path), ready_timeout=30, daemon="test", unit="test-docker")
    daemon.start()
    try:
        assert daemon.child is None  # the start only began: its preparation runs in a thread first
        assert await daemon.wait_spawned(30)
        assert daemon.child is not None and daemon.child.running and daemon.stats.starts == 1
        assert (tmp_path / "daemon.json").exists()  # prepared before the spawn
        assert await daemon.wait_spawned(0)  # at once, once spawned
    finally:
        await daemon.stop(0.1)


async def test_a_first_start_failing_before_its_spawn_ends_the_wait_with_its_reason(
        processes: tuple[Bus, ProcessManager], tmp_path: Path) -> None:
    bus, pm = processes
    (tmp_path / "blocker").write_text("a file where the config file's directory should be")
    bad = layout(tmp_path, config_file=tmp_path / "blocker" / "daemon.json")
    daemon = SystemDockerd(pm, bus, bad, ready_timeout=30, daemon="test", unit="test-docker",
                           backoff=Backoff(initial=30, cap=30))
    daemon.start()
    try:
        assert not await daemon.wait_spawned(30)
        assert daemon.child is None
        assert daemon.spawn_error is not None and "blocker" in daemon.spawn_error
    finally:
        await daemon.stop(0.1)


class FakeDockerd:
    def __init__(self, spawned: asyncio.Event, ok: bool = True) -> None:
        self.spawned, self.ok = spawned, ok
        self.spawn_error = None if ok else "NotADirectoryError: /run/corral"

    def start(self) -> None:
        pass

    async def stop(self, grace: float) -> None:
        pass

    async def wait_spawned(self, timeout: float) -> bool:
        await self.spawned.wait()
        return self.ok


def phase_owner(monkeypatch: pytest.MonkeyPatch, dockerd: FakeDockerd) -> Any:
    monkeypatch.setattr("units.system_dockerd.SystemDockerd", lambda *a, **k: dockerd)
    monkeypatch.setattr("units.system_dockerd.DOCKERD", Path(sys.executable))
    stops: list[str] = []
    return SimpleNamespace(setting=lambda key, default: default, config=SimpleNamespace(current={}),
                           paths=SimpleNamespace(), options=SimpleNamespace(sandbox=True),
                           processes=None, bus=None, journal=None, system_docker=None,
                           stops=SimpleNamespace(add=lambda name, stop: stops.append(name)))


async def test_the_phase_ends_only_after_the_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = asyncio.Event()
    sup = phase_owner(monkeypatch, FakeDockerd(spawned))
    monkeypatch.setattr("units.system_dockerd.DockerdLayout.system", lambda paths, sandbox: DockerdLayout(
        socket=Path("/x"), data_root=Path("/x"), exec_root=Path("/x"), pidfile=Path("/x"),
        config_file=Path("/x"), cgroup_parent="x"))
    phase = asyncio.ensure_future(Supervisor._system_docker_start(sup))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not phase.done()  # dockerd's start began, its spawn not yet: the phase goes on
    spawned.set()
    await asyncio.wait_for(phase, 5)


async def test_a_start_failing_before_its_spawn_degrades_the_phase(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned = asyncio.Event()
    spawned.set()
    sup = phase_owner(monkeypatch, FakeDockerd(spawned, ok=False))
    monkeypatch.setattr("units.system_dockerd.DockerdLayout.system", lambda paths, sandbox: DockerdLayout(
        socket=Path("/x"), data_root=Path("/x"), exec_root=Path("/x"), pidfile=Path("/x"),
        config_file=Path("/x"), cgroup_parent="x"))
    with pytest.raises(RuntimeError, match="not spawned: NotADirectoryError: /run/corral; still trying"):
        await Supervisor._system_docker_start(sup)


IMPORTED_WHILE_WAITING = """
import asyncio, sys
from types import SimpleNamespace
from pathlib import Path
from supervisor.app import IMAGES_AND_UNITS, Supervisor

seen = []

class Dockerd:
    layout = SimpleNamespace(socket=Path("/nonexistent/d.sock"))
    on_up = []

    async def wait_ready(self, timeout):
        seen.extend(m for m in IMAGES_AND_UNITS if m in sys.modules)
        return True

class Events:
    def __init__(self, *a, **k): pass
    def wake(self): pass
    def start(self): pass
    async def stop(self): pass

import supervisor.sources.docker
supervisor.sources.docker.DockerEventsSource = Events
before = [m for m in IMAGES_AND_UNITS if m in sys.modules]
sup = SimpleNamespace(system_docker=Dockerd(), bus=None, docker_events=None,
                      stops=SimpleNamespace(add=lambda *a: None))
asyncio.run(Supervisor._system_docker(sup))
print(before, seen)
"""


def test_the_units_machinery_is_imported_while_the_system_dockerd_starts() -> None:
    """The units phase imported it (0.5 s under TCG) right after the images phase had begun the loads,
    whose requests this loop sends: in a TCG boot the loads began 0.95 s after the images phase."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", IMPORTED_WHILE_WAITING], capture_output=True, text=True,
                         timeout=120, check=True, cwd=Path(__file__).resolve().parent.parent)
    before, _, seen = out.stdout.strip().splitlines()[-1].partition("] ")
    assert before == "[" and seen == "['supervisor.boot.images', 'units.images', 'supervisor.boot.units']"
