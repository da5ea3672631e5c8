"""PID 1 loads the image archives when the system dockerd answers late (supervisor/app.py): under load its
boot phase gives up waiting after 60 s and dockerd keeps trying; the archives were then never loaded, and
the console and docker units retried "No such image" for ever (QEMU boots at load 40-90 never got ready)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor.app import Supervisor


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

    async def preload(runtime: FakeRuntime, paths: Any) -> Any:
        loaded.append((runtime.socket, paths))
        return SimpleNamespace(failed={}, to_dict=lambda: {"loaded": ["corral/console"]})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    dockerd = FakeDockerd()
    sup = SimpleNamespace(system_docker=dockerd, paths="PATHS", preload_result=None)

    async def scenario() -> None:
        await Supervisor._preload_images(sup)  # type: ignore[arg-type]
        assert loaded == [] and len(dockerd.on_up) == 1  # not answering: nothing loaded yet
        dockerd.came_up()
        for _ in range(5):
            await asyncio.sleep(0)
        assert loaded == [(Path("/run/fake.sock"), "PATHS")]
        assert sup.preload_result == {"loaded": ["corral/console"]}
        assert dockerd.on_up == []  # once: a later restart of dockerd does not load them again
        dockerd.came_up()
        await asyncio.sleep(0)
        assert len(loaded) == 1

    asyncio.run(scenario())


def test_archives_are_loaded_in_the_phase_when_dockerd_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[Any] = []

    async def preload(runtime: FakeRuntime, paths: Any) -> Any:
        loaded.append(paths)
        return SimpleNamespace(failed={"x.tar": "bad"}, to_dict=lambda: {})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    dockerd = FakeDockerd()
    dockerd.ready = True
    sup = SimpleNamespace(system_docker=dockerd, paths="PATHS", preload_result=None)
    with pytest.raises(RuntimeError, match="1 image archive"):
        asyncio.run(Supervisor._preload_images(sup))  # type: ignore[arg-type]
    assert loaded == ["PATHS"] and dockerd.on_up == []


def test_a_late_load_that_fails_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def preload(runtime: FakeRuntime, paths: Any) -> Any:
        calls.append(1)
        failed = {"console.tar": "no answer in 49 s"} if len(calls) == 1 else {}
        return SimpleNamespace(failed=failed, to_dict=lambda: {"calls": len(calls)})

    monkeypatch.setattr("units.images.preload", preload)
    monkeypatch.setattr("units.runtime.Runtime", FakeRuntime)
    monkeypatch.setattr("supervisor.app.LATE_PRELOAD_RETRY", 0.01)
    dockerd = FakeDockerd()
    sup = SimpleNamespace(system_docker=dockerd, paths="PATHS", preload_result=None)

    async def scenario() -> None:
        await Supervisor._preload_images(sup)  # type: ignore[arg-type]
        dockerd.came_up()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(calls) >= 2:
                break
        await asyncio.sleep(0.01)
        assert len(calls) == 2 and sup.preload_result == {"calls": 2}
        await asyncio.sleep(0.05)
        assert len(calls) == 2  # done once it succeeded

    asyncio.run(scenario())
