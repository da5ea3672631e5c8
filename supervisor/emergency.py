"""When PID 1's own start-up fails, drop to a shell on the console instead of panicking the kernel."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import structlog

from supervisor.process import INHERIT, ProcessManager

log = structlog.get_logger("supervisor.emergency")

DEFAULT_SHELL = ("/bin/sh",)


async def emergency_shell(processes: ProcessManager, reason: str, argv: Sequence[str] = DEFAULT_SHELL,
                          console: int | None = None, respawn: bool = True) -> None:
    """Run the shell on ``console`` (or our own stdio), with the reason in its environment. On a real
    host it runs again whenever it exits, since there is nothing else to do; the sandbox passes
    ``respawn=False`` and shuts down afterwards."""
    env = dict(os.environ, CORRAL_EMERGENCY_REASON=reason, PS1="corral emergency# ")
    stream: str | int = console if console is not None else INHERIT
    while True:
        if console is not None:
            os.write(console, f"\ncorral: start-up failed: {reason}\ncorral: emergency shell\n".encode())
        log.critical("start-up failed; emergency shell", reason=reason, shell=list(argv))
        try:
            child = processes.spawn(argv, name="emergency-shell", env=env, stdin=stream, stdout=stream,
                                    stderr=stream, new_session=True)
            status = await child.wait()
            log.warning("emergency shell exited", status=status.describe())
        except OSError as exc:
            log.critical("cannot start the emergency shell", error=str(exc))
            if respawn:
                await asyncio.sleep(5)
        if not respawn:
            return


def open_console() -> int | None:
    """The kernel console, for a real PID 1 only."""
    try:
        return os.open("/dev/console", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
