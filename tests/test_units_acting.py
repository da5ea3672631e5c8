"""Carrying out the plan and the fast restart path (handlers/units/acting.py) against a fake dockerd: a
`die` restarts at once when the policy says so (the same decision the reconcile makes), anything else is
left to the reconcile; a dockerd that stops answering mid-action is not a failure of the unit; units
stop at shutdown in reverse order, the user's first."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from handlers.units.acting import stop_in_order
from handlers.units.dockerds import Daemon, Dockerds
from handlers.units.reconciler import UnitsReconciler
from supervisor.events.docker import ContainerEvent
from tests.units_fakes import IMAGE, Clock, FakeDocker, FakeRuntime, make, settle, svc, units_of
from units.runtime import DockerUnavailable


def die(handler: UnitsReconciler, docker: FakeDocker, name: str, code: int, **more: Any) -> None:
    """dockerd's `die` for the unit's container, now, while its listing still says running."""
    cid = docker.by_name(name)["Id"]
    more.setdefault("time_nano", time.time_ns())
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id=cid, name=name, unit=name,
                                      exit_code=code, **more))


async def test_die_event_restarts_at_once_even_before_the_listing_shows_it(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    docker.calls.clear()
    clock.now += 2
    # dockerd publishes `die` while its listing still says running: the tap starts it at once.
    die(handler, docker, "web", 137)
    assert list(handler.actions.busy) == ["web"]  # the start is on its way before any reconcile
    await settle(handler)
    assert docker.calls == [("start", "web")]
    status = handler.unit_status("web")
    assert status["restarts"] == 1 and status["last_exit"] == 137 and status["state"] == "running"
    # The listing catches up later: nothing more happens.
    await settle(handler)
    assert docker.calls == [("start", "web")]
    await handler.close()


async def test_the_fast_path_and_the_reconcile_decide_the_same(tmp_path: Path) -> None:
    """One unit's crashes reach it as `die` events, the other's only through the listing: the same
    decisions (restarts, failures, delays, giving up), as both call units.plan.decide_exit."""
    clock = Clock()
    services = {"fast": svc(restart="on-failure:3"), "slow": svc(restart="on-failure:3")}
    handler, docker, _ = make(tmp_path, services, clock=clock)
    await settle(handler)
    seen: dict[str, list[tuple[Any, ...]]] = {"fast": [], "slow": []}
    for _ in range(5):
        if docker.by_name("fast")["State"] == "running":
            die(handler, docker, "fast", 1)
            docker.exit("fast", 1)
        if docker.by_name("slow")["State"] == "running":
            docker.exit("slow", 1)
        await settle(handler)
        for name in seen:
            s = handler.unit_status(name)
            seen[name].append((s["state"], s["restarts"], s["failures"], s["last_exit"], s["next_start_in"]))
        clock.now += 1
        await settle(handler)
    assert seen["fast"] == seen["slow"]
    assert seen["fast"][-1][:3] == ("failed", 3, 4)
    assert docker.calls.count(("start", "fast")) == docker.calls.count(("start", "slow")) == 4
    await handler.close()


async def test_an_exit_without_a_restart_is_decided_once_by_the_fast_path(tmp_path: Path) -> None:
    clock = Clock()
    services = {"once": svc(restart="no"), "ok": svc(restart="on-failure")}
    handler, docker, _ = make(tmp_path, services, clock=clock)
    await settle(handler)
    docker.calls.clear()
    die(handler, docker, "once", 3)
    die(handler, docker, "ok", 0)
    assert handler.unit_status("once")["state"] == "failed"  # decided before any listing shows it
    assert handler.unit_status("ok")["state"] == "exited"
    assert handler.actions.busy == {}
    docker.exit("once", 3)
    docker.exit("ok", 0)
    await settle(handler)
    clock.now += 60
    await settle(handler)
    assert docker.calls == []
    once = handler.unit_status("once")
    assert (once["state"], once["restarts"], once["last_exit"]) == ("failed", 0, 3)
    await handler.close()


async def test_a_restart_with_a_delay_is_left_to_the_timer(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    die(handler, docker, "web", 1)  # the first restart: at once
    await settle(handler)
    docker.calls.clear()
    die(handler, docker, "web", 1)  # the second within 10 s: after 0.1 s
    assert handler.actions.busy == {}
    status = handler.unit_status("web")
    assert status["state"] == "restarting" and status["next_start_in"] == 0.1
    await settle(handler)
    assert docker.calls == []
    clock.now += 0.1
    await settle(handler)
    assert docker.calls == [("start", "web")] and handler.unit_status("web")["restarts"] == 2
    await handler.close()


async def test_a_die_the_fast_path_does_not_own_is_left_to_the_reconcile(tmp_path: Path) -> None:
    clock = Clock()
    services = {"web": svc(restart="always"),
                "init": svc(restart="always", labels={"io.corral.oneshot": "true"})}
    handler, docker, _ = make(tmp_path, services, clock=clock)
    await settle(handler)
    before = {name: handler.unit_status(name) for name in services}
    # An old container of the unit, another daemon, a oneshot, a unit not configured: nothing decided.
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id="old", name="web",
                                      unit="web", exit_code=1))
    handler.exits.note(ContainerEvent(daemon="user", action="die", container_id=docker.by_name("web")["Id"],
                                      name="web", unit="web", exit_code=1))
    die(handler, docker, "init", 1)
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id="x", name="nope",
                                      unit="nope", exit_code=1))
    assert {name: handler.unit_status(name) for name in services} == before
    assert handler.actions.busy == {}
    await handler.close()


async def test_a_die_from_before_the_last_start_is_history(tmp_path: Path) -> None:
    """The events source, reconnected after dockerd restarted, infers that a unit died and was started
    again while it was away (an `observed` die, no time, no exit code), or dockerd replays a die: the
    unit runs again (corral restarted it meanwhile), so neither is an exit of this run."""
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")})
    await settle(handler)
    started = handler.containers.last_start["web"]
    die(handler, docker, "web", 137, time_nano=int((started - 5) * 1e9))  # replayed
    die(handler, docker, "web", None, time_nano=0, observed=True)  # inferred
    cid = docker.by_name("web")["Id"]
    handler.exits.note(ContainerEvent(daemon="system", action="start", container_id=cid, name="web",
                                      unit="web", observed=True))
    assert handler.actions.busy == {}
    await settle(handler)
    status = handler.unit_status("web")
    assert (status["state"], status["restarts"], status["last_exit"]) == ("running", 0, None)
    await handler.close()


async def test_a_unit_with_an_action_in_flight_is_left_alone(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")})
    await settle(handler)
    task = handler.actions.busy["web"] = asyncio.get_running_loop().create_future()  # type: ignore[assignment]
    die(handler, docker, "web", 1)
    assert handler.unit_status("web")["restarts"] == 0 and handler.actions.busy["web"] is task
    task.cancel()
    await handler.close()


class Vanishing(FakeRuntime):
    """Starts are not answered while ``gone`` holds (a dockerd gone, frozen or swamped)."""

    gone = True

    async def start(self, container: str) -> None:
        if Vanishing.gone:
            raise DockerUnavailable("connection reset")
        await super().start(container)


async def test_a_dockerd_gone_mid_action_is_not_a_failure_but_the_retry_is_scheduled_and_shown(
        tmp_path: Path) -> None:
    """Not a failure of the unit (its policy is not told), but never a unit left `pending` with nothing
    scheduled (issue 14: 100 units pending for 600 s after their starts went unanswered): the retry is
    due after a backoff of its own, shown as the unit's next start, and the client (which other units'
    calls use) is kept."""
    docker = FakeDocker()
    clock = Clock()
    Vanishing.gone = True
    handler, _, _ = make(tmp_path, {"web": svc(restart="always")}, docker=docker, clock=clock,
                         runtime_factory=lambda _socket: Vanishing(docker))
    await handler.reconcile(True)  # create, then start: dockerd does not answer
    drops = handler.dockerds.drops
    await asyncio.gather(*handler.actions.busy.values())
    await handler.reconcile(False)
    status = handler.unit_status("web")
    assert (status["state"], status["failures"], status["restarts"]) == ("pending", 0, 0)
    assert status["error"] == "connection reset" and status["next_start_in"] == 0.5
    assert status["waiting"] == "dockerd did not answer; retrying"
    assert handler.dockerds.drops == drops and handler.actions.busy == {}
    assert handler.wake._at == clock.now + 0.5  # the timer that brings the retry
    Vanishing.gone = False
    clock.now += 0.5
    await settle(handler)
    status = handler.unit_status("web")
    assert (status["state"], status["error"], status["next_start_in"]) == ("running", None, None)
    assert docker.calls.count(("start", "web")) == 1  # the start dockerd answered
    await handler.close()


async def test_a_dockerd_that_is_up_but_did_not_answer_a_listing_is_looked_at_again(tmp_path: Path) -> None:
    """Its supervisor finds it healthy, so no `up` will come: the reconciler sets its own timer."""
    docker = FakeDocker()
    clock = Clock()

    class Swamped(FakeRuntime):
        async def list_summaries(self, **_: Any) -> list[dict[str, Any]]:
            raise DockerUnavailable("list containers: no answer in 30 s")

    handler, _, _ = make(tmp_path, {"web": svc(restart="always")}, docker=docker, clock=clock,
                         runtime_factory=lambda _socket: Swamped(docker))
    await handler.reconcile(True)
    assert handler.wake._at == clock.now + 0.5
    await handler.close()


async def test_units_stop_in_reverse_order_the_users_first(tmp_path: Path) -> None:
    docker, user = FakeDocker(), FakeDocker()
    calls: list[tuple[str, str]] = []
    docker.calls = user.calls = calls
    dockerds = Dockerds({"system": Daemon("system", tmp_path / "system.sock", lambda: True),
                         "user": Daemon("user", tmp_path / "user.sock", lambda: True)},
                        lambda socket: FakeRuntime(user if socket.name == "user.sock" else docker))  # type: ignore[arg-type,return-value]
    units = units_of("db:\n  image: x\napp:\n  image: x\n  labels:\n    io.corral.after: db\n"
                     "mine:\n  image: x\n  labels:\n    io.corral.scope: user\n")
    for name, unit in units.items():
        runtime = dockerds.runtime(unit.scope)
        assert runtime is not None
        labels = {"io.corral.unit": name, "io.corral.config-hash": "h"}
        await runtime.create({"Image": IMAGE, "Labels": labels}, name=name)
        await runtime.start(name)
    calls.clear()
    await stop_in_order(dockerds, units, 1)
    assert calls == [("stop", "mine"), ("stop", "app"), ("stop", "db")]
    await dockerds.close()


async def test_a_dockerd_without_units_is_not_asked_at_shutdown(tmp_path: Path) -> None:
    docker = FakeDocker()
    asked: list[str] = []

    def user_up() -> bool:
        asked.append("user")  # the wiring's check is a stat of its socket: not on the loop for nothing
        return True

    dockerds = Dockerds({"system": Daemon("system", tmp_path / "system.sock", lambda: True),
                         "user": Daemon("user", tmp_path / "user.sock", user_up)},
                        lambda _socket: FakeRuntime(docker))  # type: ignore[arg-type,return-value]
    units = units_of("db:\n  image: x\n")
    runtime = dockerds.runtime("system")
    assert runtime is not None
    await runtime.create({"Image": IMAGE, "Labels": {"io.corral.unit": "db", "io.corral.config-hash": "h"}},
                         name="db")
    await runtime.start("db")
    docker.calls.clear()
    await stop_in_order(dockerds, units, 1)
    assert docker.calls == [("stop", "db")] and asked == []
    await dockerds.close()
