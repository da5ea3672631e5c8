"""PID 1's signal table. The kernel ignores any signal PID 1 has no handler for, so every catchable
signal gets an explicit entry here, even if that entry is "log and ignore".

| signal            | action   | why                                                      |
|-------------------|----------|----------------------------------------------------------|
| SIGTERM, SIGPWR   | poweroff | what `kill 1`, UPS daemons and container runtimes send   |
| SIGINT            | reboot   | ctrl-alt-del (the kernel sends SIGINT to PID 1)          |
| SIGRTMIN+3/+4/+5  | halt/poweroff/reboot | systemd's numbers, for tools that use them   |
| SIGHUP            | reload   | re-read the config                                       |
| SIGUSR1           | dump     | write the supervisor's state to the journal              |
| SIGCHLD           | reap     | owned by supervisor.process                              |
| SIGPIPE           | ignore   | writes to a closed pipe return EPIPE instead             |
| everything else   | ignore   | logged, so a stray signal is visible in the journal      |

SIGKILL and SIGSTOP cannot be caught. Synchronous faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
SIGTRAP, SIGSYS) keep Python's handling: they mean the interpreter itself is broken."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import structlog

log = structlog.get_logger("supervisor.signals")

POWEROFF = "poweroff"
REBOOT = "reboot"
HALT = "halt"
RELOAD = "reload"
DUMP = "dump"
IGNORE = "ignore"

UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})
FAULTS = frozenset({
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
    signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
})
OWNED_ELSEWHERE = frozenset({signal.SIGCHLD})

ACTIONS: dict[int, str] = {
    signal.SIGTERM: POWEROFF,
    signal.SIGPWR: POWEROFF,
    signal.SIGINT: REBOOT,
    signal.SIGHUP: RELOAD,
    signal.SIGUSR1: DUMP,
    signal.SIGRTMIN + 3: HALT,
    signal.SIGRTMIN + 4: POWEROFF,
    signal.SIGRTMIN + 5: REBOOT,
}


def action_for(signum: int) -> str:
    return ACTIONS.get(signum, IGNORE)


def signal_name(signum: int) -> str:
    if signal.SIGRTMIN <= signum <= signal.SIGRTMAX:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def handled_signals() -> list[int]:
    """Every signal this module installs a handler for."""
    excluded = UNCATCHABLE | FAULTS | OWNED_ELSEWHERE | {signal.SIGPIPE}
    return sorted(int(s) for s in signal.valid_signals() if s not in excluded)


def install(loop: asyncio.AbstractEventLoop, dispatch: Callable[[int, str], None]) -> None:
    """Route every catchable signal to ``dispatch(signum, action)`` on the loop.

    SIGPIPE stays ignored (Python's default), SIGCHLD belongs to the process module."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for signum in handled_signals():
        loop.add_signal_handler(signum, _deliver, signum, dispatch)
    quiet_wakeup_fd()


def quiet_wakeup_fd() -> None:
    """Stop Python warning on stderr when the loop's signal wakeup pipe is full.

    A burst of signals (hundreds of SIGCHLDs from an orphan storm) fills the pipe; one pending byte
    is enough to wake the loop, and the reaper collects every exit anyway. asyncio re-arms the fd on
    each add_signal_handler, so call this after the last one."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


def _deliver(signum: int, dispatch: Callable[[int, str], None]) -> None:
    action = action_for(signum)
    log.info("signal received", signal=signal_name(signum), action=action)
    dispatch(signum, action)
