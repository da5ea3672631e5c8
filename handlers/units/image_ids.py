"""The ids of the units' images, for ``units.plan`` (a unit's config hash is made with its image's id:
a re-tagged image recreates its units) and ``corral units inspect``.

Cached: looked up again all at once when stale (after an image event of a dockerd, a full reconcile, a
dockerd's clients dropped, and every ``IMAGE_REFRESH`` seconds), else only the ones not known yet. Each
dockerd's image events are followed (one stream per dockerd start; ``IMAGE_EVENT_RETRY`` seconds after
a failure) and published as ``ImagesChanged``: a loaded image may be what a unit waits for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

import structlog

from handlers.units.dockerds import Dockerds
from supervisor.bus import Bus
from supervisor.events import Event
from supervisor.tasks import spawn_task
from units.model import Scope, Unit
from units.runtime import DockerAPIError, DockerUnavailable, Runtime

log = structlog.get_logger("units")

IMAGE_REFRESH = 30.0  # seconds: image ids are looked up again at least this often (on any reconcile)
IMAGE_EVENT_RETRY = 5.0  # seconds before watching a dockerd's image events again after a failure


@dataclass(frozen=True, kw_only=True)
class ImagesChanged(Event):
    """An image of ``daemon`` was loaded, tagged, untagged or deleted: unit image ids may differ now."""

    kind: ClassVar[str] = "docker.image"
    daemon: str
    action: str
    ref: str = ""


class ImageIds:
    """Image reference -> id (``ids``), as last looked up."""

    def __init__(self, bus: Bus, dockerds: Dockerds, clock: Callable[[], float]) -> None:
        self.bus = bus
        self.dockerds = dockerds
        self.clock = clock
        self.ids: dict[str, str] = {}
        self._stale = True
        self._at = float("-inf")
        self._drops = dockerds.drops
        self._watch: dict[Scope, tuple[int, asyncio.Task[None]]] = {}
        self._watch_failed: dict[Scope, float] = {}

    def mark_stale(self) -> None:
        """Look every id up again at the next ``refresh``."""
        self._stale = True

    async def refresh(self, desired: Mapping[str, Unit]) -> bool:
        """Look up the ids of the units' images: all again when stale, else only the ones not known yet.
        True when some were looked up."""
        now = self.clock()
        if self.dockerds.drops != self._drops:
            self._drops = self.dockerds.drops
            self._stale = True
        stale = self._stale or now - self._at >= IMAGE_REFRESH
        wanted: dict[str, Scope] = {}
        for unit in desired.values():
            if wanted.get(unit.image) != "system":
                wanted[unit.image] = unit.scope
        todo = [(ref, scope) for ref, scope in wanted.items() if stale or ref not in self.ids]
        if stale:
            self._stale = False
            self._at = now
        if not todo:
            return False
        results = await asyncio.gather(*(self._lookup(ref, scope) for ref, scope in todo))
        for (ref, _scope), image_id in zip(todo, results, strict=True):
            if image_id is None:
                self.ids.pop(ref, None)
            else:
                self.ids[ref] = image_id
        return True

    async def _lookup(self, ref: str, scope: Scope) -> str | None:
        runtime = self.dockerds.runtime(scope)
        if runtime is None:
            return None
        try:
            found = await runtime.image_inspect(ref)
        except (DockerUnavailable, DockerAPIError) as exc:
            log.debug("image not inspected", image=ref, error=str(exc))
            return self.ids.get(ref)
        return None if found is None else str(found.get("Id") or "") or None

    def watch(self, scope: Scope, runtime: Runtime) -> None:
        """Follow the dockerd's image events (one stream per dockerd start): a loaded image may be what a
        unit waits for, and a re-tagged one recreates its units."""
        epoch = self.dockerds.epoch(scope)
        current = self._watch.get(scope)
        if current is not None and current[0] == epoch and not current[1].done():
            return
        if self.clock() - self._watch_failed.get(scope, float("-inf")) < IMAGE_EVENT_RETRY:
            return
        if current is not None:
            current[1].cancel()
        task = spawn_task(self._events(scope, runtime), name=f"units:image-events:{scope}")
        self._watch[scope] = (epoch, task)

    async def _events(self, scope: Scope, runtime: Runtime) -> None:
        try:
            async with runtime.events(filters={"type": ["image"]}) as stream:
                async for raw in stream:
                    action = str(raw.get("Action") or raw.get("status") or "")
                    self._stale = True
                    self.bus.publish(ImagesChanged(daemon=scope, action=action, ref=str(raw.get("id") or "")))
        except (DockerUnavailable, DockerAPIError, RuntimeError) as exc:
            log.debug("image events ended", scope=scope, error=str(exc))
        self._watch_failed[scope] = self.clock()

    async def close(self) -> None:
        """Stop following image events."""
        for _epoch, task in self._watch.values():
            task.cancel()
        await asyncio.gather(*(t for _e, t in self._watch.values()), return_exceptions=True)
