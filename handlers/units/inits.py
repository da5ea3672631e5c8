"""The units' container inits, watched through pidfds: PID 1 learns that a unit's container init is gone as
soon as the kernel does, with no polling and without waiting for dockerd's ``die`` event (which comes
20-30 ms later: dockerd first deletes the task in containerd and cleans up the shim).

When corral started a unit's container, or a reconcile sees one running that is not watched yet, its
init's pid (``State.Pid`` of an inspect) is opened with ``os.pidfd_open`` and the pidfd is added to the
loop (``loop.add_reader``): it becomes readable when the process exits. The pid is dockerd's view of it,
so before it is trusted (``open_init``) the process the pidfd refers to must sit in the container's
cgroup (its ``/proc/PID/cgroup`` names the container id; that also rules out a dockerd in another pid
namespace, whose pids mean other processes here) and still be alive after that check (a pid reused
between the inspect and the open would be another process, outside the container's cgroup; one that
exits between the open and the check leaves the pidfd readable). A unit that cannot be watched is
restarted on the ``die`` event, as before.

What an init gone leads to is not decided here: ``on_gone`` (``acting.Actions.init_gone``) feeds the same
path a ``die`` event feeds, so the restart decision stays in ``units.plan.decide_exit``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from units.model import Scope

log = structlog.get_logger("units")

CGROUP_LIMIT = 64 * 1024  # bytes read of /proc/PID/cgroup (a line per hierarchy)


def open_init(pid: int, container_id: str, proc: Path = Path("/proc")) -> int | None:
    """A pidfd of ``pid`` when it is the init of container ``container_id`` (blocking: /proc is read;
    call it off the loop), else None."""
    if pid <= 0 or not container_id:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None  # gone already, or no pidfd in this kernel
    try:
        with open(proc / str(pid) / "cgroup", "rb") as f:
            cgroups = f.read(CGROUP_LIMIT)
        if container_id.encode() not in cgroups or _readable(fd):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return fd


def _readable(fd: int) -> bool:
    """A pidfd is readable once its process has exited."""
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


@dataclass(frozen=True)
class Watched:
    container_id: str
    scope: Scope
    fd: int


class InitWatch:
    """The pidfd of each unit's container init (``watched``, by unit); ``fired`` counts the inits seen
    gone this way. ``on_gone(unit, container_id, scope)`` is called on the loop, once per init."""

    def __init__(self, on_gone: Callable[[str, str, Scope], None],
                 opener: Callable[[int, str], int | None] = open_init) -> None:
        self.on_gone = on_gone
        self.opener = opener
        self.watched: dict[str, Watched] = {}
        self.fired = 0
        self._unwatchable: dict[str, int] = {}  # container id -> the pid of it that could not be opened
        self.unwatched: set[str] = set()  # units whose inits are not watched (``corral debug init-watch``)
        self._closed = False

    def wants(self, name: str, container_id: str) -> bool:
        """Whether the unit's running container ``container_id``, seen by a reconcile, needs a watch: it
        has none, and its init was not found unwatchable (corral's own start of it tries again)."""
        watched = self.watched.get(name)
        return (not self._closed and container_id not in self._unwatchable and name not in self.unwatched
                and (watched is None or watched.container_id != container_id))

    def switch(self, name: str, on: bool) -> None:
        """Watch the unit's inits (``on``, the default) or not: then its exits are told by dockerd's ``die``
        alone, as before the watch (for measuring one path against the other: bench/restart_latency.py)."""
        if on:
            self.unwatched.discard(name)
        else:
            self.unwatched.add(name)
            self.disarm(name)

    async def arm(self, name: str, container_id: str, scope: Scope, pid: int) -> bool:
        """Watch the unit's container init ``pid`` (replacing a watch of an older container)."""
        if self._unwatchable.get(container_id) == pid or name in self.unwatched:
            return False
        fd = await asyncio.to_thread(self.opener, pid, container_id)
        if fd is None:
            self._unwatchable[container_id] = pid
            if len(self._unwatchable) > 4096:  # bounded: old ids are of containers long gone
                self._unwatchable.clear()
            log.debug("container init not watched", unit=name, container=container_id[:12], pid=pid)
            return False
        if self._closed:
            os.close(fd)
            return False
        self._unwatchable.pop(container_id, None)
        self.disarm(name)
        self.watched[name] = Watched(container_id, scope, fd)
        asyncio.get_running_loop().add_reader(fd, self._fire, name, fd)
        return True

    def _fire(self, name: str, fd: int) -> None:
        watched = self.watched.get(name)
        if watched is None or watched.fd != fd:
            return
        self.disarm(name)
        self.fired += 1
        self.on_gone(name, watched.container_id, watched.scope)

    def disarm(self, name: str) -> None:
        watched = self.watched.pop(name, None)
        if watched is None:
            return
        with contextlib.suppress(Exception):  # the loop may be closing
            asyncio.get_running_loop().remove_reader(watched.fd)
        os.close(watched.fd)

    def keep_only(self, names: set[str]) -> None:
        """Stop watching the units not in ``names`` (removed from the config)."""
        for name in [n for n in self.watched if n not in names]:
            self.disarm(name)

    def close(self) -> None:
        self._closed = True
        for name in list(self.watched):
            self.disarm(name)
