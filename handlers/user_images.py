"""Images for the user's dockerd: the ones the OS ships (``/usr/share/corral/user-images``: busybox, so
that ``docker run --rm busybox echo hi`` works with no registry) and the user's own
(``/var/lib/corral/user-preload``), loaded into the user dockerd.

Level-triggered like every reconciler: each time the user dockerd's event stream (re)connects (the
user dockerd started, restarted, or came back after its data root was wiped), and at every resync, the
preload pass (``units.images.preload`` with the ``USER`` target) compares the archives with the stamps
of what was loaded and with the images the daemon has, and loads only what is missing. Nothing happens
while the user dockerd does not answer. A failed archive fails the reconcile, which the runner retries
with the shared backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Container
from pathlib import Path
from typing import Any

import structlog

from supervisor.events import Event
from supervisor.events.docker import EventStreamState
from supervisor.paths import Paths
from units.images import USER, PreloadResult, preload
from units.model import USER_DOCKERD_UNIT
from units.runtime import Runtime

log = structlog.get_logger("handlers.user_images")


class UserImagesHandler:
    name = "user-images"
    kinds: tuple[type[Event], ...] = (EventStreamState,)
    config_keys: tuple[str, ...] | None = ()  # no config

    def __init__(self, socket: Path, paths: Paths, connected: Callable[[], bool],
                 runtime_factory: Callable[[Path], Runtime] = Runtime) -> None:
        self.socket = socket
        self.paths = paths
        self.connected = connected  # the user dockerd's event stream is up (it answers)
        self.runtime_factory = runtime_factory
        self.last: PreloadResult | None = None
        self.preloaded = asyncio.Event()  # set once every shipped archive is in the user dockerd

    async def reconcile(self, full: bool) -> None:
        if not self.connected():
            return
        async with self.runtime_factory(self.socket) as runtime:
            result = await preload(runtime, self.paths, target=USER)
        self.last = result
        if result.loaded:
            log.info("user dockerd images preloaded", images=result.images)
        if not result.failed:
            self.preloaded.set()
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} image archive(s) not loaded into the user dockerd: "
                               + "; ".join(f"{k}: {v}" for k, v in result.failed.items()))

    def ready_waits(self, units: Container[str]) -> dict[str, Callable[[], Awaitable[None]]]:
        """What the boot's ready line waits for here: the shipped images, when the user dockerd (the
        ``docker`` unit) is among ``units``."""
        if USER_DOCKERD_UNIT not in units:
            return {}
        return {"the user dockerd's shipped images": self.wait_preloaded}

    async def wait_preloaded(self) -> None:
        """Until a preload pass has found (or put) every archive in the user dockerd: the boot's
        ``ready`` waits for it, so that `docker run --rm busybox` works once the OS says ready."""
        await self.preloaded.wait()

    def status(self) -> dict[str, Any] | None:
        return None if self.last is None else self.last.to_dict()
