"""ACPI source: the kernel's ACPI events (power button, sleep button, lid) as ``AcpiEvent`` on the bus.

The kernel's ACPI button driver (``button.ko``, loaded for the ``LNXPWRBN``/``PNP0C0C`` devices by their
MODALIAS) reports a press to the ``acpi_event`` generic-netlink family's multicast group; pyroute2's
``AsyncAcpiEventSocket`` subscribes to it. This is what acpid reads, without acpid: a press of the power
button (QEMU's ``system_powerdown``, a hypervisor's "shut down", the real button) becomes a clean
poweroff through the same path as ``corral poweroff``.

A kernel without ACPI has no such family: the source says so once and stays idle. ``power_action`` (pure)
maps an event to what the supervisor does about it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog

from supervisor.bus import Bus
from supervisor.events import Event
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor.sources.acpi")

POWER_BUTTON = "button/power"


@dataclass(frozen=True, kw_only=True)
class AcpiEvent(Event):
    """One ACPI event: ``device_class`` such as ``button/power``, ``bus_id`` such as ``LNXPWRBN:00``.

    (The event's ``type``/``data`` words are left out: pyroute2 0.9.7 lays the kernel's struct out without
    the padding byte after ``bus_id[15]`` and reads them shifted by a byte. Nothing here needs them.)"""

    kind: ClassVar[str] = "acpi"
    device_class: str
    bus_id: str


def power_action(event: AcpiEvent) -> str | None:
    """``poweroff`` for a power-button press; None for anything else (sleep, lid: nothing to do here)."""
    return "poweroff" if event.device_class.split(" ")[0] == POWER_BUTTON else None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("ascii", "replace")
    return str(value or "")


def event_from_message(msg: Any) -> AcpiEvent | None:
    """A pyroute2 ``acpimsg`` (or a dict shaped like its ``ACPI_GENL_ATTR_EVENT``) -> AcpiEvent."""
    attr = msg.get("ACPI_GENL_ATTR_EVENT") if hasattr(msg, "get") else None
    if attr is None:
        return None
    return AcpiEvent(device_class=_text(attr.get("device_class")), bus_id=_text(attr.get("bus_id")))


class AcpiSource:
    """Publishes ``AcpiEvent``s; ``state`` is ``listening``, ``unavailable`` (no ACPI here) or ``stopped``."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.state = "stopped"
        self.reason = ""
        self.received = 0
        self._task: asyncio.Task[None] | None = None
        self._sock: Any = None

    def start(self) -> None:
        self._task = spawn_task(self._run(), name="source:acpi")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "received": self.received}

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _run(self) -> None:
        from pyroute2.netlink.event.acpi_event import AsyncAcpiEventSocket

        try:
            self._sock = AsyncAcpiEventSocket()
            await self._sock.setup_endpoint()  # resolves the family, joins its multicast group
        except Exception as exc:  # no CONFIG_ACPI, or the family is not registered
            self._close()
            self.state, self.reason = "unavailable", str(exc) or type(exc).__name__
            log.info("no ACPI events on this host", reason=self.reason)
            return
        self.state = "listening"
        log.info("listening for ACPI events")
        while True:
            async for msg in self._sock.get():
                event = event_from_message(msg)
                if event is None:
                    continue
                self.received += 1
                log.info("ACPI event", device_class=event.device_class, bus_id=event.bus_id)
                self.bus.publish(event)


async def act_on_power_events(bus: Bus, request: Any) -> None:
    """Calls ``request(action)`` for every event ``power_action`` maps to an action (runs forever)."""
    sub = bus.subscribe("power-button", AcpiEvent)
    try:
        async for event in sub:
            if isinstance(event, AcpiEvent) and (action := power_action(event)) is not None:
                log.info("power button pressed", action=action, bus_id=event.bus_id)
                request(action)
    finally:
        sub.close()
