"""Accepting connections on the control socket, without asyncio's server.

asyncio's accept loop (``BaseSelectorEventLoop._accept_connection``, Python 3.11) goes on after EMFILE:
for each of up to ``backlog`` pending connections it logs "socket.accept() out of system resource" and
schedules one more retry, so that out of file descriptors PID 1 logged it 23,051 times in 6 s and
never recovered. ``Acceptor`` accepts a batch at a time from its own reader callback; when accept fails
for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM) it stops watching the socket, waits
``ACCEPT_RETRY`` seconds and tries again, and says so once per burst (``BurstLog``). Pending clients
wait in the listen backlog meanwhile."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("supervisor.control")

LISTEN_BACKLOG = 1024  # pending connections the kernel queues (it caps this at net.core.somaxconn)
ACCEPT_BATCH = 64  # connections accepted per wake-up before the loop runs other work
ACCEPT_RETRY = 0.5  # seconds between tries while accept lacks file descriptors or memory
BURST_QUIET = 5.0  # seconds without the event that end a burst
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class BurstLog:
    """Logs the first of a burst of like events at once, and how many followed when the burst is over
    (``quiet`` seconds after the first), so that a flood costs two log lines, not one per event."""

    def __init__(self, event: str, quiet: float = BURST_QUIET, level: str = "warning") -> None:
        self.event = event
        self.quiet = quiet
        self.level = level
        self.bursts = 0
        self.total = 0
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    def note(self, **fields: Any) -> None:
        self.total += 1
        self._count += 1
        if self._timer is not None:
            return
        self.bursts += 1
        getattr(log, self.level)(self.event, **fields)
        self._timer = asyncio.get_running_loop().call_later(self.quiet, self._end)

    def _end(self) -> None:
        self._timer = None
        more, self._count = self._count - 1, 0
        if more:
            log.info(f"{self.event}: burst over", more=more, seconds=self.quiet)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._end()


class Acceptor:
    """Calls ``on_connection`` with each accepted socket (non-blocking) until ``close``."""

    def __init__(self, sock: socket.socket, on_connection: Callable[[socket.socket], None]) -> None:
        self.sock = sock
        self.on_connection = on_connection
        self.starved = BurstLog("control socket cannot accept: out of resources; pausing accept")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.starved.close()

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                log.error("control socket accept failed", error=str(exc))
                return
            conn.setblocking(False)
            self.on_connection(conn)

    def _pause(self, exc: OSError) -> None:
        if self._loop is None:
            return
        self.starved.note(error=exc.strerror or str(exc), retry=ACCEPT_RETRY)
        self._loop.remove_reader(self.sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self._ready)
