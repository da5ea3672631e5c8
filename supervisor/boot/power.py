"""The ACPI power button: a press is a poweroff request, as `corral poweroff` is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from supervisor.boot.context import BootContext
from supervisor.sources.acpi import AcpiSource, act_on_power_events
from supervisor.tasks import spawn_task


def start_power_button(ctx: BootContext, request: Callable[[str], None]) -> AcpiSource:
    acpi = AcpiSource(ctx.bus)
    acpi.start()
    task = spawn_task(act_on_power_events(ctx.bus, request), name="power-button")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await acpi.stop()

    ctx.stops.add("acpi", stop)
    return acpi
