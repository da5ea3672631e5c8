"""The `images` boot phase: the image archives (units/images.py) loaded into the system dockerd, beside
the units rather than before them.

The phase notes which archives the pass will look at and what each holds (``expected_archives``, in a
thread: stamps, and the ``manifest.json`` of a new archive) and starts the loads in the background: the
`units` phase starts at once, and a unit waits only for the archive with its image (units/preloads.py).
A failed load is logged and degrades `images`. The ready line waits until every archive is done with.

When the system dockerd is not answering yet (its phase gave up waiting and it keeps trying: a loaded
machine), the archives are loaded when it first answers, and that load is tried again until it works
(a dockerd that answers late is slow: a load may time out)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from supervisor.bus import Bus
from supervisor.paths import Paths
from supervisor.tasks import spawn_task
from units.preloads import Preloads
from units.system_dockerd import SystemDockerd

log = structlog.get_logger("supervisor")

LATE_PRELOAD_RETRY = 5.0  # seconds before loading the archives again after a late load failed (doubled)
LATE_PRELOAD_RETRY_CAP = 60.0


class SystemImages:
    """The system dockerd's image archives: the phase (``start``), what is pending (``preloads``), the
    last pass's result (``result``, for `corral status`)."""

    def __init__(self, bus: Bus, dockerd: SystemDockerd, paths: Paths,
                 degrade: Callable[[str, str], None]) -> None:
        self.dockerd = dockerd
        self.paths = paths
        self.degrade = degrade
        self.preloads = Preloads(bus.publish)
        self.result: dict[str, Any] | None = None

    async def start(self) -> None:
        from units.images import expected_archives

        self.preloads.expect(await asyncio.to_thread(expected_archives, self.paths))
        dockerd = self.dockerd

        def on_up() -> None:
            dockerd.on_up.remove(on_up)
            spawn_task(self._load_late(), name="images-late")

        if not dockerd.ready:
            dockerd.on_up.append(on_up)
            log.warning("image archives not loaded yet: the system dockerd is not answering; "
                        "they will be when it does")
            return
        spawn_task(self._load_now(), name="images")

    async def load(self) -> None:
        """One preload pass; RuntimeError naming the archives that failed."""
        from units.images import preload
        from units.runtime import Runtime

        async with Runtime(self.dockerd.layout.socket) as runtime:
            result = await preload(runtime, self.paths, progress=self.preloads)
            self.result = result.to_dict()  # before anything that waits for the pass's end runs
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} image archive(s) not loaded: "
                               + "; ".join(f"{k}: {v}" for k, v in result.failed.items()))

    async def _load_now(self) -> None:
        try:
            await self.load()
        except Exception as exc:
            self.preloads.finish_all()
            log.error("image archives not loaded; carrying on degraded", error=str(exc))
            self.degrade("images", str(exc))
        else:
            log.info("image archives loaded")

    async def _load_late(self) -> None:
        delay = LATE_PRELOAD_RETRY
        while True:
            try:
                await self.load()
            except Exception as exc:
                self.preloads.finish_all()  # its units fail on "No such image" until a retry loads it
                log.error("image archives loaded late: failed; trying again", error=str(exc), retry_in=delay)
            else:
                log.info("image archives loaded late, once the system dockerd answered")
                return
            await asyncio.sleep(delay)
            delay = min(2 * delay, LATE_PRELOAD_RETRY_CAP)

    def ready_waits(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """What the ready line waits for here: every archive done with (loaded, or failed)."""
        return {"the system dockerd's image archives": self.preloads.wait_idle}
