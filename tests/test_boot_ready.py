"""The ready line waits for the units and for what else the boot names (the user dockerd's shipped
images): `make run` said ready, a newcomer logged in and `docker run --rm busybox echo hi` failed
("Unable to find image") because busybox was still being loaded into the user dockerd."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from handlers.user_images import UserImagesHandler
from supervisor.boot.context import StopRegistry
from supervisor.boot.ready import announce_ready
from supervisor.paths import Paths


def ctx() -> Any:
    return SimpleNamespace(journal=SimpleNamespace(console_mirror=False), sandbox=False, stops=StopRegistry())


def ready_said(logs: list[dict[str, Any]]) -> bool:
    return any(str(r.get("event", "")).endswith(" ready") for r in logs)


async def test_ready_waits_for_what_else_the_boot_names() -> None:
    loaded = asyncio.Event()

    async def images() -> None:
        await loaded.wait()

    with structlog.testing.capture_logs() as logs:
        announce_ready(ctx(), None, 0.0, lambda: False, {"the user dockerd's shipped images": images})
        await asyncio.sleep(0.05)
        assert not ready_said(logs)
        loaded.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if ready_said(logs):
                break
    assert ready_said(logs)


async def test_ready_at_once_with_nothing_to_wait_for() -> None:
    with structlog.testing.capture_logs() as logs:
        announce_ready(ctx(), None, 0.0, lambda: False, {})
    assert ready_said(logs)


async def test_never_ready_once_a_shutdown_began() -> None:
    loaded = asyncio.Event()

    async def images() -> None:
        await loaded.wait()

    stopping = False
    with structlog.testing.capture_logs() as logs:
        announce_ready(ctx(), None, 0.0, lambda: stopping, {"images": images})
        stopping = True
        loaded.set()
        await asyncio.sleep(0.05)
    assert not ready_said(logs)


@pytest.mark.parametrize("units, waits", [({"docker": object()}, 1), ({"console": object()}, 0)])
def test_the_user_images_are_waited_for_only_with_a_user_dockerd(
    units: dict[str, object], waits: int, tmp_path: Path
) -> None:
    handler = UserImagesHandler(tmp_path / "docker.sock", Paths(prefix=tmp_path), lambda: False)
    assert len(handler.ready_waits(units)) == waits


class _Runtime:
    async def __aenter__(self) -> _Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("failed, preloaded", [({}, True), ({"busybox.tar": "no space"}, False)])
async def test_preloaded_once_a_pass_put_every_archive_in(
    failed: dict[str, str], preloaded: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import user_images
    from units.images import PreloadResult

    async def preload(*_: object, **__: object) -> PreloadResult:
        return PreloadResult(skipped=["busybox.tar"], failed=failed)

    monkeypatch.setattr(user_images, "preload", preload)
    up = False
    handler = UserImagesHandler(tmp_path / "docker.sock", Paths(prefix=tmp_path), lambda: up,
                                runtime_factory=lambda _: _Runtime())  # type: ignore[arg-type,return-value]
    await handler.reconcile(full=True)
    assert not handler.preloaded.is_set()  # the user dockerd does not answer yet
    up = True
    try:
        await handler.reconcile(full=True)
    except RuntimeError:
        assert failed
    assert handler.preloaded.is_set() == preloaded


async def test_the_ready_line_says_pid1s_own_cpu_seconds() -> None:
    """How much of a boot was PID 1's own work: its CPU time (every thread, not its children's)."""
    with structlog.testing.capture_logs() as logs:
        announce_ready(ctx(), None, 0.0, lambda: False, {})
    line = next(r for r in logs if str(r.get("event", "")).endswith(" ready"))
    assert isinstance(line["cpu_seconds"], float) and line["cpu_seconds"] > 0
    assert line["boot_seconds"] > 0

