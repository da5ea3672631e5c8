"""A fake dockerd and clock for the tests of the units reconciler (handlers/units/), and the helpers that
build a reconciler on them (``make``) and run it until it has nothing in flight (``settle``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from handlers.units.dockerds import Daemon
from handlers.units.reconciler import UnitsReconciler
from supervisor.bus import Bus
from units.loader import Loaded, build_units, load_units
from units.model import LABEL_UNIT, Unit
from units.runtime import ContainerState, LogLine, NotFound
from units.unitfiles import parse_unit_text

IMAGE = "corral/busybox:latest"


class FakeDocker:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.images: dict[str, str] = {IMAGE: "sha256:busybox"}
        self.calls: list[tuple[str, str]] = []
        self.ids = itertools.count(1)
        self.fail_start: set[str] = set()
        self.inspected: list[str] = []  # image references looked up

    def by_name(self, name: str) -> dict[str, Any]:
        return next(c for c in self.containers.values() if c["Names"] == [f"/{name}"] or c["Id"] == name)

    def exit(self, name: str, code: int) -> str:
        c = self.by_name(name)
        c["State"], c["Status"] = "exited", f"Exited ({code}) Less than a second ago"
        return str(c["Id"])


class FakeRuntime:
    def __init__(self, docker: FakeDocker) -> None:
        self.docker = docker
        self.closed = False

    async def list_summaries(self, *, label: str | None = LABEL_UNIT,
                             all: bool = True) -> list[dict[str, Any]]:
        return [dict(c) for c in self.docker.containers.values() if all or c["State"] == "running"]

    async def image_inspect(self, ref: str) -> dict[str, Any] | None:
        self.docker.inspected.append(ref)
        image = self.docker.images.get(ref)
        return None if image is None else {"Id": image}

    async def create(self, body: Mapping[str, Any], *, name: str | None = None) -> str:
        assert name is not None
        self.docker.calls.append(("create", name))
        if body["Image"] not in self.docker.images:
            raise NotFound(404, f"create {name}: No such image: {body['Image']}")
        cid = f"{next(self.docker.ids):064d}"
        self.docker.containers[cid] = {"Id": cid, "Names": [f"/{name}"], "Labels": dict(body["Labels"]),
                                       "State": "created", "Status": "Created",
                                       "ImageID": self.docker.images[body["Image"]], "Body": dict(body)}
        return cid

    async def start(self, container: str) -> None:
        self.docker.calls.append(("start", container))
        if container in self.docker.fail_start:
            raise NotFound(404, f"start {container}: bind source path does not exist")
        c = self.docker.by_name(container)
        c["State"], c["Status"] = "running", "Up Less than a second"

    async def stop(self, container: str, *, timeout: int = 10) -> None:
        c = self.docker.by_name(container)
        self.docker.calls.append(("stop", c["Names"][0][1:]))
        c["State"], c["Status"] = "exited", "Exited (0) Less than a second ago"

    async def remove(self, container: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.docker.by_name(container)
        self.docker.calls.append(("remove", c["Names"][0][1:]))
        del self.docker.containers[c["Id"]]

    async def rename(self, container: str, name: str) -> None:
        c = self.docker.by_name(container)
        self.docker.calls.append(("rename", name))
        c["Names"] = [f"/{name}"]

    async def inspect(self, container: str) -> ContainerState | None:
        try:
            c = self.docker.by_name(container)
        except StopIteration:
            return None
        raw = {"Id": c["Id"], "Name": c["Names"][0], "Config": {"Labels": c["Labels"]},
               "State": {"Status": c["State"], "Running": c["State"] == "running", "Pid": c.get("Pid", 0)}}
        return ContainerState.from_inspect(raw)

    async def wait(self, container: str, *, timeout: float | None, condition: str = "not-running") -> int:
        """The container's exit code (the tests make it exit first: dockerd has processed the exit)."""
        c = self.docker.by_name(container)
        self.docker.calls.append(("wait", c["Names"][0][1:]))
        assert c["State"] != "running", "a fake wait would block"
        found = re.search(r"\((-?\d+)\)", c["Status"])
        return int(found.group(1)) if found else -1

    @contextlib.asynccontextmanager
    async def events(self, **_: Any) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        async def never() -> AsyncIterator[dict[str, Any]]:
            await asyncio.Event().wait()
            yield {}

        yield never()

    async def follow_logs(self, container: str, **_: Any) -> AsyncIterator[LogLine]:
        for line in ():
            yield line

    async def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, services: dict[str, Any], docker: FakeDocker | None = None,
         clock: Clock | None = None, **options: Any) -> tuple[UnitsReconciler, FakeDocker, dict[str, Any]]:
    """A reconciler of ``services`` (``corral.services``) on the system dockerd ``docker``; ``state``
    holds the config and its generation (change both to reload). ``options`` go to the reconciler."""
    docker = docker or FakeDocker()
    cfg: dict[str, Any] = {"corral": {"services": services}}
    state = {"config": cfg, "generation": 1}
    options.setdefault("runtime_factory", lambda _socket: FakeRuntime(docker))
    handler = UnitsReconciler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: True)},
        loaded=loaded_by_generation(lambda: state["config"], lambda: int(state["generation"])),
        stops_file=tmp_path / "stops.json", clock=clock or Clock(), **options,
    )
    return handler, docker, state


async def settle(handler: UnitsReconciler, rounds: int = 10) -> None:
    """Reconcile until no unit has work in flight."""
    for _ in range(rounds):
        await handler.reconcile(False)
        busy = [t for t in handler.actions.busy.values() if not t.done()]
        if not busy:
            return
        await asyncio.gather(*busy)
    raise AssertionError("did not settle")


def svc(command: str = "sleep 600", **extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "command": command, **extra}


def units_of(text: str) -> dict[str, Unit]:
    """The units of a unit file's text (compose services at the top level)."""
    raws, errors = parse_unit_text(text, "t.yml")
    units, _graph, more = build_units(raws, {})
    assert not errors and not more, (errors, more)
    return units


def unit_of(text: str, name: str) -> Unit:
    return units_of(text)[name]

def loaded_by_generation(config: Callable[[], Mapping[str, Any]],
                         generation: Callable[[], int]) -> Callable[[], Loaded]:
    """What the config store gives the units reconciler: the units of the config in force, loaded once
    per generation (the same object until the generation changes). A test's configs load."""
    seen: dict[int, Loaded] = {}

    def get() -> Loaded:
        g = generation()
        if g not in seen:
            seen.clear()
            seen[g] = load_units(config())
            assert seen[g].ok, seen[g].errors
        return seen[g]

    return get
