"""The line ``corral <version> ready``: said once every system unit is up, after the boot phases, and once
the user dockerd has the images the OS ships for it (`docker run --rm busybox` works then)."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from handlers.units.reconciler import UnitsReconciler
from supervisor import __version__
from supervisor.boot.context import BootContext
from supervisor.journal import Journal
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor")

NOT_UP_WARNING_AFTER = 60.0  # seconds after boot before one warning names the units that are not up


def announce_ready(ctx: BootContext, units: UnitsReconciler | None, started: float,
                   stopping: Callable[[], bool],
                   also: Mapping[str, Callable[[], Awaitable[None]]] | None = None,
                   then: Callable[[], None] | None = None) -> None:
    """Say ``corral <version> ready`` now when there are no units to wait for (or the system dockerd is
    off) and nothing ``also`` to wait for, else once every unit is up and every wait in ``also`` (name ->
    waiter: the user dockerd's images) is over (a warning names what is not, after a minute); never once
    a shutdown began. ``started`` is when PID 1 started (time.time()). ``then`` is called once ready was
    said (a trial boot is marked good: supervisor/boot/slots.py)."""
    waits = dict(also or {})
    if (units is None or not units.not_up()) and not waits:
        _say_ready(ctx.journal, started, ctx.sandbox)
        if then is not None:
            then()
        return

    async def when_up() -> None:
        if units is not None:
            missing = await units.wait_all_up(NOT_UP_WARNING_AFTER)
            if missing and not stopping():
                log.warning("not every unit is up; ready when they are", units=missing,
                            after_seconds=NOT_UP_WARNING_AFTER)
                await units.wait_all_up()
        for name, wait in waits.items():
            try:
                await asyncio.wait_for(wait(), NOT_UP_WARNING_AFTER)
            except TimeoutError:
                if not stopping():
                    log.warning(f"{name}: not yet; ready when it is", after_seconds=NOT_UP_WARNING_AFTER)
                await wait()
        if not stopping():  # a shutdown began: never "ready"
            _say_ready(ctx.journal, started, ctx.sandbox)
            if then is not None:
                then()

    task = spawn_task(when_up(), name="ready")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    ctx.stops.add("ready line", stop)


def cpu_seconds() -> float:
    """PID 1's own CPU time so far (user and system, every thread; not its children's): how much of a
    boot was its own work."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def _say_ready(journal: Journal, started: float, sandbox: bool) -> None:
    # Said while the console still mirrors the journal: a console (or a test harness) waits for it.
    log.info(f"corral {__version__} ready", boot_seconds=round(time.time() - started, 3),
             cpu_seconds=cpu_seconds())
    journal.console_mirror = sandbox  # the sandbox's terminal is its journal view
