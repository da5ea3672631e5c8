"""Boot wiring of the units: the units reconciler (handlers/units/) over the system dockerd and the
user's, their event sources, and the user dockerd's image preload (handlers/user_images.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from handlers.storage import StorageHandler
from handlers.units.dockerds import Daemon
from handlers.units.reconciler import UnitsReconciler
from handlers.units.required_mounts import storage_rule_mounts
from handlers.units.status import FIRST_WAVE_TIMEOUT
from handlers.user_images import UserImagesHandler
from supervisor.boot.context import BootContext
from supervisor.sources.docker import DockerEventsSource
from supervisor.tasks import spawn_task
from units.etc_files import DIR as ETC_DIR
from units.model import Scope
from units.policy import RUNNING
from units.preloads import Preloads
from units.stops import stops_path
from units.system_dockerd import SystemDockerd

log = structlog.get_logger("units")


@dataclass
class UnitsBoot:
    handler: UnitsReconciler
    user_images: UserImagesHandler
    dockerd: SystemDockerd
    user_up: Callable[[], bool]  # the user dockerd answers (its events source is connected)
    preloads: Preloads | None = None  # the image archives still loading (units/preloads.py)

    async def wait_first_wave(self) -> None:
        """Wait until the first wave of units is up or has failed (``FIRST_WAVE_TIMEOUT`` at most; then
        RuntimeError, while the reconciler keeps trying). The image archives' loads (each under a
        deadline of its own) do not count against it: their units wait for them, as they waited for the
        `images` phase before the units started beside the loads."""
        handler = self.handler
        graph = handler.graph
        waves = graph.waves() if graph is not None else []
        if not handler.units:
            return
        if not self.dockerd.ready:
            log.warning("units will start when the system dockerd answers")
            return
        started = time.monotonic()
        up = await handler.wait_first_wave(FIRST_WAVE_TIMEOUT)
        if not up and self.preloads is not None and not self.preloads.idle.is_set():
            await self.preloads.wait_idle()
            up = await handler.wait_first_wave(FIRST_WAVE_TIMEOUT)
        if not up:
            raise RuntimeError(f"first wave of units not up after {FIRST_WAVE_TIMEOUT:g} s; still trying")
        first = waves[0] if waves else []
        states = {name: handler.unit_status(name)["state"] for name in first}
        log.info("first wave of units up", seconds=round(time.monotonic() - started, 3),
                 running=sorted(n for n, s in states.items() if s == RUNNING),
                 other={n: s for n, s in states.items() if s != RUNNING})


def start_units(ctx: BootContext, dockerd: SystemDockerd, storage: Callable[[], StorageHandler | None],
                preloads: Preloads | None = None) -> UnitsBoot:
    """Start the units reconciler with a full first reconcile (``UnitsBoot.wait_first_wave`` waits for
    its first wave). ``storage`` gives the storage reconciler, whose rules' mounts units may require;
    ``preloads`` the image archives still loading, whose units wait for them (units/preloads.py)."""
    paths = ctx.paths
    daemons: dict[Scope, Daemon] = {
        "system": Daemon("system", dockerd.layout.socket, lambda: dockerd.ready,
                         lambda: dockerd.stats.starts),
    }
    user_socket = paths.under("/run/docker.sock")
    sources: dict[Scope, DockerEventsSource] = {}
    # The user's dockerd is up when its events source is connected (it answered): no stat on the loop.
    def user_up() -> bool:
        return "user" in sources and sources["user"].stats.connected

    daemons["user"] = Daemon("user", user_socket, user_up)

    def follow_events(scope: Scope) -> None:
        """The user's dockerd's container events (its units' `die`), from the first time it is wanted."""
        if scope in sources:
            return
        source = sources[scope] = DockerEventsSource(ctx.bus, daemons[scope].socket, daemon=scope)
        source.start()
        ctx.stops.add(f"{scope} docker events", source.stop)

    def reload() -> None:
        spawn_task(ctx.reload(), name="units:reloadconfig")

    user_images = UserImagesHandler(user_socket, paths, user_up)
    ctx.add_handler(user_images)

    handler = UnitsReconciler(
        ctx.bus, daemons,
        loaded=ctx.domains.units,
        journal=ctx.journal,
        stops_file=stops_path(paths),
        grace=lambda: ctx.grace,
        prefix=paths.prefix if ctx.sandbox else None,
        etc_root=paths.state_dir / ETC_DIR,
        host_resolv=paths.under("/etc/resolv.conf"),
        on_reload=reload,
        follow_events=follow_events,
        storage_rules=lambda: storage_rule_mounts(storage()),
        preloads=preloads,
    )
    ctx.stops.add("units", lambda: handler.stop_all(ctx.grace))
    handler.load()  # the units of the config in force, before the first reconcile
    graph = handler.graph
    waves = graph.waves() if graph is not None else []
    log.info("starting units", units=len(handler.units), waves=len(waves),
             first_wave=waves[0] if waves else [])
    handler.start_tap()
    ctx.add_handler(handler, queue_size=4096)
    return UnitsBoot(handler, user_images, dockerd, user_up, preloads)
