"""PID 1's own resource limits, set once at start.

The kernel starts init with RLIMIT_NOFILE 1024 (soft) / 4096 (hard). PID 1 holds a descriptor per
control connection, per child pipe, per netlink and inotify source and per journal file; at 1024 a
burst of control clients once left it unable to accept or to restart dockerd (``Too many open files``).
``raise_nofile`` lifts the soft limit to the hard one, which needs no privilege; children inherit it."""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True)
class NofileChange:
    before: int  # the soft limit found
    after: int  # the soft limit now
    hard: int
    error: str | None = None  # why it could not be raised


def raise_nofile() -> NofileChange:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit (blocking, but one system call)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return NofileChange(soft, soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        return NofileChange(soft, soft, hard, str(exc))
    return NofileChange(soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
