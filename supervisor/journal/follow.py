"""Following the journal (``corral logs -f``): an in-process subscription per follower.

The journal hands every record to each follower synchronously, under its lock, from whatever thread
logged it; the follower keeps a bounded queue and never blocks the logger. A follower that falls behind
loses records, and is told how many with a ``journal follower lagged; N records skipped`` record."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from supervisor.journal.batches import Batches
from supervisor.journal.query import RecordFilter
from supervisor.journal.records import Record, format_ts

DEFAULT_FOLLOW_QUEUE = 1000


def lag_record(skipped: int) -> Record:
    return {
        "ts": format_ts(time.time()),
        "level": "warning",
        "logger": "supervisor.journal",
        "event": f"journal follower lagged; {skipped} records skipped",
        "skipped": skipped,
    }


class Follower:
    """An async iterator of records; also an async context manager. ``close()`` ends the iteration."""

    def __init__(
        self,
        selector: RecordFilter,
        maxsize: int,
        unsubscribe: Callable[[Follower], None],
        backlog: Batches | None = None,
    ) -> None:
        if maxsize < 2:
            raise ValueError("a follower's queue holds at least 2 records")
        self.selector = selector
        self.maxsize = maxsize
        self._unsubscribe = unsubscribe
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._queue: deque[Record] = deque()
        self._skipped = 0  # records skipped since the last lag record was queued
        self.skipped_total = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._backlog = backlog  # the stored records to yield first, read a batch at a time
        self._backlog_records: deque[Record] = deque()

    def offer(self, record: Record) -> None:
        """Queue ``record`` if it matches; never blocks. Called by the journal from any thread."""
        if self._closed or not self.selector.matches(record):
            return
        with self._lock:
            if self._skipped:
                if len(self._queue) + 2 <= self.maxsize:
                    self._queue.append(lag_record(self._skipped))
                    self._skipped = 0
                    self._queue.append(record)
                else:
                    self._skipped += 1
                    self.skipped_total += 1
                    return
            elif len(self._queue) < self.maxsize:
                self._queue.append(record)
            else:
                self._skipped += 1
                self.skipped_total += 1
                return
        self._wake()

    def _wake(self) -> None:
        if threading.get_ident() == self._loop_thread:
            self._wakeup.set()
            return
        # RuntimeError: the follower's loop is closed, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> Record:
        while not self._backlog_records and self._backlog is not None:
            batch = await self._backlog.next_batch()
            if batch:
                self._backlog_records.extend(batch)
            else:
                self._backlog = None
        if self._backlog_records:
            return self._backlog_records.popleft()
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._skipped:
                    skipped, self._skipped = self._skipped, 0
                    return lag_record(skipped)
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def close(self) -> None:
        """Stop following: records already queued are still yielded, then iteration ends."""
        if self._closed:
            return
        self._closed = True
        self._unsubscribe(self)
        if self._backlog is not None:
            self._backlog.close()
        self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
