"""Units start while the image archives load (units/preloads.py, units/images.py, units/plan.py): a unit
whose image is in an archive not loaded yet waits for that archive, named, with no create, no failed
start and no restart backoff; it is reconciled the moment its archive is done with (``PreloadDone``),
and a failed load ends the wait (the unit then fails on "No such image" as before)."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.units_fakes import IMAGE, FakeDocker, make, settle, svc
from units import images as images_mod
from units.images import MANIFEST_BYTES, Archive, PreloadResult, archive_images, preload
from units.model import Unit
from units.plan import Create, Start, Wait, plan
from units.policy import UnitPolicy
from units.preloads import PreloadDone, Preloads, normal_ref, unit_waits

WAIT = "waiting for its image to be preloaded ({})"


def unit(name: str, image: str, scope: str = "system") -> Unit:
    return Unit(name=name, image=image, scope=scope)  # type: ignore[arg-type]


def test_normal_ref_names_an_image_as_docker_save_does() -> None:
    assert normal_ref("busybox") == "busybox:latest"
    assert normal_ref("docker.io/library/busybox") == "busybox:latest"
    assert normal_ref("corral/console") == "corral/console:latest"
    assert normal_ref("registry:5000/x/y:2") == "registry:5000/x/y:2"
    assert normal_ref("registry:5000/x/y") == "registry:5000/x/y:latest"
    assert normal_ref("x@sha256:abc") == "x@sha256:abc"


def test_a_unit_waits_only_for_the_archive_with_its_image() -> None:
    desired = {"console": unit("console", "corral/console:latest"), "docker": unit("docker", "corral/docker"),
               "mine": unit("mine", "busybox", scope="user")}
    pending: dict[str, tuple[str, ...] | None] = {"/i/console.tar": ("corral/console:latest",)}
    assert unit_waits(desired, pending, known=()) == {"console": "console.tar"}  # docker's archive is in
    assert unit_waits(desired, {}, known=()) == {}
    # an archive of unknown contents: every system unit whose image dockerd does not have yet waits for it
    pending["/i/other.tar.gz"] = None
    assert unit_waits(desired, pending, known=("corral/docker",)) == {"console": "console.tar"}
    assert unit_waits(desired, pending, known=()) == {"console": "console.tar", "docker": "other.tar.gz"}


def test_plan_makes_a_unit_whose_image_is_preloading_wait_without_touching_its_policy() -> None:
    desired = {"console": unit("console", "corral/console:latest"), "docker": unit("docker", "corral/docker")}
    policies = {name: UnitPolicy(u.restart) for name, u in desired.items()}
    actions = plan(desired, [], policies, preloading={"console": "console.tar"})
    assert [a for a in actions if a.unit == "console"] == [Wait("console", WAIT.format("console.tar"))]
    assert any(isinstance(a, Create) and a.unit == "docker" for a in actions)
    assert any(isinstance(a, Start) and a.unit == "docker" for a in actions)
    assert policies["console"].fresh and not policies["console"].attempted  # no start counted
    # loaded: it is created and started
    actions = plan(desired, [], policies, preloading={})
    assert {type(a) for a in actions if a.unit == "console"} == {Create, Start}


def test_preloads_tell_the_bus_as_each_archive_is_done_with() -> None:
    published: list[Any] = []
    preloads = Preloads(published.append)
    assert preloads.idle.is_set()
    preloads.expect({"/i/a.tar": ("a:1",), "/i/b.tar": None})
    assert not preloads.idle.is_set()
    preloads.finished("/i/a.tar", True)
    assert [(e.daemon, e.file, e.loaded) for e in published] == [("system", "/i/a.tar", True)]
    assert not preloads.idle.is_set()
    preloads.finished("/i/a.tar", True)  # once
    preloads.finished("/i/b.tar", True)
    assert not preloads.idle.is_set()  # the pass is not over until it says so (its stamps, its result)
    preloads.expect({"/i/b.tar": None})
    preloads.finish_all()
    assert isinstance(published[-1], PreloadDone) and (published[-1].file, published[-1].loaded) == (
        "/i/b.tar", False)
    assert len(published) == 3 and preloads.idle.is_set() and preloads.pending == {}


def write_archive(path: Path, manifest: Any, *, before: int = 0, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for n in range(before):
            data = b"layer"
            info = tarfile.TarInfo(f"blobs/{n}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if manifest is not None:
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_archive_images_reads_the_manifest_bounded(tmp_path: Path) -> None:
    manifest = [{"Config": "c", "RepoTags": ["corral/console:latest"], "Layers": []},
                {"RepoTags": ["x:1", "x:2"]}, {"RepoTags": None}]
    assert archive_images(write_archive(tmp_path / "a.tar", manifest, before=3)) == (
        "corral/console:latest", "x:1", "x:2")
    assert archive_images(write_archive(tmp_path / "none.tar", None, before=2)) is None
    assert archive_images(write_archive(tmp_path / "z.tar.gz", manifest, mode="w:gz")) is None  # not unpacked
    assert archive_images(write_archive(tmp_path / "big.tar", b" " * (MANIFEST_BYTES + 1))) is None
    assert archive_images(write_archive(tmp_path / "bad.tar", b"{not json")) is None
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    assert archive_images(tmp_path / "junk.tar") is None


class LoadingRuntime:
    """Loads each archive once its gate opens; a.tar fails."""

    def __init__(self) -> None:
        self.gates = {name: asyncio.Event() for name in ("a.tar", "b.tar", "c.tar")}
        self.loading: set[str] = set()
        self.all_loading = asyncio.Event()

    async def image_exists(self, ref: str) -> bool:
        return True

    async def load_image(self, path: Path) -> Any:
        self.loading.add(path.name)
        if len(self.loading) == len(self.gates):
            self.all_loading.set()
        await self.gates[path.name].wait()
        if path.name == "a.tar":
            raise OSError("broken archive")
        return type("Loaded", (), {"images": (f"{path.stem}:1",), "seconds": 0.1})()


async def test_preload_reports_each_archive_as_its_load_ends(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images_mod, "HEAD_START", 0.01)  # all three loading at once, each waiting
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.tar", "b.tar", "c.tar"):
        write_archive(images / name, [{"RepoTags": [f"{name[0]}:1"]}])
    published: list[Any] = []
    first_done = asyncio.Event()

    def publish(event: Any) -> None:
        published.append(event)
        first_done.set()

    preloads = Preloads(publish)
    preloads.expect({str(images / n): None for n in ("a.tar", "b.tar", "c.tar")})
    runtime = LoadingRuntime()
    paths = type("P", (), {"state_dir": tmp_path / "state"})()
    task = asyncio.ensure_future(preload(runtime, paths, directories=[images],  # type: ignore[arg-type]
                                         progress=preloads))
    await asyncio.wait_for(runtime.all_loading.wait(), 30)  # all three loads begun (side by side)
    runtime.gates["b.tar"].set()
    await asyncio.wait_for(first_done.wait(), 30)
    assert [(e.file, e.loaded) for e in published] == [(str(images / "b.tar"), True)]
    assert set(preloads.pending) == {str(images / "a.tar"), str(images / "c.tar")}  # theirs still load
    runtime.gates["a.tar"].set()
    runtime.gates["c.tar"].set()
    result: PreloadResult = await task
    assert result.failed == {str(images / "a.tar"): "broken archive"}
    assert [(e.file.rsplit("/", 1)[1], e.loaded) for e in published] == [
        ("b.tar", True), ("a.tar", False), ("c.tar", True)]
    assert preloads.idle.is_set()
    assert Archive  # (the type preload plans with)


async def test_the_reconciler_starts_a_unit_once_its_archive_is_in(tmp_path: Path) -> None:
    docker = FakeDocker()
    published: list[Any] = []
    preloads = Preloads(published.append)
    other = "corral/other:latest"
    preloads.expect({"/i/console.tar": (IMAGE,), "/i/docker.tar": (other,)})
    handler, _, _ = make(tmp_path, {"console": svc(restart="always"),
                                    "docker": svc(restart="always", image=other)},
                         docker=docker, preloads=preloads)
    docker.images[other] = "sha256:other"
    preloads.finished("/i/docker.tar", True)
    await handler.reconcile(True)
    await settle(handler)
    assert ("start", "docker") in docker.calls
    assert not any(name == "console" for _, name in docker.calls)  # no create, no failed start
    status = handler.unit_status("console")
    assert status["waiting"] == WAIT.format("console.tar") and status["failures"] == 0, status
    assert status["next_start_in"] is None
    preloads.finished("/i/console.tar", True)  # the image is in
    await settle(handler)
    assert ("start", "console") in docker.calls
    assert handler.unit_status("console")["state"] == "running"
    assert handler.unit_status("console")["restarts"] == 0
    await handler.close()


async def test_a_failed_load_ends_the_wait_and_the_unit_fails_naming_its_image(tmp_path: Path) -> None:
    docker = FakeDocker()
    preloads = Preloads(lambda event: None)
    preloads.expect({"/i/console.tar": (IMAGE,)})
    docker.images.pop(IMAGE, None)
    handler, _, _ = make(tmp_path, {"console": svc(restart="always")}, docker=docker, preloads=preloads)
    await handler.reconcile(True)
    await settle(handler)
    assert not any(name == "console" for _, name in docker.calls)
    preloads.finished("/i/console.tar", False)
    await settle(handler)
    assert ("create", "console") in docker.calls
    assert "No such image" in str(handler.unit_status("console")["error"])
    await handler.close()


class FirstWave:
    """A units reconciler's first wave: up once ``up`` is set."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.units = {"console": object()}
        self.graph = None
        self.waits: list[float] = []
        self.timed_out = asyncio.Event()

    async def wait_first_wave(self, timeout: float) -> bool:
        self.waits.append(timeout)
        try:
            await asyncio.wait_for(self.up.wait(), timeout)
        except TimeoutError:
            self.timed_out.set()
            return False
        return True

    def unit_status(self, name: str) -> dict[str, Any]:
        return {"state": "running"}


