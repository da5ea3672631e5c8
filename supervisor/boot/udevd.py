"""Boot wiring of udevd as a process PID 1 supervises (``corral.udev``; handlers/udevd.py)."""

from __future__ import annotations

from handlers.processes import ProcessKeeper
from handlers.udevd import Udevd, parse_udevd_config
from supervisor.boot.context import BootContext


async def start_udevd(ctx: BootContext, keeper: ProcessKeeper) -> Udevd:
    """Boot phase "devices", before the udev source: read ``corral.udev``, and when it is on, make sure
    the ProcessKeeper's runner runs (it would otherwise start with the handlers phase), start udevd and
    wait until it is ready. Call ``attach(source)`` on the result once the udev source exists."""
    cfg = parse_udevd_config(ctx.setting("udev", None))
    udevd = Udevd(ctx.processes, keeper, cfg, sandbox=ctx.sandbox, degrade=ctx.degrade, clear=ctx.clear,
                  config=lambda: ctx.setting("udev", None))
    ctx.add_handler(keeper)
    ctx.add_handler(udevd, initial_full=False)  # follows corral.udev changes
    ctx.stops.add("udevd", lambda: udevd.stop(ctx.grace))
    if cfg.enabled:
        await udevd.start()
    return udevd
