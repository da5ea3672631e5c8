"""Control-socket commands of the installed disk's boot slots: ``os.list`` and ``os.rollback``. Thin: the
decisions are osdisk/selection.py's, the disk's reads and writes osdisk/bootdisk.py's (in a thread).

- ``os.list {}`` -> ``{slots: [{slot, version, complete, problem, active, default, next}], active,
  default, next, trial_pending, version, rolled_back}``
- ``os.rollback {}`` -> ``{default, previous, version}``: the other slot is the default from the next
  boot on; refused (nothing written) when it holds no complete version."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from osdisk import bootdisk, selection
from supervisor import __version__
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer

if TYPE_CHECKING:
    from supervisor.boot.slots import BootSlots
    from supervisor.commands.host import Host


def register(server: ControlServer, sup: Host) -> None:
    OsCommands(sup).register(server)


class OsCommands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup
        self._lock = asyncio.Lock()  # one rollback at a time (the block's own flock covers other writers)

    def register(self, server: ControlServer) -> None:
        server.register("os.list", self.list)
        server.register("os.rollback", self.rollback)

    def _slots(self) -> BootSlots:
        slots = self.sup.slots
        if slots is None:
            raise ControlError("the boot slots are not known yet (the slots boot phase did not run)")
        return slots

    async def _read(self) -> tuple[BootSlots, selection.BootEnv, dict[str, bootdisk.SlotInfo]]:
        slots = self._slots()
        try:
            env = selection.BootEnv.of(await asyncio.to_thread(bootdisk.read_env, slots.location))
        except bootdisk.BootDiskError as exc:
            raise ControlError(str(exc)) from None
        infos = {}
        for slot in selection.SLOTS:
            infos[slot] = await asyncio.to_thread(bootdisk.read_slot, slot, slots.location)
        return slots, env, infos

    async def list(self, args: dict[str, Any]) -> Any:
        slots, env, infos = await self._read()
        nxt = env.next_slot()
        return {
            "slots": [{**info.to_dict(), "active": slot == slots.slot, "default": slot == env.default_slot,
                       "next": slot == nxt} for slot, info in infos.items()],
            "active": slots.slot, "default": env.default_slot, "next": nxt,
            "trial_pending": env.trial_pending or None, "version": __version__,
            "rolled_back": slots.report,
        }

    async def rollback(self, args: dict[str, Any]) -> Any:
        async with self._lock:
            slots, env, infos = await self._read()
            try:
                complete = {s: i.complete for s, i in infos.items()}
                target, changes = selection.rollback(env, slots.slot, complete)
            except selection.SelectionError as exc:
                problem = infos[selection.other(slots.slot or env.default_slot)].problem
                raise ControlError(f"{exc}" + (f" ({problem})" if problem else "")) from None
            if slots.cancel_trial():  # this boot is a trial: it must not become the default at ready
                changes = {**selection.reported(), **changes}
            try:
                await asyncio.to_thread(bootdisk.update_env, slots.location, changes)
            except bootdisk.BootDiskError as exc:
                raise ControlError(str(exc)) from None
        return {"default": target, "previous": env.default_slot, "version": infos[target].version}
