"""``bootcmd`` and ``runcmd``: the user's commands, run once per boot.

Pure: ``parse_commands`` turns each entry into a ``Command``: a list is an argv, run as it is (never
through a shell); a string is shell the user wrote, run by ``sh -c`` (as cloud-init runs it). Effect:
``run_commands`` runs them one after the other, each spawned through ``supervisor.process`` (the one
reaper) in a session of its own, its stdout and stderr read line by line into the journal
(``unit=bootcmd``/``runcmd``, ``command=runcmd[2]``; a line with a level of its own, logfmt or JSON,
keeps it, as every child's output) and its exit code logged. A command that fails
(an exit code other than 0, a program that cannot be started) is a warning, and the next one runs; one
still running after its timeout is killed (SIGTERM to its process group, SIGKILL ``KILL_GRACE`` s
later). Nothing here stops the boot.

When (``supervisor/boot/modules.py``): ``bootcmd`` in the boot phase of that name, early (after the state
partition and the journal's storage, before the network and units), the boot waiting for it
(``BOOTCMD_TIMEOUT`` per command); ``runcmd`` once the boot phases are done (status says ready), in the
background (``RUNCMD_TIMEOUT`` per command). A change of either at run time takes effect at the next
boot."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from supervisor.config.errors import ConfigError, Problems, Source
from supervisor.journal.lines import parse_line
from supervisor.process import PIPE, ProcessManager
from supervisor.tasks import spawn_task

log = structlog.get_logger("handlers.commands")

BOOTCMD, RUNCMD = "bootcmd", "runcmd"
BOOTCMD_TIMEOUT = 120.0
"""Seconds one bootcmd entry may run (the boot waits for it) before it is killed."""
RUNCMD_TIMEOUT = 900.0
"""Seconds one runcmd entry may run before it is killed."""
KILL_GRACE = 5.0
"""Seconds between SIGTERM and SIGKILL to a command's process group at its timeout."""
SHELL = "/bin/sh"
OUTPUT_WAIT = 1.0
"""Seconds to wait, after a command exited, for the rest of its output (a child it left may hold the
pipe: its lines keep coming into the journal, but the next command does not wait for them)."""


@dataclass(frozen=True)
class Command:
    key: str  # runcmd[0]
    argv: tuple[str, ...]
    shell: bool  # a string the user wrote, run by sh -c

    def describe(self) -> str:
        return self.argv[2] if self.shell else " ".join(self.argv)


@dataclass(frozen=True)
class Parsed:
    commands: tuple[Command, ...]
    errors: tuple[ConfigError, ...]
    warnings: tuple[ConfigError, ...]


def parse_commands(config: Mapping[str, Any], key: str, source: Source = "config") -> Parsed:
    """The entries of ``bootcmd`` or ``runcmd`` of a whole config (the schema has checked their
    types: strings, or lists of strings). An empty entry is a warning and is skipped."""
    problems = Problems(source)
    entries = config.get(key) or []
    commands: list[Command] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        where = (key, index)
        if isinstance(entry, str):
            if not entry.strip():
                problems.warn(where, "an empty command: skipped")
                continue
            commands.append(Command(problems.key(where), (SHELL, "-c", entry), shell=True))
        elif isinstance(entry, list) and entry:
            commands.append(Command(problems.key(where), tuple(str(a) for a in entry), shell=False))
        else:
            problems.warn(where, "an empty command: skipped")
    return Parsed(tuple(commands), tuple(problems.errors), tuple(problems.warnings))


@dataclass(frozen=True)
class Outcome:
    key: str
    returncode: int | None  # None: not started, or killed at the timeout
    reason: str  # "exited 0", "exited 3", "killed: timed out after 5 s", "cannot start: ..."

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def run_commands(processes: ProcessManager, commands: Sequence[Command], unit: str,
                       timeout: float, env: Mapping[str, str] | None = None) -> list[Outcome]:
    """Run ``commands`` in order, each to its end or its timeout; a failure never stops the next.
    ``env``: their environment (None: PID 1's)."""
    outcomes = []
    for command in commands:
        outcomes.append(await run_one(processes, command, unit, timeout, env))
    if commands:
        failed = [o.key for o in outcomes if not o.ok]
        log.info(f"{unit}: done", unit=unit, commands=len(commands), failed=failed)
    return outcomes


async def run_one(processes: ProcessManager, command: Command, unit: str, timeout: float,
                  env: Mapping[str, str] | None = None) -> Outcome:
    log.info("command started", unit=unit, command=command.key, run=command.describe(),
             shell=command.shell)
    try:
        child = processes.spawn(command.argv, name=command.key, env=env, stdout=PIPE, stderr=PIPE)
    except OSError as exc:
        reason = f"cannot start {command.argv[0]!r}: {exc.strerror or exc}"
        log.warning("command failed", unit=unit, command=command.key, error=reason)
        return Outcome(command.key, None, reason)
    pumps = [spawn_task(_pump(reader, unit, command.key, stream), name=f"{command.key}:{stream}")
             for reader, stream in ((child.stdout, "stdout"), (child.stderr, "stderr")) if reader is not None]
    try:
        status = await asyncio.wait_for(child.wait(), timeout)
    except TimeoutError:
        _kill_group(child.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), KILL_GRACE)
        except TimeoutError:
            _kill_group(child.pid, signal.SIGKILL)
            await child.wait()
        _kill_group(child.pid, signal.SIGKILL)  # what it left in its group
        await asyncio.wait(pumps, timeout=OUTPUT_WAIT)
        reason = f"killed: still running after {timeout:g} s (the timeout)"
        log.warning("command failed", unit=unit, command=command.key, error=reason)
        return Outcome(command.key, None, reason)
    except asyncio.CancelledError:  # shutdown: the command goes with it
        _kill_group(child.pid, signal.SIGKILL)
        raise
    await asyncio.wait(pumps, timeout=OUTPUT_WAIT)
    if status.returncode == 0:
        log.info("command exited", unit=unit, command=command.key, exit_code=0)
    else:
        log.warning("command failed", unit=unit, command=command.key, exit_code=status.exitcode,
                    signal=status.signal, error=status.describe())
    return Outcome(command.key, status.exitcode, status.describe())


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def _pump(reader: asyncio.StreamReader, unit: str, key: str, stream: str) -> None:
    """A command's output, line by line, into the journal (a line over the reader's limit is cut)."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line longer than the reader's limit: what was read of it is dropped
            log.info("(a line too long to keep)", unit=unit, command=key, stream=stream)
            continue
        if not line:
            return
        text = line.decode(errors="replace").rstrip()
        if text:  # at the line's own level when it carries one (the journal's one rule: lines.py)
            parsed = parse_line(text)
            fields = {k: v for k, v in parsed.fields.items() if k not in ("unit", "stream", "command")}
            getattr(log, parsed.level)(parsed.message, unit=unit, command=key, stream=stream, **fields)
