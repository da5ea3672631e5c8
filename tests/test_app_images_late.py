"""PID 1 loads the image archives when the system dockerd answers late (supervisor/boot/images.py): under load
its boot phase gives up waiting after 60 s and dockerd keeps trying; the archives were then never loaded, and
the console and docker units retried "No such image" for ever (QEMU boots at load 40-90 never got ready)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor.boot.images import SystemImages
from supervisor.bus import Bus


class FakeDockerd:
    def __init__(self) -> None:
        self.ready = False
        self.on_up: list[Any] = []
        self.layout = SimpleNamespace(socket=Path("/run/fake.sock"))

    def came_up(self) -> None:
        self.ready = True
        for callback in list(self.on_up):
            callback()


class FakeRuntime:
    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def __aenter__(self) -> FakeRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def test_archives_are_loaded_when_a_late_system_dockerd_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[Any] = []

    async def preload(runtime: FakeRuntime, paths: Any, progress: Any = None) -> Any:
        loaded.append((runtime.socket, paths))
        return SimpleNamespace(failed={}, to_dict=lambda: {"loaded": ["corral/console"]})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    monkeypatch.setattr("units.images.expected_archives", lambda paths: {})
    dockerd = FakeDockerd()
    degraded: dict[str, str] = {}
    sup = SystemImages(Bus(), dockerd, "PATHS", degraded.__setitem__)  # type: ignore[arg-type]

    async def scenario() -> None:
        await sup.start()
        assert loaded == [] and len(dockerd.on_up) == 1  # not answering: nothing loaded yet
        dockerd.came_up()
        for _ in range(5):
            await asyncio.sleep(0)
        assert loaded == [(Path("/run/fake.sock"), "PATHS")]
        assert sup.result == {"loaded": ["corral/console"]}
        assert dockerd.on_up == []  # once: a later restart of dockerd does not load them again
        dockerd.came_up()
        await asyncio.sleep(0)
        assert len(loaded) == 1

    asyncio.run(scenario())


def test_archives_are_loaded_from_the_phase_when_dockerd_answers_and_a_failure_degrades(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[Any] = []

    async def preload(runtime: FakeRuntime, paths: Any, progress: Any = None) -> Any:
        loaded.append(paths)
        return SimpleNamespace(failed={"x.tar": "bad"}, to_dict=lambda: {})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    monkeypatch.setattr("units.images.expected_archives", lambda paths: {})
    dockerd = FakeDockerd()
    dockerd.ready = True
    degraded: dict[str, str] = {}
    sup = SystemImages(Bus(), dockerd, "PATHS", degraded.__setitem__)  # type: ignore[arg-type]

    async def scenario() -> None:
        await sup.start()  # the loads start: the phase does not wait for them (the units wait for theirs)
        for _ in range(20):
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert loaded == ["PATHS"] and dockerd.on_up == []
    assert degraded == {"images": "1 image archive(s) not loaded: x.tar: bad"}  # the boot goes on, degraded


def test_a_late_load_that_fails_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def preload(runtime: FakeRuntime, paths: Any, progress: Any = None) -> Any:
        calls.append(1)
        failed = {"console.tar": "no answer in 49 s"} if len(calls) == 1 else {}
        return SimpleNamespace(failed=failed, to_dict=lambda: {"calls": len(calls)})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    monkeypatch.setattr("units.images.expected_archives", lambda paths: {})
    monkeypatch.setattr("supervisor.boot.images.LATE_PRELOAD_RETRY", 0.01)
    dockerd = FakeDockerd()
    degraded: dict[str, str] = {}
    sup = SystemImages(Bus(), dockerd, "PATHS", degraded.__setitem__)  # type: ignore[arg-type]

    async def scenario() -> None:
        await sup.start()
        dockerd.came_up()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(calls) >= 2:
                break
        await asyncio.sleep(0.01)
        assert len(calls) == 2 and sup.result == {"calls": 2}
        await asyncio.sleep(0.05)
        assert len(calls) == 2  # done once it succeeded

    asyncio.run(scenario())