async def test_the_first_waves_bound_does_not_count_the_archives_loads(monkeypatch: Any) -> None:
    """The units phase's 60 s are the units' own: a console waiting for its 20 MB archive under a loaded
    machine (50 s) is not taken for a first wave that failed to come up."""
    from supervisor.boot.units import UnitsBoot

    monkeypatch.setattr("supervisor.boot.units.FIRST_WAVE_TIMEOUT", 0.05)
    wave = FirstWave()
    preloads = Preloads(lambda event: None)
    preloads.expect({"/i/console.tar": (IMAGE,)})
    booted = UnitsBoot(wave, None, SimpleNamespace(ready=True), lambda: False,  # type: ignore[arg-type]
                       preloads)
    phase = asyncio.ensure_future(booted.wait_first_wave())
    await asyncio.wait_for(wave.timed_out.wait(), 30)  # the first bound ran out while the archive loads
    for _ in range(10):
        await asyncio.sleep(0)
    assert not phase.done()  # no failure: it waits for the load, then gives the units their own bound
    preloads.finish_all()
    wave.up.set()
    await asyncio.wait_for(phase, 5)
    assert len(wave.waits) == 2
    # with nothing loading, the bound is the bound
    other = FirstWave()
    booted = UnitsBoot(other, None, SimpleNamespace(ready=True), lambda: False,  # type: ignore[arg-type]
                       preloads)
    with pytest.raises(RuntimeError, match="first wave of units not up"):
        await booted.wait_first_wave()


