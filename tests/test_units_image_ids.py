"""The units' image ids (handlers/units/image_ids.py): looked up when not known, all again when stale
(an image event, a full reconcile, a dockerd's clients dropped, every IMAGE_REFRESH seconds); image
events published on the bus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from handlers.units.dockerds import Daemon, Dockerds
from handlers.units.image_ids import IMAGE_REFRESH, ImageIds, ImagesChanged
from supervisor.bus import Bus
from tests.units_fakes import IMAGE, Clock, FakeDocker, FakeRuntime, unit_of

OTHER = "corral/other:1"


def setup(tmp_path: Path, docker: FakeDocker, runtime: type[FakeRuntime] = FakeRuntime
          ) -> tuple[ImageIds, Dockerds, Clock, Bus]:
    clock, bus = Clock(), Bus()
    dockerds = Dockerds({"system": Daemon("system", tmp_path / "s.sock", lambda: True)},
                        lambda _socket: runtime(docker))  # type: ignore[arg-type,return-value]
    return ImageIds(bus, dockerds, clock), dockerds, clock, bus


def units() -> dict[str, Any]:
    return {"a": unit_of(f"a:\n  image: {IMAGE}\n", "a"), "b": unit_of(f"b:\n  image: {OTHER}\n", "b"),
            "c": unit_of(f"c:\n  image: {IMAGE}\n", "c")}


async def test_ids_are_looked_up_once_then_again_only_when_stale(tmp_path: Path) -> None:
    docker = FakeDocker()
    images, dockerds, clock, _ = setup(tmp_path, docker)
    dockerds.runtime("system")  # its first client (counted as a drop: nothing known yet)
    assert await images.refresh(units())
    assert images.ids == {IMAGE: "sha256:busybox"}  # OTHER is not there
    assert sorted(docker.inspected) == [IMAGE, OTHER]
    docker.inspected.clear()
    assert await images.refresh(units())  # OTHER is not known: looked up again, alone
    assert docker.inspected == [OTHER]
    docker.inspected.clear()
    docker.images[OTHER] = "sha256:other"
    docker.images[IMAGE] = "sha256:new"
    assert await images.refresh({"a": units()["a"]}) is False  # known, not stale: nothing looked up
    clock.now += IMAGE_REFRESH
    assert await images.refresh(units())
    assert images.ids == {IMAGE: "sha256:new", OTHER: "sha256:other"}
    docker.inspected.clear()
    images.mark_stale()  # an image event or a full reconcile
    assert await images.refresh(units()) and sorted(docker.inspected) == [IMAGE, OTHER]
    docker.inspected.clear()
    dockerds.drop("system")
    assert await images.refresh(units()) and sorted(docker.inspected) == [IMAGE, OTHER]
    await images.close()
    await dockerds.close()


async def test_a_deleted_image_is_forgotten(tmp_path: Path) -> None:
    docker = FakeDocker()
    images, dockerds, _clock, _ = setup(tmp_path, docker)
    await images.refresh(units())
    assert IMAGE in images.ids
    del docker.images[IMAGE]
    images.mark_stale()
    await images.refresh(units())
    assert images.ids == {}
    await dockerds.close()


class Eventful(FakeRuntime):
    @contextlib.asynccontextmanager
    async def events(self, **_: Any) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async def some() -> AsyncIterator[dict[str, Any]]:
            yield {"Type": "image", "Action": "load", "id": "corral/busybox:latest"}
            await asyncio.Event().wait()

        yield some()


async def test_image_events_are_published_and_make_the_ids_stale(tmp_path: Path) -> None:
    docker = FakeDocker()
    images, dockerds, _clock, bus = setup(tmp_path, docker, Eventful)
    sub = bus.subscribe("test", ImagesChanged)
    await images.refresh(units())
    runtime = dockerds.runtime("system")
    assert runtime is not None
    images.watch("system", runtime)
    images.watch("system", runtime)  # one stream per dockerd start
    event = await asyncio.wait_for(sub.get(), 5)
    assert isinstance(event, ImagesChanged)
    assert (event.daemon, event.action, event.ref) == ("system", "load", IMAGE)
    assert sub.get_nowait() is None
    docker.inspected.clear()
    assert await images.refresh(units()) and sorted(docker.inspected) == [IMAGE, OTHER]
    await images.close()
    await dockerds.close()
