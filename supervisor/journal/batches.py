"""Reading journal files from async code: a blocking iterator pulled in a worker thread, a batch at a time.

The event loop never reads a file itself, and at most one batch of records is in memory per reader,
however long the journal is: a batch ends at ``BATCH`` records or ``BATCH_BYTES`` of them (a record may
hold a line of up to 1 MiB a unit printed), whichever comes first. ``close()`` may be called at any
moment, also while a batch is being read (the caller was cancelled): the iterator is then closed by the
worker once its batch is done."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator

from supervisor.journal.records import Record, weight

BATCH = 256  # records read per trip to the worker thread, at most
BATCH_BYTES = 1 << 20  # ... and no more than about this much of them (one record is always taken)


class Batches:
    """``await next_batch()`` gives up to ``size`` records of ``records`` (fewer once they weigh
    ``max_bytes``: see ``records.weight``), [] once they are exhausted or the reader is closed.
    ``on_close`` runs once, when the records are exhausted or closed."""

    def __init__(
        self,
        records: Iterator[Record],
        on_close: Callable[[], None] | None = None,
        size: int = BATCH,
        max_bytes: int = BATCH_BYTES,
    ) -> None:
        self._records: Iterator[Record] | None = records
        self._on_close = on_close
        self._size = size
        self._max_bytes = max_bytes
        self._lock = threading.Lock()  # held by the worker while it reads
        self._close_requested = False

    async def next_batch(self) -> list[Record]:
        if self._records is None or self._close_requested:
            self.close()
            return []
        return await asyncio.to_thread(self._take)

    def _take(self) -> list[Record]:
        with self._lock:
            records = self._records
            batch: list[Record] = []
            held = 0
            if records is not None and not self._close_requested:
                for record in records:
                    batch.append(record)
                    held += weight(record)
                    if len(batch) >= self._size or held >= self._max_bytes:
                        break
            if not batch or self._close_requested:
                self._finish()
            return batch

    def close(self) -> None:
        self._close_requested = True
        if self._lock.acquire(blocking=False):  # else the worker reading now closes when it is done
            try:
                self._finish()
            finally:
                self._lock.release()

    def _finish(self) -> None:
        """Close the iterator and run ``on_close``; the caller holds the lock."""
        records, self._records = self._records, None
        if records is None:
            return
        close = getattr(records, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()


async def stream_records(
    records: Iterator[Record],
    on_close: Callable[[], None] | None = None,
    size: int = BATCH,
    max_bytes: int = BATCH_BYTES,
) -> AsyncGenerator[Record, None]:
    """``records`` as an async iterator, read in a worker thread a batch at a time (``size`` records,
    ``max_bytes`` at most); closed (and ``on_close`` run) when exhausted, and when the async iterator is
    closed or cancelled."""
    batches = Batches(records, on_close, size, max_bytes)
    try:
        while batch := await batches.next_batch():
            for record in batch:
                yield record
    finally:
        batches.close()