async def test_the_smallest_archive_loads_first_and_the_next_waits_for_it_or_its_head_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Side by side, dockerd's loads share the CPU: a 30 KB archive took 3.5 s beside a 19 MiB one under
    TCG, holding back the unit that needs only it. The smallest begins first; the next when it ends, or
    after the head start if it hangs."""
    images = tmp_path / "images"
    images.mkdir()
    write_archive(images / "a.tar", [{"RepoTags": ["a:1"]}], before=400)  # the biggest, first by name
    write_archive(images / "b.tar", [{"RepoTags": ["b:1"]}], before=50)
    write_archive(images / "c.tar", [{"RepoTags": ["c:1"]}])  # the smallest
    runtime = LoadingRuntime()
    started: list[str] = []
    load = runtime.load_image

    async def recording(path: Path) -> Any:
        started.append(path.name)
        STARTED.set()
        return await load(path)

    runtime.load_image = recording  # type: ignore[method-assign]
    monkeypatch.setattr(images_mod, "HEAD_START", 3600.0)
    paths = type("P", (), {"state_dir": tmp_path / "state"})()
    task = asyncio.ensure_future(preload(runtime, paths, directories=[images]))  # type: ignore[arg-type]
    await settle_for(lambda: started == ["c.tar"])
    for _ in range(50):
        await asyncio.sleep(0)
    assert started == ["c.tar"]  # the next waits for it
    runtime.gates["c.tar"].set()
    await settle_for(lambda: started == ["c.tar", "b.tar"])
    runtime.gates["b.tar"].set()
    await settle_for(lambda: started == ["c.tar", "b.tar", "a.tar"])
    runtime.gates["a.tar"].set()
    result: PreloadResult = await asyncio.wait_for(task, 30)
    assert sorted(result.loaded) == [str(images / "b.tar"), str(images / "c.tar")]  # (a.tar fails)

    # a load that hangs holds the next back by the head start only
    monkeypatch.setattr(images_mod, "HEAD_START", 0.05)
    (tmp_path / "state" / "preload.json").unlink()
    runtime = LoadingRuntime()
    started.clear()
    load = runtime.load_image
    runtime.load_image = recording  # type: ignore[method-assign]
    task = asyncio.ensure_future(preload(runtime, paths, directories=[images]))  # type: ignore[arg-type]
    await settle_for(lambda: started == ["c.tar", "b.tar", "a.tar"])  # no gate opened: each hangs
    for gate in runtime.gates.values():
        gate.set()
    await asyncio.wait_for(task, 30)


async def settle_for(predicate: Any, timeout: float = 30.0) -> None:
    """Until ``predicate()`` holds: each load's start sets ``STARTED``."""
    async def wait() -> None:
        while not predicate():
            STARTED.clear()
            await STARTED.wait()

    await asyncio.wait_for(wait(), timeout)


STARTED = asyncio.Event()
