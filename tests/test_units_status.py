"""What the units reconciler reports (handlers/units/status.py): each unit's status, units no longer
configured while their container is still there, and when the first wave counts as settled. (Which
units are not up, and waiting for them: tests/test_units_ready.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.units_fakes import Clock, FakeDocker, FakeRuntime, make, settle, svc


async def test_unit_status_fields(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always"), "data": svc(
        labels={"io.corral.createonly": "true"})}, clock=clock)
    handler.load()
    assert handler.unit_status("data")["state"] == "pending"  # no container yet
    await settle(handler)
    clock.now += 2.5
    web = handler.unit_status("web")
    assert web == {
        "name": "web", "scope": "system", "state": "running", "restarts": 0, "failures": 0, "uptime": 2.5,
        "last_exit": None, "next_start_in": None, "restart": "always", "image": "corral/busybox:latest",
        "container": docker.by_name("web")["Id"][:12], "container_state": "running", "oneshot": False,
        "createonly": False, "waiting": None, "error": None, "notes": []}
    data = handler.unit_status("data")
    assert (data["state"], data["container_state"], data["createonly"]) == ("created", "created", True)
    docker.exit("web", 2)
    await settle(handler)
    docker.exit("web", 2)
    await settle(handler)
    web = handler.unit_status("web")
    assert (web["state"], web["restarts"], web["last_exit"], web["next_start_in"], web["uptime"]) == (
        "restarting", 2, 2, 0.1, None)
    assert [row["name"] for row in handler.list_status()] == ["data", "web"]
    assert handler.report.states() == {"restarting": 1, "created": 1}
    await handler.close()


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


async def test_the_first_wave_waits_for_its_units_to_start_or_fail(tmp_path: Path) -> None:
    docker = FakeDocker()
    docker.images.clear()  # nothing can be created yet
    handler, docker, _ = make(tmp_path, {"data": svc(labels={"io.corral.createonly": "true"}),
                                         "web": svc(), "app": svc(labels={"io.corral.after": "web"})},
                              docker=docker)
    handler.load()
    handler.report.check_first_wave()
    assert not await handler.wait_first_wave(0.01)
    await handler.reconcile(True)
    assert not handler.report.first_wave.is_set()  # the creates are on their way
    await asyncio.gather(*handler.actions.busy.values())
    # The create of both failed: a failed createonly unit and a failed start are settled.
    assert handler.unit_status("data")["error"] and handler.unit_status("web")["error"]
    handler.report.check_first_wave()
    assert await handler.wait_first_wave(5)
    await handler.close()


async def test_no_units_no_wave_to_wait_for(tmp_path: Path) -> None:
    handler, _, _ = make(tmp_path, {})
    handler.load()
    handler.report.check_first_wave()
    assert handler.report.first_wave.is_set() and await handler.wait_first_wave(5)
    await handler.close()
