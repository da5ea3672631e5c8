"""The user's commands on a unit (handlers/units/commands.py) against a fake dockerd: `down` is a
deliberate stop, remembered for unless-stopped; `up` undoes it; `restart` stops and starts the
container; `inspect` shows what corral would create and what dockerd has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.units_fakes import IMAGE, make, settle, svc


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


async def test_restart_stops_and_starts_the_same_container_without_counting_a_restart(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"web": svc(restart="unless-stopped")})
    await settle(handler)
    cid = docker.by_name("web")["Id"]
    docker.calls.clear()
    status = await handler.restart("web")
    assert docker.calls == [("stop", "web"), ("start", "web")]
    assert status["state"] == "running" and status["restarts"] == 0 and status["container"] == cid[:12]
    assert not (tmp_path / "stops.json").exists()  # never remembered as a stop
    await handler.close()


async def test_up_of_a_running_unit_changes_nothing(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")})
    await settle(handler)
    docker.calls.clear()
    assert (await handler.up("web"))["state"] == "running"
    assert docker.calls == []
    await handler.close()


async def test_commands_on_an_unknown_unit_raise_key_error(tmp_path: Path) -> None:
    handler, _, _ = make(tmp_path, {"web": svc()})
    await settle(handler)
    for command in (handler.up, handler.down, handler.restart, handler.inspect):
        with pytest.raises(KeyError):
            await command("nope")
    await handler.close()


async def test_inspect_shows_the_units_order_create_request_and_container(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"db": svc(), "app": svc(labels={"io.corral.after": "db"})})
    await settle(handler)
    seen = await handler.inspect("app")
    assert seen["name"] == "app" and seen["state"] == "running" and seen["after"] == ["db"]
    assert seen["image_id"] == "sha256:busybox" and seen["requires_mounts"] == []
    assert seen["create"]["Image"] == IMAGE and seen["create"]["Labels"]["io.corral.unit"] == "app"
    assert seen["inspect"]["Id"] == docker.by_name("app")["Id"]
    assert seen["source"] == "config"
    del docker.containers[docker.by_name("app")["Id"]]  # gone behind corral's back
    assert (await handler.inspect("app"))["inspect"] is None
    await handler.close()
