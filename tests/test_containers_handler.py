"""The units reconciler (handlers.containers) against a fake dockerd: what it does on boot, on a `die`,
on a config change, with a missing image, for a deliberate stop; and its pure helpers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from handlers.containers import (
    ContainersHandler,
    Daemon,
    exit_code_of,
    localize,
    observed_from_summary,
)
from supervisor.bus import Bus
from supervisor.events.docker import ContainerEvent
from units.loader import build_units, parse_unit_text
from units.model import LABEL_HASH, LABEL_UNIT, USER_DOCKERD_UNIT
from units.runtime import ContainerState, LogLine, NotFound

IMAGE = "corral/busybox:latest"


# ---- pure helpers -------------------------------------------------------------------------------------
def test_exit_code_of_a_listing_status() -> None:
    assert exit_code_of("Exited (137) 2 seconds ago") == 137
    assert exit_code_of("Exited (0) Less than a second ago") == 0
    assert exit_code_of("Restarting (1) 3 seconds ago") == 1
    assert exit_code_of("Up 3 seconds") is None
    assert exit_code_of("Created") is None


def test_observed_from_summary_and_foreign_containers() -> None:
    raw = {"Id": "abc", "Names": ["/web"], "Labels": {LABEL_UNIT: "web", LABEL_HASH: "h"}, "State": "exited",
           "Status": "Exited (3) 1 second ago", "ImageID": "sha256:1"}
    seen = observed_from_summary(raw, "system")
    assert (seen.unit, seen.name, seen.state, seen.exit_code, seen.image_id) == ("web", "web", "exited", 3,
                                                                                 "sha256:1")
    # The unit label without corral's config hash: someone else's container, never touched.
    foreign = observed_from_summary({**raw, "Labels": {LABEL_UNIT: "web"}}, "system")
    assert foreign.unit is None and foreign.name == "web"


def unit_of(text: str, name: str) -> Any:
    raws, errors = parse_unit_text(text, "t.yml")
    units, _graph, more = build_units(raws, {})
    assert not errors and not more
    return units[name]


def test_localize_moves_state_paths_under_the_sandbox_only() -> None:
    u = unit_of("d:\n  image: x\n  volumes:\n    - /var/lib/user-docker:/var/lib/docker\n"
                "    - /var/run:/host/run\n    - /run/x:/x:ro\n    - /etc/ssl/certs:/etc/ssl/certs:ro\n"
                "    - named:/data\n    - /anon\n", "d")
    assert localize(u, None) is u
    moved = localize(u, Path("/sb"))
    assert [v.source for v in moved.volumes] == ["/sb/var/lib/user-docker", "/sb/run", "/sb/run/x",
                                                 "/etc/ssl/certs", "named", None]
    assert [v.options for v in moved.volumes] == [v.options for v in u.volumes]


# ---- a fake dockerd --------------------------------------------------------------------------------
class FakeDocker:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.images: dict[str, str] = {IMAGE: "sha256:busybox"}
        self.calls: list[tuple[str, str]] = []
        self.ids = itertools.count(1)
        self.fail_start: set[str] = set()

    def by_name(self, name: str) -> dict[str, Any]:
        return next(c for c in self.containers.values() if c["Names"] == [f"/{name}"] or c["Id"] == name)

    def exit(self, name: str, code: int) -> str:
        c = self.by_name(name)
        c["State"], c["Status"] = "exited", f"Exited ({code}) Less than a second ago"
        return str(c["Id"])


class FakeRuntime:
    def __init__(self, docker: FakeDocker) -> None:
        self.docker = docker

    async def list_summaries(self, *, label: str | None = LABEL_UNIT,
                             all: bool = True) -> list[dict[str, Any]]:
        return [dict(c) for c in self.docker.containers.values() if all or c["State"] == "running"]

    async def image_inspect(self, ref: str) -> dict[str, Any] | None:
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

    async def inspect(self, container: str) -> ContainerState | None:
        try:
            c = self.docker.by_name(container)
        except StopIteration:
            return None
        raw = {"Id": c["Id"], "Name": c["Names"][0], "Config": {"Labels": c["Labels"]},
               "State": {"Status": c["State"]}}
        return ContainerState.from_inspect(raw)

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
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, services: dict[str, Any], docker: FakeDocker | None = None,
         clock: Clock | None = None) -> tuple[ContainersHandler, FakeDocker, dict[str, Any]]:
    docker = docker or FakeDocker()
    cfg: dict[str, Any] = {"corral": {"services": services}}
    state = {"config": cfg, "generation": 1}
    handler = ContainersHandler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: True)},
        config=lambda: state["config"], generation=lambda: int(state["generation"]),
        stops_file=tmp_path / "stops.json", clock=clock or Clock(),
        runtime_factory=lambda _socket: FakeRuntime(docker),  # type: ignore[arg-type,return-value]
    )
    return handler, docker, state


async def settle(handler: ContainersHandler, rounds: int = 10) -> None:
    """Reconcile until no unit has work in flight."""
    for _ in range(rounds):
        await handler.reconcile(False)
        busy = [t for t in handler._busy.values() if not t.done()]
        if not busy:
            return
        await asyncio.gather(*busy)
    raise AssertionError("did not settle")


def svc(command: str = "sleep 600", **extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "command": command, **extra}


async def test_boot_starts_waves_and_oneshot_dependents_wait_for_its_exit(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {
        "init": svc(labels={"io.corral.oneshot": "true"}),
        "data": svc(labels={"io.corral.createonly": "true"}),
        "app": svc(restart="always", labels={"io.corral.after": "init, data"}),
    })
    await handler.reconcile(True)
    await settle(handler)
    assert ("start", "init") in docker.calls and ("create", "data") in docker.calls
    assert not any(name == "app" for _, name in docker.calls)  # the oneshot still runs
    assert handler.unit_status("app")["waiting"] == "waiting for init"
    assert handler.unit_status("data")["state"] == "created"
    assert handler._first_wave.is_set()
    docker.exit("init", 3)  # a failed oneshot: its dependents still start
    await settle(handler)
    assert ("start", "app") in docker.calls
    assert handler.unit_status("init")["state"] == "failed"
    assert handler.unit_status("app")["state"] == "running"
    await handler.close()


async def test_die_event_restarts_at_once_even_before_the_listing_shows_it(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    cid = next(iter(docker.containers))
    docker.calls.clear()
    clock.now += 2
    # dockerd publishes `die` while its listing still says running: the tap starts it at once.
    handler.note(ContainerEvent(daemon="system", action="die", container_id=cid, name="web", unit="web",
                                exit_code=137))
    await settle(handler)
    assert docker.calls == [("start", "web")]
    status = handler.unit_status("web")
    assert status["restarts"] == 1 and status["last_exit"] == 137 and status["state"] == "running"
    # The listing catches up later: nothing more happens.
    await settle(handler)
    assert docker.calls == [("start", "web")]
    await handler.close()


class GatedRuntime(FakeRuntime):
    """Starts wait for ``start_gate``; a listing, once ``hold_listing`` is set, is taken at once and
    returned only when ``list_gate`` opens (a slow dockerd answering with what it saw)."""

    def __init__(self, docker: FakeDocker, gates: dict[str, asyncio.Event]) -> None:
        super().__init__(docker)
        self.gates = gates

    async def start(self, container: str) -> None:
        await self.gates["start"].wait()
        await super().start(container)

    async def list_summaries(self, *, label: str | None = LABEL_UNIT,
                             all: bool = True) -> list[dict[str, Any]]:
        listed = await super().list_summaries(label=label, all=all)
        if self.gates["hold_listing"].is_set():
            self.gates["listing_taken"].set()
            await self.gates["list"].wait()
        return listed


async def test_a_listing_taken_before_a_start_ended_is_not_an_exit(tmp_path: Path) -> None:
    """A reconcile lists (the unit still `created`), the unit's start ends meanwhile, then the reconcile
    goes on: the stale listing must not count as the unit's exit (seen in CI: a restart, exit_code None,
    4 ms after "unit started")."""
    docker = FakeDocker()
    gates = {name: asyncio.Event() for name in ("start", "list", "hold_listing", "listing_taken")}
    state = {"config": {"corral": {"services": {"web": svc(restart="always")}}}, "generation": 1}
    handler = ContainersHandler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: True)},
        config=lambda: state["config"], generation=lambda: 1, stops_file=tmp_path / "stops.json",
        clock=Clock(), runtime_factory=lambda _socket: GatedRuntime(docker, gates),  # type: ignore[arg-type,return-value]
    )
    await handler.reconcile(True)  # create, then start (held)
    assert list(handler._busy) == ["web"]  # its create and start: a task in flight
    gates["hold_listing"].set()
    stale = asyncio.create_task(handler.reconcile(False))
    await gates["listing_taken"].wait()  # it saw `created`
    gates["start"].set()
    await asyncio.gather(*handler._busy.values())  # the start ended: no task in flight any more
    gates["list"].set()
    await stale
    gates["hold_listing"].clear()
    await settle(handler)
    status = handler.unit_status("web")
    assert status["restarts"] == 0 and status["state"] == "running", status
    assert docker.calls.count(("start", "web")) == 1
    await handler.close()


async def test_on_failure_exit_0_stays_down_and_on_failure_n_gives_up(tmp_path: Path) -> None:
    clock = Clock()
    services = {"ok": svc(restart="on-failure"), "three": svc(restart="on-failure:3")}
    handler, docker, _ = make(tmp_path, services, clock=clock)
    await settle(handler)
    docker.exit("ok", 0)
    for _ in range(5):
        if docker.by_name("three")["State"] == "running":
            docker.exit("three", 1)
        await settle(handler)  # the exit reaches the policy: a restart is scheduled (0, 0.1, 0.2 s)
        clock.now += 1
        await settle(handler)  # due: started again
    assert handler.unit_status("ok")["state"] == "exited"
    three = handler.unit_status("three")
    assert three["state"] == "failed" and three["restarts"] == 3
    assert docker.calls.count(("start", "three")) == 4 and docker.calls.count(("start", "ok")) == 1
    await handler.close()


async def test_missing_image_is_retried_on_the_policys_schedule_only(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker()
    docker.images.clear()
    handler, docker, _ = make(tmp_path, {"late": svc()}, docker=docker, clock=clock)
    for _ in range(5):
        await settle(handler)
    # first failure retried at once, then after 0.1 s: not in a loop
    assert docker.calls.count(("create", "late")) == 2
    status = handler.unit_status("late")
    assert status["state"] == "restarting" and "No such image" in status["error"]
    clock.now += 0.1
    await settle(handler)
    assert docker.calls.count(("create", "late")) == 3
    docker.images[IMAGE] = "sha256:new"
    handler._images_stale = True  # what an image event does
    await settle(handler)
    assert handler.unit_status("late")["state"] == "running"  # before its next retry was due (0.2 s)
    await handler.close()


async def test_config_change_recreates_only_the_changed_unit(tmp_path: Path) -> None:
    handler, docker, state = make(tmp_path, {"keep": svc(restart="always"), "change": svc(restart="always")})
    await settle(handler)
    docker.calls.clear()
    state["config"] = {"corral": {"services": {"keep": svc(restart="unless-stopped"),
                                               "change": svc("sleep 601", restart="always"),
                                               "new": svc()}}}
    state["generation"] = 2
    await settle(handler)
    assert ("stop", "change") in docker.calls and ("remove", "change") in docker.calls
    assert ("start", "change") in docker.calls and ("start", "new") in docker.calls
    assert not any(name == "keep" for _, name in docker.calls)  # only its policy changed
    assert handler.policies["keep"].restart.name == "unless-stopped"
    state["config"] = {"corral": {"services": {"keep": svc(restart="unless-stopped")}}}
    state["generation"] = 3
    await settle(handler)
    assert sorted(c["Names"][0] for c in docker.containers.values()) == ["/keep"]
    await handler.close()


async def test_deliberate_stop_is_honoured_and_remembered_for_unless_stopped(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"web": svc(restart="unless-stopped"), "job": svc(restart="always")})
    await settle(handler)
    assert (await handler.down("web"))["state"] == "stopped"
    assert (await handler.down("job"))["state"] == "stopped"
    await settle(handler)
    assert docker.by_name("web")["State"] == "exited"
    assert json.loads((tmp_path / "stops.json").read_text())["stopped"] == ["web"]
    # A new supervisor (same state directory): web stays down, job comes back.
    again, _, _ = make(tmp_path, {"web": svc(restart="unless-stopped"), "job": svc(restart="always")},
                             docker=docker)
    await settle(again)
    assert again.unit_status("web")["state"] == "stopped"
    assert docker.by_name("job")["State"] == "running"
    assert (await again.up("web"))["state"] == "running"
    assert json.loads((tmp_path / "stops.json").read_text())["stopped"] == []
    await handler.close()
    await again.close()


async def test_failed_start_counts_and_unknown_unit(tmp_path: Path) -> None:
    clock = Clock()
    docker = FakeDocker()
    docker.fail_start.add("bad")
    handler, docker, _ = make(tmp_path, {"bad": svc(restart="no")}, docker=docker, clock=clock)
    await settle(handler)
    status = handler.unit_status("bad")
    assert status["state"] == "restarting" and status["failures"] == 2  # retried even under `no`
    assert "bind source" in status["error"]
    with pytest.raises(KeyError):
        handler.unit_status("nope")
    await handler.close()


def test_parse_log_timestamps() -> None:
    from units.logs import parse_timestamp

    assert parse_timestamp("2024-05-01T12:00:00.123456789Z hello world") == (
        1714564800123456789, "hello world")
    assert parse_timestamp("2024-05-01T12:00:00Z x") == (1714564800000000000, "x")
    assert parse_timestamp("no stamp here") == (None, "no stamp here")


async def test_the_user_dockerd_is_followed_from_when_its_unit_is_configured(tmp_path: Path) -> None:
    """With the user dockerd's unit configured, its events source starts at the first reconcile, before
    its socket answers: the source retries by itself, so its coming up (and the preload of its images
    that follows) never waits for some later reconcile to look."""
    docker = FakeDocker()
    followed: list[str] = []
    handler = ContainersHandler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: True),
                "user": Daemon("user", tmp_path / "user.sock", lambda: False)},
        config=lambda: {"corral": {"services": {USER_DOCKERD_UNIT: svc()}}}, generation=lambda: 1,
        stops_file=tmp_path / "stops.json", clock=Clock(), follow_events=followed.append,
        runtime_factory=lambda _socket: FakeRuntime(docker),  # type: ignore[arg-type,return-value]
    )
    await settle(handler)
    assert followed and set(followed) == {"user"}
    await handler.close()

    followed.clear()
    other, _, _ = make(tmp_path, {"web": svc()})
    other.follow_events = followed.append
    await settle(other)
    assert followed == []  # no user dockerd configured, no user units: not followed
    await other.close()


async def test_a_unit_taken_out_of_the_config_is_listed_as_removing_until_its_container_is_gone(
        tmp_path: Path) -> None:
    """`service disable` (or a config change) must not make a unit vanish from `service list` while its
    container still exists: it shows as `removing` until a reconcile sees the container gone."""
    handler, docker, state = make(tmp_path, {"web": svc(), "extra": svc()})
    await settle(handler)
    gate = asyncio.Event()
    real_remove = FakeRuntime.remove

    async def slow_remove(self: FakeRuntime, container: str, *, force: bool = False,
                          volumes: bool = False) -> None:
        await gate.wait()
        await real_remove(self, container, force=force, volumes=volumes)

    FakeRuntime.remove = slow_remove  # type: ignore[method-assign]
    try:
        state["config"] = {"corral": {"services": {"web": svc()}}}
        state["generation"] = 2
        await handler.reconcile(False)
        rows = {u["name"]: u for u in handler.list_status()}
        assert rows["extra"]["state"] == "removing" and rows["extra"]["container"] is not None
        assert rows["web"]["state"] == "running"
        gate.set()
        await settle(handler)
        assert [u["name"] for u in handler.list_status()] == ["web"]
        assert not any(c["Names"] == ["/extra"] for c in docker.containers.values())
    finally:
        FakeRuntime.remove = real_remove  # type: ignore[method-assign]
        await handler.close()
