"""Console lines written from a thread of their own, so that no emitter waits for the console.

The kernel console is often a serial line (115200 baud: about 11 KiB/s). Once its buffer is full a
write blocks until the line has drained, and the journal writes from the event loop: a burst of boot
records (or dockerd's chatter at warning) would hold PID 1's loop for as long as the UART takes. Here
``write`` only queues the line. The queue is bounded: when the console cannot keep up, newer lines are
dropped and counted (the journal keeps every record), and a line says how many once there is room.
``drain`` waits, for a bounded time, until what is queued has been written: before the emergency shell
takes the console, and at shutdown before reboot(2)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TextIO

DEFAULT_LIMIT = 2000  # lines; at 115200 baud about 30 s of 150-byte lines


class ConsoleWriter:
    """A bounded queue of lines in front of ``stream``, written by a daemon thread started on the
    first line. Errors writing (console gone, closed) drop the line: the journal itself goes on."""

    def __init__(self, stream: TextIO, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.stream = stream
        self.limit = limit
        self.dropped = 0  # lines dropped since the last "dropped" notice was queued
        self.dropped_total = 0
        self._lines: deque[str] = deque()
        self._busy = False  # the thread holds a line it has not finished writing
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, text: str) -> None:
        """Queue ``text`` (one or more whole lines); never blocks on the console."""
        with self._cond:
            if len(self._lines) >= self.limit:
                self.dropped += 1
                self.dropped_total += 1
                return
            if self.dropped:
                self._lines.append(f"corral: {self.dropped} console lines dropped (the console was too "
                                   "slow; the journal has them)\n")
                self.dropped = 0
            self._lines.append(text)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="console-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._lines) + (1 if self._busy else 0)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued line is written, at most ``timeout`` seconds; True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._lines or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines:
                    self._cond.wait()
                line = self._lines.popleft()
                self._busy = True
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
