"""The cloud-config modules' boot phases (handlers/cloudconfig/): what runs when.

- ``sysctl`` (early, after the journal's storage): the ``corral.sysctl`` reconciler, applied now (the
  phase waits) and kept on every change of the key;
- ``bootcmd``: the boot waits for each command (bounded by its timeout);
- ``write-files``: the entries without ``defer`` (the phase waits); the reconciler then writes new or
  changed entries at once on every change of ``write_files``;
- once the boot phases are done (``after_boot``): the deferred files, then ``runcmd``, in the background
  (stopped at shutdown)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

import structlog

from handlers.cloudconfig.commands import BOOTCMD, BOOTCMD_TIMEOUT, RUNCMD, RUNCMD_TIMEOUT, run_commands
from handlers.cloudconfig.sysctl import SysctlKeeper
from handlers.cloudconfig.write_files import WriteFilesKeeper
from supervisor.boot.context import BootContext
from supervisor.config.proxy import proxy_environment
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor")

SYSCTL_SOURCE = "sysctl"  # the degraded entry naming what is not applied


@dataclass
class CloudModules:
    """The phases' bodies, and what they built (for status)."""

    ctx: BootContext
    sysctl: SysctlKeeper | None = None
    files: WriteFilesKeeper | None = None

    async def start_sysctl(self) -> None:
        ctx = self.ctx

        def report(problems: dict[str, str]) -> None:
            if problems:
                ctx.degrade(SYSCTL_SOURCE, f"not applied: {', '.join(sorted(problems))}")
            else:
                ctx.clear(SYSCTL_SOURCE)

        keeper = self.sysctl = SysctlKeeper(ctx.domains.sysctl, sandbox=ctx.sandbox, report=report)
        try:
            await keeper.reconcile(full=True)
        finally:
            ctx.add_handler(keeper, initial_full=False)

    def command_env(self) -> dict[str, str]:
        """PID 1's environment and corral.network's proxies (as the dockerds and units get them)."""
        return {**os.environ, **proxy_environment(self.ctx.config())}

    async def run_bootcmd(self) -> None:
        await run_commands(self.ctx.processes, self.ctx.domains.commands(BOOTCMD), BOOTCMD, BOOTCMD_TIMEOUT,
                           self.command_env())

    async def start_write_files(self) -> None:
        keeper = self.files = WriteFilesKeeper(self.ctx.paths, self.ctx.domains.write_files)
        try:
            await keeper.reconcile(full=True)
        finally:
            self.ctx.add_handler(keeper, initial_full=False)

    def after_boot(self) -> None:
        """The deferred files, then ``runcmd``, in a task of their own (the boot is done: nothing waits)."""
        ctx, files = self.ctx, self.files

        async def body() -> None:
            if files is not None:
                files.deferred_too = True
                try:
                    await files.reconcile(full=True)
                except Exception as exc:  # a bug here must not keep runcmd from running
                    log.error("deferred write_files failed", error=repr(exc))
            await run_commands(ctx.processes, ctx.domains.commands(RUNCMD), RUNCMD, RUNCMD_TIMEOUT,
                               self.command_env())

        task = spawn_task(body(), name="runcmd")

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        ctx.stops.add("runcmd", stop)

    def status(self) -> dict[str, object]:
        return {"sysctl": None if self.sysctl is None else self.sysctl.status(),
                "write_files": None if self.files is None else self.files.status()}
