"""Boot wiring for the udev source, the devices handler, the state partition and the storage handler.

The supervisor calls, in its boot phases (see docs/storage.md)::

    self.storage = StorageServices()
    await self._phase("devices", lambda: start_devices(self.ctx, self.storage))     # coldplug
    await self._phase("state", lambda: start_storage(self.ctx, self.storage))       # state + mounts:

``start_devices`` subscribes the devices handler, loads ``corral.modules``, then starts the udev
source (monitor opened, then coldplug). ``start_storage`` finds/mounts the state partition (raising
``StateEmergency`` when it is required and missing: make that phase fatal, or check
``services.state``), then starts the storage handler, which follows config changes. Both register
what they start with the context (``ctx.add_handler``, ``ctx.stops``). ``services.status()`` is what
``storage.status`` returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from handlers.devices import DevicesHandler, parse_modules
from handlers.storage import StorageHandler
from storage.observe import Observer, Prober
from storage.rules import StateRule, parse_storage
from storage.state import STATE_MOUNT, StateResult, prepare_state
from supervisor.sources.udev import UdevSource

if TYPE_CHECKING:
    from supervisor.boot.context import BootContext

log = structlog.get_logger("storage")


class StateEmergency(RuntimeError):
    """``corral.state.required`` and no state partition: the phase should drop to the emergency shell."""


@dataclass
class StorageServices:
    udev: UdevSource | None = None
    devices: DevicesHandler | None = None
    storage: StorageHandler | None = None
    state: StateResult | None = None

    def status(self) -> dict[str, Any]:
        return {
            "udev": self.udev.status() if self.udev else None,
            "devices": self.devices.status() if self.devices else None,
            "state": self.state.to_dict() if self.state else None,
            "storage": self.storage.status() if self.storage else None,
        }


async def start_devices(ctx: BootContext, services: StorageServices, *,
                        modprobe: tuple[str, ...] = ("modprobe",), udev_source: str | None = None,
                        background_coldplug: bool = False) -> None:
    """Boot phase "devices": the devices handler (subscribed first, so it sees the coldplug events),
    ``corral.modules``, then the udev source (monitor, then coldplug; with ``background_coldplug`` the
    coldplug runs on while the next phases do: ``services.udev.coldplugged()`` waits for it)."""
    from supervisor import kmod

    devices = DevicesHandler(ctx.processes, ctx.bus, modprobe=modprobe, resolve=kmod.lookup_many)
    services.devices = devices
    ctx.add_handler(devices, initial_full=False)  # the source's coldplug resync is its first reconcile
    specs, errors = parse_modules(ctx.setting("modules", None))
    for error in errors:
        log.error("config problem", error=error)
    results = await devices.load_modules(specs)
    udev = UdevSource(ctx.bus, source=udev_source)
    services.udev = udev
    await udev.start(background=background_coldplug)
    ctx.stops.add("udev source", udev.stop)
    failed = [name for name, code in results.items() if code != 0]
    if failed:
        raise RuntimeError(f"modules not loaded: {', '.join(failed)}")


async def start_storage(ctx: BootContext, services: StorageServices, *, target: Path = STATE_MOUNT,
                        observer: Observer | None = None, find_state: bool = True) -> bool:
    """Boot phase "state": find or make the state partition and mount it at ``target``; then the storage
    handler for ``mounts:``. Needs the udev source running (it waits for block uevents). ``observer``
    (tests) limits the devices considered. True when a state partition was mounted at ``target`` (the
    caller unmounts it at shutdown, after everything else)."""
    parsed = parse_storage(ctx.config())
    state_rule = parsed.rules.state if parsed.rules is not None else StateRule()
    for error in parsed.errors:
        log.error("storage rules rejected", error=str(error))
    observer = observer or Observer(Prober(ctx.processes))
    if find_state:
        services.state = await prepare_state(state_rule, observer, ctx.processes, ctx.bus, target)
    mounted = services.state is not None and services.state.outcome in ("found", "formatted")
    storage = StorageHandler(ctx.processes, ctx.bus, config=ctx.domains.storage, observer=observer,
                             root=ctx.paths.prefix)
    services.storage = storage
    runner = ctx.add_handler(storage, initial_full=True)
    storage.sourced.poke = runner.mark_dirty  # an NFS try that ended, a retry that is due
    if services.state is not None and services.state.outcome == "emergency":
        raise StateEmergency(services.state.reason)
    return mounted
