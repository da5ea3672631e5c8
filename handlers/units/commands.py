"""The user's commands on one unit (``corral units up|down|restart|inspect``; ``supervisor.service_api``
calls them through the reconciler). A deliberate stop (``down``) is never undone by the restart policy
until ``up``; under ``unless-stopped`` it is remembered across supervisor restarts (the stops file,
``DesiredUnits.save_stops``). Each command reconciles at once and returns the unit's status when its own
work (a stop, a start) is done and observed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from handlers.units.desired import DesiredUnits
from handlers.units.dockerds import Dockerds
from handlers.units.image_ids import ImageIds
from handlers.units.required_mounts import RequiredMounts
from handlers.units.status import UnitsStatus
from units.policy import RUNNING
from units.runtime import DockerAPIError, DockerUnavailable
from units.spec import create_request

log = structlog.get_logger("units")


class UnitCommands:
    def __init__(
        self,
        desired: DesiredUnits,
        status: UnitsStatus,
        *,
        reconcile: Callable[[bool], Awaitable[None]],
        running: Callable[[str], asyncio.Task[None] | None],
        dockerds: Dockerds,
        images: ImageIds,
        mounts: RequiredMounts,
    ) -> None:
        self.desired = desired
        self.status = status
        self.reconcile = reconcile
        self.running = running  # the unit's action in flight, if any
        self.dockerds = dockerds
        self.images = images
        self.mounts = mounts

    async def down(self, name: str) -> dict[str, Any]:
        """A deliberate stop: the policy never restarts it until ``up`` (remembered for unless-stopped)."""
        self.desired.policy(name).deliberately_stopped()
        await self._save_stops()
        log.info("unit stopped by the user", unit=name)
        await self._settle(name)
        return self.status.unit_status(name)

    async def up(self, name: str) -> dict[str, Any]:
        """Forget a deliberate stop and the backoff; start it (when its dependencies allow)."""
        policy = self.desired.policy(name)
        if policy.stopped or policy.state() != RUNNING:
            policy.resume()
            await self._save_stops()
            log.info("unit started by the user", unit=name)
        await self._settle(name)
        return self.status.unit_status(name)

    async def restart(self, name: str) -> dict[str, Any]:
        self.desired.policy(name).deliberately_stopped()
        log.info("unit restarted by the user", unit=name)
        await self._settle(name)
        self.desired.policy(name).resume()
        await self._save_stops()
        await self._settle(name)
        return self.status.unit_status(name)

    async def _save_stops(self) -> None:
        """The deliberate stops are on disk when the command returns."""
        saving = self.desired.save_stops()
        if saving is not None:
            await saving

    async def _settle(self, name: str, rounds: int = 5) -> None:
        """Reconcile now and wait for the unit's own work (a stop, a start) to be done and observed."""
        for _ in range(rounds):
            await self.reconcile(False)
            task = self.running(name)
            if task is None:
                return
            await asyncio.gather(task, return_exceptions=True)

    async def inspect(self, name: str) -> dict[str, Any]:
        """The unit's status, its dependencies, required mounts and create request, and dockerd's
        inspect of its container (None: none, or dockerd not answering)."""
        status = self.status.unit_status(name)
        unit = self.desired.units[name]
        graph = self.desired.graph
        container: Any = None
        runtime = self.dockerds.runtime(unit.scope)
        if runtime is not None:
            with contextlib.suppress(DockerUnavailable, DockerAPIError):
                found = await runtime.inspect(name)
                container = dict(found.raw) if found is not None else None
        return {
            **status,
            "after": sorted(graph.deps.get(name, ())) if graph is not None else [],
            "requires_mounts": [m.to_dict() for m in self.mounts.of(unit)],
            "source": unit.source,
            "create": create_request(unit, self.images.ids.get(unit.image)),
            "image_id": self.images.ids.get(unit.image),
            "inspect": container,
        }
