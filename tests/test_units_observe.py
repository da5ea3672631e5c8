"""Observing the units' containers (handlers/units/observe.py): a listing entry as plan's input, each
unit's current container, which dockerds are listed and what a dockerd that does not answer does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from handlers.units.dockerds import Daemon, Dockerds
from handlers.units.image_ids import ImageIds
from handlers.units.observe import ContainerView, current_containers, exit_code_of, observed_from_summary
from supervisor.bus import Bus
from tests.units_fakes import Clock, FakeDocker, FakeRuntime, loaded_by_generation, make, settle, svc, unit_of
from units.model import LABEL_HASH, LABEL_UNIT, USER_DOCKERD_UNIT
from units.plan import ObservedContainer
from units.runtime import DockerUnavailable


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


def seen(cid: str, unit: str, state: str, scope: Any = "system") -> ObservedContainer:
    return ObservedContainer(cid, unit, {LABEL_UNIT: unit, LABEL_HASH: "h"}, state, scope=scope)


def test_current_container_is_the_running_one_else_the_first_of_the_units_scope() -> None:
    units = {"web": unit_of("web:\n  image: x\n", "web"), "db": unit_of("db:\n  image: x\n", "db")}
    observed = [seen("a", "web", "exited"), seen("b", "web", "running"), seen("c", "db", "exited"),
                seen("d", "db", "created"), seen("e", "db", "running", "user"), seen("f", "gone", "running")]
    current = current_containers(units, observed)
    assert {name: c.id for name, c in current.items()} == {"web": "b", "db": "c"}


class Unanswering(FakeRuntime):
    async def list_summaries(self, *, label: str | None = LABEL_UNIT,
                             all: bool = True) -> list[dict[str, Any]]:
        raise DockerUnavailable("connection refused")


async def test_a_dockerd_that_does_not_answer_is_unreachable_and_its_clients_dropped(tmp_path: Path) -> None:
    made: list[FakeRuntime] = []

    def factory(_socket: Path) -> Any:
        made.append(Unanswering(FakeDocker()))
        return made[-1]

    dockerds = Dockerds({"system": Daemon("system", tmp_path / "s.sock", lambda: True)}, factory)
    view = ContainerView(dockerds, ImageIds(Bus(), dockerds, Clock()))
    assert await view.observe({}) == []
    assert view.reachable == set()
    await asyncio.sleep(0)  # its client is closed in the background
    assert len(made) == 1 and made[0].closed
    await view.observe({})
    assert len(made) == 2  # a new client for the next look
    await dockerds.close()


async def test_the_user_dockerd_is_listed_only_when_units_run_there(tmp_path: Path) -> None:
    docker, user = FakeDocker(), FakeDocker()
    listed: list[Path] = []

    def factory(socket: Path) -> Any:
        listed.append(socket)
        return FakeRuntime(user if socket.name == "user.sock" else docker)

    dockerds = Dockerds({"system": Daemon("system", tmp_path / "system.sock", lambda: True),
                         "user": Daemon("user", tmp_path / "user.sock", lambda: True)}, factory)
    view = ContainerView(dockerds, ImageIds(Bus(), dockerds, Clock()))
    system_unit = unit_of("web:\n  image: x\n", "web")
    await view.observe({"web": system_unit})
    assert view.reachable == {"system"} and listed == [tmp_path / "system.sock"]
    user_unit = unit_of("app:\n  image: x\n  labels:\n    io.corral.scope: user\n", "app")
    await view.observe({"web": system_unit, "app": user_unit})
    assert view.reachable == {"system", "user"}
    await dockerds.close()


async def test_keep_remembers_current_and_leaving_containers(tmp_path: Path) -> None:
    dockerds = Dockerds({})
    view = ContainerView(dockerds, ImageIds(Bus(), dockerds, Clock()))
    view.reachable = {"system"}
    units = {"web": unit_of("web:\n  image: x\n", "web")}
    view.keep(units, units, [seen("a", "web", "running"), seen("b", "old", "exited"),
                             seen("c", "away", "exited", "user")])
    assert set(view.current) == {"web"} and set(view.leaving) == {"old"}  # the user dockerd did not answer
    view.created("new", "n1", {LABEL_UNIT: "new"}, "system")
    assert view.current["new"].state == "created"
    started = view.started("new", 1234.5)
    assert started is not None and started.id == "n1" and view.current["new"].state == "running"
    assert view.last_start == {"new": 1234.5}
    assert view.started("nope", 1.0) is None
    view.keep({"new": units["web"]}, {}, [])
    assert view.last_start == {"new": 1234.5}  # kept while the unit is configured
    view.keep(units, units, [])
    assert view.last_start == {}


async def test_the_user_dockerd_is_followed_from_when_its_unit_is_configured(tmp_path: Path) -> None:
    """With the user dockerd's unit configured, its events source starts at the first reconcile, before
    its socket answers: the source retries by itself, so its coming up (and the preload of its images
    that follows) never waits for some later reconcile to look."""
    docker = FakeDocker()
    followed: list[str] = []
    from handlers.units.reconciler import UnitsReconciler

    handler = UnitsReconciler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: True),
                "user": Daemon("user", tmp_path / "user.sock", lambda: False)},
        loaded=loaded_by_generation(lambda: {"corral": {"services": {USER_DOCKERD_UNIT: svc()}}}, lambda: 1),
        stops_file=tmp_path / "stops.json", clock=Clock(), follow_events=followed.append,
        runtime_factory=lambda _socket: FakeRuntime(docker),  # type: ignore[arg-type,return-value]
    )
    await settle(handler)
    assert followed and set(followed) == {"user"}
    await handler.close()

    followed.clear()
    other, _, _ = make(tmp_path, {"web": svc()}, follow_events=followed.append)
    await settle(other)
    assert followed == []  # no user dockerd configured, no user units: not followed
    await other.close()
