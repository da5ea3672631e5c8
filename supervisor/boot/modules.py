"""The cloud-config modules' boot phases (handlers/cloudconfig/): what runs when.

- ``sysctl`` (early, after the journal's storage): the ``corral.sysctl`` reconciler, applied now and
  kept on every change of the key;
- ``bootcmd``: the boot waits for each command (bounded by its timeout);
- ``write-files``: the entries without ``defer``; the reconciler writes new or changed entries at once
  on every change of ``write_files``;
- once the boot phases are done (``after_boot``): the deferred files, then ``runcmd`` in the background
  (stopped at shutdown)."""

from __future__ import annotations

import asyncio

import structlog

from handlers.cloudconfig.commands import BOOTCMD, BOOTCMD_TIMEOUT, RUNCMD, RUNCMD_TIMEOUT, run_commands
from handlers.cloudconfig.sysctl import SysctlKeeper
from handlers.cloudconfig.write_files import WriteFilesKeeper
from supervisor.boot.context import BootContext
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor")

SYSCTL_SOURCE = "sysctl"  # the degraded entry naming what is not applied


async def start_sysctl(ctx: BootContext) -> SysctlKeeper:
    """Apply ``corral.sysctl`` now (the phase waits), then keep it on every change of the key."""
    def report(problems: dict[str, str]) -> None:
        if problems:
            ctx.degrade(SYSCTL_SOURCE, f"not applied: {', '.join(sorted(problems))}")
        else:
            ctx.clear(SYSCTL_SOURCE)

    keeper = SysctlKeeper(ctx.domains.sysctl, sandbox=ctx.sandbox, report=report)
    try:
        await keeper.reconcile(full=True)
    finally:
        ctx.add_handler(keeper, initial_full=False)
    return keeper


async def run_bootcmd(ctx: BootContext) -> None:
    await run_commands(ctx.processes, ctx.domains.commands(BOOTCMD), BOOTCMD, BOOTCMD_TIMEOUT)


async def start_write_files(ctx: BootContext) -> WriteFilesKeeper:
    """Write the entries without ``defer`` now (the phase waits), then keep them on config changes."""
    keeper = WriteFilesKeeper(ctx.paths, ctx.domains.write_files)
    try:
        await keeper.reconcile(full=True)
    finally:
        ctx.add_handler(keeper, initial_full=False)
    return keeper


def after_boot(ctx: BootContext, files: WriteFilesKeeper | None) -> None:
    """The deferred files, then ``runcmd``, in a task of their own (the boot is done: nothing waits)."""

    async def body() -> None:
        if files is not None:
            files.deferred_too = True
            try:
                await files.reconcile(full=True)
            except Exception as exc:  # a bug here must not keep runcmd from running
                log.error("deferred write_files failed", error=repr(exc))
        await run_commands(ctx.processes, ctx.domains.commands(RUNCMD), RUNCMD, RUNCMD_TIMEOUT)

    task = spawn_task(body(), name="runcmd")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    ctx.stops.add("runcmd", stop)
