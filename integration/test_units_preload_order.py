"""Units start while the image archives load (issue 17, item 3), against a real dockerd: the unit whose
image is in a small archive is started while a big archive is still loading, and the big archive's unit
waits for that load (named in its status, with no container, no failed start), then starts once it is
in. The big archive's load is held open by the test until the small unit runs, so the order is the
events', never a race of speeds: the boot's images phase (supervisor/boot/images.py), the preload pass
(units/images.py) and the units reconciler under its runner, as PID 1 wires them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from handlers.runner import HandlerRunner
from handlers.units.dockerds import Daemon
from handlers.units.reconciler import UnitsReconciler
from integration.dockerd import TEST_IMAGE, Dockerd
from supervisor.boot.images import SystemImages
from supervisor.bus import Bus
from supervisor.paths import Paths
from tests.units_fakes import loaded_by_generation
from units.runtime import LoadResult, Runtime

pytestmark = pytest.mark.docker

SMALL, BIG = "pipe22/small:1", "pipe22/big:1"


def make_archives(dockerd: Dockerd, directory: Path) -> None:
    """small.tar and big.tar (the test image under two names), neither name left in the daemon."""
    directory.mkdir(parents=True)
    for name, ref in (("small", SMALL), ("big", BIG)):
        dockerd.docker(["tag", TEST_IMAGE, ref])
        dockerd.docker(["save", "-o", str(directory / f"{name}.tar"), ref])
        dockerd.docker(["rmi", ref])


def held_runtime(events: list[str], release: asyncio.Event) -> type[Runtime]:
    class Held(Runtime):
        """The real client; the load of big.tar waits for the test to let it go."""

        async def load_image(self, archive: Path, *, timeout: float | None = None) -> LoadResult:
            if archive.name == "big.tar":
                await release.wait()
            result = await super().load_image(archive, timeout=timeout)
            events.append(f"loaded {archive.name}")
            return result

    return Held


async def until(what: str, check: Any, timeout: float = 60.0) -> None:
    """Look at the reconciler's state every 50 ms until ``check()`` (it has no event of its own)."""
    async with asyncio.timeout(timeout):
        for _ in iter(check, True):
            await asyncio.sleep(0.05)
    assert check(), what


async def test_a_unit_starts_before_a_big_archive_is_in_and_the_big_ones_unit_after_it(
        dockerd: Dockerd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = Paths.sandbox(tmp_path / "root")
    make_archives(dockerd, paths.under("/var/lib/corral/preload"))
    events: list[str] = []
    release = asyncio.Event()
    monkeypatch.setattr("units.runtime.Runtime", held_runtime(events, release))
    services = {name: {"image": ref, "net": "none", "restart": "always", "command": ["sleep", "600"]}
                for name, ref in (("small", SMALL), ("big", BIG))}
    bus = Bus()
    fake_dockerd = SimpleNamespace(ready=True, on_up=[], layout=SimpleNamespace(socket=dockerd.socket))
    degraded: dict[str, str] = {}
    images = SystemImages(bus, fake_dockerd, paths, degraded.__setitem__)  # type: ignore[arg-type]
    handler = UnitsReconciler(
        bus, {"system": Daemon("system", dockerd.socket, lambda: True)},
        loaded=loaded_by_generation(lambda: {"corral": {"services": services}}, lambda: 1),
        stops_file=tmp_path / "stops.json", preloads=images.preloads)
    runner = HandlerRunner(bus, handler)
    try:
        await images.start()  # the images phase: the loads start ...
        assert set(images.preloads.pending) == {str(paths.under(f"/var/lib/corral/preload/{n}.tar"))
                                                for n in ("small", "big")}
        handler.load()
        runner.start()  # ... and the units with them (the units phase)

        def running(name: str) -> bool:
            return bool(handler.unit_status(name)["state"] == "running")

        await until("small running", lambda: running("small"))
        events.append("small running")
        big = handler.unit_status("big")
        assert big["waiting"] == "waiting for its image to be preloaded (big.tar)", big
        assert big["container"] is None and big["failures"] == 0 and big["error"] is None, big
        names = dockerd.docker(["ps", "-a", "--format", "{{.Names}}"]).stdout.split()
        assert names == ["small"]  # nothing created for big
        release.set()
        await until("big running", lambda: running("big"))
        events.append("big running")
        assert events == ["loaded small.tar", "small running", "loaded big.tar", "big running"], events
        big = handler.unit_status("big")
        assert big["failures"] == 0 and big["restarts"] == 0 and big["error"] is None, big
        await asyncio.wait_for(images.preloads.wait_idle(), 10)
        assert degraded == {} and images.result is not None and images.result["failed"] == {}
    finally:
        release.set()
        await runner.stop()
        await handler.stop_all(1.0)
