"""Control-socket commands of the units: ``units.list``, ``units.inspect``, ``units.up``,
``units.down``, ``units.restart``, ``units.enable``, ``units.disable``. Thin: each calls the
units reconciler (handlers.units) or the config store.

- ``units.list {}`` -> ``[UnitStatus]``, by name
- ``units.inspect {name}`` -> ``UnitStatus`` plus ``after``, ``source``, ``create`` (the create
  request), ``image_id`` and ``inspect`` (dockerd's inspect of the container, or null)
- ``units.up|down|restart {name}`` -> ``UnitStatus`` once done (``down`` waits for the stop)
- ``units.enable|disable {name}`` -> ``{generation, changed}``: ``corral.services_include.NAME`` set
  to true or false, persisted and applied (like ``corral config set``).
- ``debug.init_watch {name, watch}`` -> ``{name, watch}``: watch the unit's container inits through
  pidfds (the default) or not (its exits are then told by dockerd's ``die`` alone); needs
  ``corral.debug: true``. For measuring the two paths side by side."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from supervisor.config.keypath import format_path
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer
from units.unitfiles import SHIPPED_DIR, find_included

if TYPE_CHECKING:
    from handlers.units.reconciler import UnitsReconciler
    from supervisor.commands.host import Host


def register(server: ControlServer, sup: Host) -> None:
    ServiceCommands(sup).register(server)


class ServiceCommands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup

    def register(self, server: ControlServer) -> None:
        server.register("units.list", self.list)
        server.register("units.inspect", self.inspect)
        server.register("units.up", self.up)
        server.register("units.down", self.down)
        server.register("units.restart", self.restart)
        server.register("units.enable", self.enable)
        server.register("units.disable", self.disable)
        server.register("debug.init_watch", self.init_watch)

    def _units(self) -> UnitsReconciler:
        units = self.sup.units
        if units is None:
            raise ControlError("units are not running (the system docker is off in this boot)")
        return units

    def _name(self, args: dict[str, Any]) -> str:
        name = str(args["name"])
        if name not in self._units().units:
            raise ControlError(f"no such unit: {name}")
        return name

    async def init_watch(self, args: dict[str, Any]) -> Any:
        if not self.sup.setting("debug", False):
            raise ControlError("debug commands need corral.debug: true")
        name, watch = self._name(args), bool(args.get("watch", True))
        units = self._units()
        units.actions.inits.switch(name, watch)
        units.wake.poke()  # a unit watched again is armed by the next reconcile
        return {"name": name, "watch": watch}

    async def list(self, args: dict[str, Any]) -> Any:
        return self._units().list_status()

    async def inspect(self, args: dict[str, Any]) -> Any:
        return await self._units().inspect(self._name(args))

    async def up(self, args: dict[str, Any]) -> Any:
        return await self._units().up(self._name(args))

    async def down(self, args: dict[str, Any]) -> Any:
        return await self._units().down(self._name(args))

    async def restart(self, args: dict[str, Any]) -> Any:
        return await self._units().restart(self._name(args))

    async def enable(self, args: dict[str, Any]) -> Any:
        return await self._include(str(args["name"]), True)

    async def disable(self, args: dict[str, Any]) -> Any:
        return await self._include(str(args["name"]), False)

    async def _include(self, name: str, on: bool) -> Any:
        if on:  # refuse before persisting anything: a config naming a missing file would be rejected
            _files, problems = await asyncio.to_thread(  # looks for the unit file: off the loop
                find_included, {name: True}, [self.sup.paths.units_dir, SHIPPED_DIR])
            if problems:
                raise ControlError(problems[0].message)
        key = format_path(("corral", "services_include", name))
        errors = await self.sup.config_worker.run(self.sup.config.set, key, "true" if on else "false")
        if errors:
            raise ControlError("; ".join(str(e) for e in errors))
        result = await self.sup.reload()
        if not result.get("applied"):
            raise ControlError("; ".join(result.get("errors", [])))
        return {"generation": result["generation"], "changed": result["changed"]}
