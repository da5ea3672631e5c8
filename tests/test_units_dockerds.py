"""The units reconciler's clients of each dockerd (handlers/units/dockerds.py): made when first needed,
none while a daemon is down, made again when it restarted, a separate one for following logs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from handlers.units.dockerds import Daemon, Dockerds
from tests.units_fakes import FakeDocker, FakeRuntime


def clients(tmp_path: Path, up: dict[str, bool], epoch: dict[str, int]
            ) -> tuple[Dockerds, list[tuple[Path, FakeRuntime]]]:
    made: list[tuple[Path, FakeRuntime]] = []

    def factory(socket: Path) -> Any:
        made.append((socket, FakeRuntime(FakeDocker())))
        return made[-1][1]

    daemons = {"system": Daemon("system", tmp_path / "system.sock", lambda: up["system"],
                                lambda: epoch["system"]),
               "user": Daemon("user", tmp_path / "user.sock", lambda: up["user"])}
    return Dockerds(daemons, factory), made


async def test_one_client_per_dockerd_while_it_is_up(tmp_path: Path) -> None:
    up, epoch = {"system": True, "user": False}, {"system": 1}
    dockerds, made = clients(tmp_path, up, epoch)
    first = dockerds.runtime("system")
    assert first is not None and dockerds.runtime("system") is first and len(made) == 1
    assert dockerds.runtime("user") is None and len(made) == 1  # down: no client
    up["system"] = False
    assert dockerds.runtime("system") is None
    await dockerds.close()
    assert made[0][1].closed


async def test_a_restarted_dockerd_gets_a_new_client_and_the_old_is_closed(tmp_path: Path) -> None:
    up, epoch = {"system": True, "user": False}, {"system": 1}
    dockerds, made = clients(tmp_path, up, epoch)
    first = dockerds.runtime("system")
    drops = dockerds.drops
    assert dockerds.epoch("system") == 1
    epoch["system"] = 2
    second = dockerds.runtime("system")
    assert second is not None and second is not first and dockerds.epoch("system") == 2
    assert dockerds.drops == drops + 1
    await asyncio.sleep(0)  # closed in the background
    assert made[0][1].closed and not made[1][1].closed
    await dockerds.close()


async def test_logs_are_followed_through_a_client_of_their_own(tmp_path: Path) -> None:
    up, epoch = {"system": True, "user": True}, {"system": 1}
    dockerds, made = clients(tmp_path, up, epoch)
    calls = dockerds.runtime("user")
    logs = dockerds.log_runtime("user")
    assert logs is not None and logs is not calls and dockerds.log_runtime("user") is logs
    assert [socket.name for socket, _ in made] == ["user.sock", "user.sock"]
    assert dockerds.log_runtime("system") is not dockerds.runtime("system")
    up["user"] = False
    assert dockerds.log_runtime("user") is None
    dockerds.drop("user")
    await dockerds.close()
    await asyncio.sleep(0)
    assert all(runtime.closed for _, runtime in made)
