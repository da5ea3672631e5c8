"""The units reconciler (handlers/units/reconciler.py) against a fake dockerd: a reconcile from end to
end (boot in waves, exits reaching the policies, a listing older than a start), its summary for `corral
status`, and shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from handlers.units.dockerds import Daemon
from handlers.units.image_ids import ImagesChanged
from handlers.units.reconciler import UnitsReconciler
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, TimerFired
from supervisor.events.docker import ContainerEvent, DockerdState
from supervisor.events.udev import MountChanged
from tests.units_fakes import Clock, FakeDocker, FakeRuntime, loaded_by_generation, make, settle, svc
from units.model import LABEL_UNIT
from units.preloads import PreloadDone


def test_reconciler_is_named_containers_and_marked_dirty_by_its_events() -> None:
    assert UnitsReconciler.name == "containers"
    assert set(UnitsReconciler.kinds) == {ContainerEvent, ConfigChanged, DockerdState, TimerFired,
                                          ImagesChanged, MountChanged, PreloadDone}
    # a config change wakes it only when it concerns the units (corral.network: its proxies are units'
    # environment)
    assert UnitsReconciler.config_keys == ("corral.services", "corral.services_include", "corral.environment",
                                           "corral.network")


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
    assert handler.report.first_wave.is_set()
    docker.exit("init", 3)  # a failed oneshot: its dependents still start
    await settle(handler)
    assert ("start", "app") in docker.calls
    assert handler.unit_status("init")["state"] == "failed"
    assert handler.unit_status("app")["state"] == "running"
    await handler.close()


def _event(action: str, unit: str | None, container: str = "c1") -> ContainerEvent:
    return ContainerEvent(daemon="system", action=action, container_id=container, name=unit or "other",
                          unit=unit)


async def test_container_events_of_a_unit_whose_action_is_in_flight_wake_no_reconcile(tmp_path: Path) -> None:
    """The create and start events of a unit's own create and start come while its action runs: a
    reconcile then would leave the unit alone (and list every container of a wave once more), and the
    action's end asks for one. Its other events (a die), events of other units and containers, and every
    other event still wake it."""
    docker = FakeDocker()
    gates = {name: asyncio.Event() for name in ("start", "list", "hold_listing", "listing_taken")}
    handler, _, _ = make(tmp_path, {"web": svc(restart="always"), "db": svc(restart="always")},
                         docker=docker, runtime_factory=lambda _socket: GatedRuntime(docker, gates))
    await handler.reconcile(True)  # both created, their starts held
    assert set(handler.actions.in_flight()) == {"web", "db"}
    for action in ("create", "start"):
        assert not handler.wanted(_event(action, "web"))
    assert handler.wanted(_event("die", "web"))
    assert handler.wanted(_event("start", "cache"))  # a unit with nothing in flight
    assert handler.wanted(_event("destroy", None))  # not a unit's container (a `container:NAME` peer)
    assert handler.wanted(TimerFired(name="containers"))  # the action's end asks this way
    assert handler.wanted(ConfigChanged(generation=2, changed=("corral.services",)))
    gates["start"].set()
    await asyncio.gather(*handler.actions.busy.values())
    assert handler.wanted(_event("start", "web"))  # nothing in flight any more
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
                             all: bool = True) -> list[dict[str, object]]:
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
    handler, _, _ = make(tmp_path, {"web": svc(restart="always")}, docker=docker,
                         runtime_factory=lambda _socket: GatedRuntime(docker, gates))
    await handler.reconcile(True)  # create, then start (held)
    assert list(handler.actions.busy) == ["web"]  # its create and start: a task in flight
    gates["hold_listing"].set()
    stale = asyncio.create_task(handler.reconcile(False))
    await gates["listing_taken"].wait()  # it saw `created`
    gates["start"].set()
    await asyncio.gather(*handler.actions.busy.values())  # the start ended: no task in flight any more
    gates["list"].set()
    await stale
    gates["hold_listing"].clear()
    await settle(handler)
    status = handler.unit_status("web")
    assert status["restarts"] == 0 and status["state"] == "running", status
    assert docker.calls.count(("start", "web")) == 1
    await handler.close()


async def test_a_restart_begun_and_ended_during_a_listing_is_not_an_exit(tmp_path: Path) -> None:
    """Issue 14: a reconcile lists (the unit dead: dockerd came back and shows it exited), a `die`
    meanwhile starts it again on the fast path and that start ends before the listing comes back: the
    listing is older than the start, and must not be decided as a second exit (it was: a spurious exit,
    a 0.1 s backoff, and the unit left `restarting` while it ran)."""
    docker = FakeDocker()
    clock = Clock()
    gates = {name: asyncio.Event() for name in ("start", "list", "hold_listing", "listing_taken")}
    gates["start"].set()
    handler, _, _ = make(tmp_path, {"web": svc(restart="always")}, docker=docker, clock=clock,
                         runtime_factory=lambda _socket: GatedRuntime(docker, gates))
    await settle(handler)
    clock.now += 60  # a long good run: its next restart is immediate
    cid = docker.exit("web", 137)
    gates["hold_listing"].set()
    stale = asyncio.create_task(handler.reconcile(False))
    await gates["listing_taken"].wait()  # it saw the unit exited
    assert handler.actions.busy == {}
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id=cid, name="web", unit="web",
                                      exit_code=137, time_nano=time.time_ns()))
    await asyncio.gather(*handler.actions.busy.values())  # restarted at once, and done
    assert docker.by_name("web")["State"] == "running"
    gates["list"].set()
    await stale
    gates["hold_listing"].clear()
    await settle(handler)
    status = handler.unit_status("web")
    assert (status["state"], status["restarts"], status["last_exit"]) == ("running", 1, 137), status
    assert docker.calls.count(("start", "web")) == 2
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


async def test_a_restart_not_due_yet_is_a_timer_that_asks_for_a_reconcile(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    timers = handler.wake.bus.subscribe("test", TimerFired)
    await settle(handler)
    docker.exit("web", 1)
    await settle(handler)  # the first restart is immediate
    docker.exit("web", 1)
    await handler.reconcile(False)  # the second waits 0.1 s
    assert handler.unit_status("web")["state"] == "restarting"
    while timers.get_nowait() is not None:
        pass
    clock.now += 0.1
    fired = await asyncio.wait_for(timers.get(), 5)  # the timer (0.1 s) fired
    assert isinstance(fired, TimerFired) and fired.name == "containers"
    await settle(handler)
    assert handler.unit_status("web")["state"] == "running"
    assert docker.calls.count(("start", "web")) == 3
    await handler.close()


async def test_status_summary_counts_states_and_reconciles(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always"), "job": svc()})
    await settle(handler)
    docker.exit("job", 0)
    await settle(handler)
    summary = handler.status()
    assert summary["units"] == 2 and summary["states"] == {"running": 1, "exited": 1}
    assert summary["reachable"] == ["system"] and "load_errors" not in summary
    assert summary["reconciles"] >= 2 and summary["last_reconcile_seconds"] is not None
    await handler.close()


async def test_nothing_happens_until_the_system_dockerd_answers(tmp_path: Path) -> None:
    docker = FakeDocker()
    up = {"system": False}
    handler = UnitsReconciler(
        Bus(), {"system": Daemon("system", tmp_path / "docker.sock", lambda: up["system"])},
        loaded=loaded_by_generation(lambda: {"corral": {"services": {"web": svc()}}}, lambda: 1),
        clock=Clock(),
        runtime_factory=lambda _socket: FakeRuntime(docker),  # type: ignore[arg-type,return-value]
    )
    await settle(handler)
    assert docker.calls == [] and handler.status()["reachable"] == []
    assert handler.unit_status("web")["state"] == "pending"
    up["system"] = True
    await settle(handler)
    assert docker.calls == [("create", "web"), ("start", "web")]
    await handler.close()


async def test_stop_all_stops_units_in_reverse_order_and_ends_the_reconciler(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"db": svc(), "app": svc(labels={"io.corral.after": "db"})})
    await settle(handler)
    docker.calls.clear()
    await handler.stop_all(3)
    assert docker.calls == [("stop", "app"), ("stop", "db")]
    await handler.reconcile(False)  # stopping: no reconcile any more
    assert docker.calls == [("stop", "app"), ("stop", "db")]
