"""Control-socket commands of Docker Swarm: ``swarm.status`` and ``swarm.token``. Thin: each asks the
swarm reconciler (handlers/swarm/), whose dockerd failures become the command's error. The control
socket is root-only, so the join tokens are given to root only.

- ``swarm.status {}`` -> the reconciler's status, with the node's id, role, availability, labels,
  managers, reachability and the swarm tasks running here
- ``swarm.token {kind}`` -> ``{kind, token}``"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer
from units.runtime import DockerAPIError, DockerUnavailable

if TYPE_CHECKING:
    from handlers.swarm.reconciler import SwarmHandler
    from supervisor.commands.host import Host


def register(server: ControlServer, sup: Host) -> None:
    SwarmCommands(sup).register(server)


class SwarmCommands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup

    def register(self, server: ControlServer) -> None:
        server.register("swarm.status", self.status)
        server.register("swarm.token", self.token)

    def _swarm(self) -> SwarmHandler:
        if self.sup.swarm is None:
            raise ControlError("swarm is not managed in this boot (the system docker is off)")
        return self.sup.swarm

    async def status(self, args: dict[str, Any]) -> Any:
        try:
            return await self._swarm().live()
        except (DockerUnavailable, DockerAPIError) as exc:
            raise ControlError(f"the user dockerd: {exc}") from None

    async def token(self, args: dict[str, Any]) -> Any:
        kind = str(args["kind"])
        try:
            return {"kind": kind, "token": await self._swarm().token(kind)}
        except (DockerUnavailable, DockerAPIError) as exc:
            raise ControlError(str(exc.message if isinstance(exc, DockerAPIError) else exc)) from None
