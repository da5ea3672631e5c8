"""The Journal: where every record goes. Early-boot ring, files once storage is attached, console
mirror, followers. Thread-safe (stdlib logging and ``await log.ainfo`` emit from other threads)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from supervisor.journal.batches import Batches, stream_records
from supervisor.journal.console import ConsoleFormat, make_renderer
from supervisor.journal.console_writer import ConsoleWriter
from supervisor.journal.follow import DEFAULT_FOLLOW_QUEUE, Follower
from supervisor.journal.outage import Failure, Outage
from supervisor.journal.query import MemorySource, RecordFilter, RecordSource, boot_at, read
from supervisor.journal.records import (
    LEVELS,
    Record,
    encode,
    format_ts,
    jsonable,
    level_rank,
    normalize_level,
    ordered,
    stamped,
)
from supervisor.journal.redact import redact_value
from supervisor.journal.storage import DEFAULT_KEEP, DEFAULT_MAX_BYTES, RotatingFile

DEFAULT_RING_SIZE = 10000
BOOT_ID_BYTES = 6  # 12 hex digits in each record's "boot" field
CONSOLE_DRAIN = 5.0  # seconds the console is given to catch up before the emergency shell or reboot(2)
LOGGER = "supervisor.journal"
FLUSH_CHUNK = 256  # records written to the files per hold of the lock when attaching


def _read(
    source: RecordSource, selector: RecordFilter, limit: int | None, reverse: bool, boot: int | None,
    boot_id: str,
) -> Iterator[Record]:
    """The records ``read`` selects; ``boot`` (an offset) is looked up when iterated (in the reader's
    thread, as the reading)."""
    if boot is not None:
        selector = replace(selector, boot=boot_at(source, boot, boot_id))
    yield from read(source, selector, limit, reverse)


def _keep(ring: deque[Record], record: Record) -> int:
    """Append ``record`` to the bounded ``ring``; 1 if that pushed the oldest out, else 0."""
    full = ring.maxlen is not None and len(ring) >= ring.maxlen
    ring.append(record)
    return int(full)


class Journal:
    """Keeps records in a bounded ring until :meth:`attach_storage`, then appends them to rotating files.
    When a write fails (disk full), records wait in the ring again while :attr:`outage` retries.

    ``console_mirror`` is True while booting (every record goes to the console); the supervisor sets it
    to False when ready, after which only warnings and worse reach the console. ``console_thread``:
    console lines are queued for a thread of their own (``ConsoleWriter``), so that emitting never waits
    for a slow console; PID 1 wants that, tests reading a StringIO do not.

    ``boot_id`` (random unless given) is stamped on every record as its ``boot`` field: it tells the
    records of this run of PID 1 (``corral logs -b``) from those of earlier boots in the same files."""

    def __init__(
        self,
        level: str = "info",
        console: TextIO | None = None,
        console_format: ConsoleFormat = "auto",
        ring_size: int = DEFAULT_RING_SIZE,
        console_thread: bool = False,
        boot_id: str | None = None,
    ) -> None:
        if ring_size < 0:
            raise ValueError("ring_size must be >= 0")
        self.boot_id = boot_id or secrets.token_hex(BOOT_ID_BYTES)
        self._level = normalize_level(level)
        self._rank = LEVELS[self._level]
        self.console = console
        self.console_format = console_format
        self._render = make_renderer(console_format, console)
        self._writer = ConsoleWriter(console) if console is not None and console_thread else None
        self.console_mirror = True
        self.ring_size = ring_size
        self._ring: deque[Record] = deque(maxlen=ring_size)
        self.ring_dropped = 0  # records pushed out of the ring since it was last flushed
        self._lock = threading.RLock()
        self._store: RotatingFile | None = None
        self._generation = 0  # of attach_storage/detach_storage calls: a newer one ends an attach under way
        self.outage = Outage(self._lock, self.attach_storage)  # a write failed: what, and the retries
        self._followers: weakref.WeakSet[Follower] = weakref.WeakSet()
        self._closed = False

    # -- level ---------------------------------------------------------------------------------------

    @property
    def level(self) -> str:
        return self._level

    def set_level(self, level: str) -> None:
        """Change the minimum level kept (``debug``, ``info``, ``warning``, ``error``, ``critical``)."""
        self._level = normalize_level(level)
        self._rank = LEVELS[self._level]

    def enabled_for(self, level: str) -> bool:
        return level_rank(level) >= self._rank

    # -- emitting ------------------------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Store, mirror and publish one finished record (already redacted and JSON-safe); its ``boot``
        field is set here."""
        record = stamped(record, self.boot_id)
        with self._lock:
            if self._store is not None:
                try:
                    self._store.write(encode(record))
                except OSError as exc:
                    self._storage_failed(exc, record, self._store)
            else:
                self.ring_dropped += _keep(self._ring, record)
            self._to_console(record)
            for follower in list(self._followers):
                follower.offer(record)

    def log(self, event: str, level: str = "info", logger: str = "corral", **fields: Any) -> None:
        """Emit a record without structlog (e.g. a unit's output line): fields are redacted here."""
        lvl = normalize_level(level)
        if not self.enabled_for(lvl):
            return
        record = {"ts": format_ts(time.time()), "level": lvl, "logger": logger, "event": event, **fields}
        self.emit(ordered(redact_value(jsonable(record))))

    def _internal(self, level: str, event: str, **fields: Any) -> None:
        self.emit(ordered({"ts": format_ts(time.time()), "level": level, "logger": LOGGER, "event": event,
                           **fields}))

    def _to_console(self, record: Record) -> None:
        console = self.console
        if console is None:
            return
        quiet = not self.console_mirror or "stream" in record  # a child's output line (dockerd, a unit)
        if quiet and level_rank(record.get("level")) < LEVELS["warning"]:
            return
        line = self._render(record) + "\n"
        if self._writer is not None:
            self._writer.write(line)
            return
        try:
            console.write(line)
            console.flush()
        except (OSError, ValueError):  # console gone or closed: the journal itself must go on
            pass

    def drain_console(self, timeout: float = CONSOLE_DRAIN) -> bool:
        """Wait until the queued console lines are written (at most ``timeout`` s); True if they were.
        Before something else takes the console (the emergency shell) and at shutdown."""
        return self._writer.drain(timeout) if self._writer is not None else True

    def _storage_failed(self, exc: OSError, record: Record | None, store: RotatingFile) -> None:
        """A write failed (disk full, I/O error): keep records in memory again, retry (``outage``), and
        say so (the error record waits in memory too). The caller holds the lock."""
        if self._store is store:
            self._store = None
        store.close()
        if record is not None:
            self.ring_dropped += _keep(self._ring, record)
        first = self.outage.failure is None
        self.outage.failed(store.log_dir, store.max_bytes, store.keep, store.path, exc)
        if first:
            self._internal("error", "journal write failed; keeping records in memory until it can write "
                           "again", path=str(store.path), error=str(exc))

    # -- storage -------------------------------------------------------------------------------------

    @property
    def storage_dir(self) -> Path | None:
        """The directory records are written to, or None while they are kept in memory."""
        store = self._store
        return store.log_dir if store is not None else None

    def attach_storage(
        self,
        log_dir: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep: int = DEFAULT_KEEP,
        retrying: Failure | None = None,
    ) -> None:
        """Write the ring to ``log_dir/current.jsonl`` in order, then append every further record.

        The ring is written ``FLUSH_CHUNK`` records at a time, the lock released in between: emitting
        (from the loop too) never waits for more than one chunk; what is emitted meanwhile joins the
        ring's end. A detach (or another attach) meanwhile ends this one. Raises OSError if the
        directory or file cannot be opened; the ring is then kept. If writing fails, the records not
        written stay in the ring and :attr:`outage` retries, calling this with ``retrying``, the
        failure it retries: nothing is done once that failure is over."""
        store = RotatingFile(log_dir, max_bytes=max_bytes, keep=keep)
        with self._lock:
            if retrying is not None and self.outage.failure is not retrying:
                return
            if self._store is not None:
                self.detach_storage()
            self._generation += 1
            generation = self._generation
            store.open()
        while True:
            with self._lock:
                if self._generation != generation:
                    store.close()
                    return
                try:
                    for _ in range(min(FLUSH_CHUNK, len(self._ring))):
                        store.write(encode(self._ring[0]))
                        self._ring.popleft()
                except OSError as exc:
                    self._storage_failed(exc, None, store)
                    return
                if not self._ring:
                    self._store = store
                    self._attached()
                    return
            time.sleep(0)  # let an emitter waiting for the lock have it now

    def _attached(self) -> None:
        """Storage is attached, the ring written: say what was dropped meanwhile. Caller holds the lock."""
        dropped, self.ring_dropped = self.ring_dropped, 0
        ended = self.outage.cleared()
        if ended is not None:
            self._internal("warning", f"journal writing again after {time.time() - ended.since:.0f} s; "
                           f"{dropped} records dropped meanwhile", dropped=dropped, path=ended.path,
                           error=ended.error, since=format_ts(ended.since))
        elif dropped:
            self._internal("warning", f"journal ring overflowed before storage was attached; "
                           f"{dropped} early records dropped", dropped=dropped)

    def detach_storage(self) -> None:
        """Flush, fsync and close the files (before unmounting); records go to the ring until the next
        :meth:`attach_storage`."""
        with self._lock:
            store, self._store = self._store, None
            self._generation += 1  # an attach under way ends
            self.outage.cleared()
            if store is not None:
                store.close()

    def sync(self) -> None:
        """fsync the current file (each record is flushed, not synced; call this now and then)."""
        with self._lock:
            if self._store is not None:
                with contextlib.suppress(OSError):
                    self._store.sync()

    def close(self) -> None:
        """Shutdown: detach storage, end every follower's iteration, and let the console catch up."""
        self.drain_console()
        self.outage.close()
        with self._lock:
            self.detach_storage()
            followers = list(self._followers)
            self._closed = True
        for follower in followers:
            follower.close()

    def status(self) -> dict[str, Any]:
        """For ``corral status``: where records go, how many wait in memory or were dropped, and the
        write failure being retried (None when the journal writes, or has no storage yet)."""
        with self._lock:
            waiting, dropped = len(self._ring), self.ring_dropped
            storage = self.storage_dir
            return {"storage": None if storage is None else str(storage), "in_memory": waiting,
                    "dropped": dropped, "failure": self.outage.status(waiting, dropped)}

    # -- reading -------------------------------------------------------------------------------------

    def _source(self) -> RecordSource:
        """Everything stored right now: open files (consistent under rotation) or a copy of the ring.
        Caller holds the lock."""
        if self._store is not None:
            return self._store.snapshot()
        return MemorySource(list(self._ring))

    def records(
        self,
        since: float | None = None,
        unit: str | Sequence[str] | None = None,
        limit: int | None = None,
        level: str | None = None,
        *,
        until: float | None = None,
        grep: str | None = None,
        boot: int | None = None,
        reverse: bool = False,
    ) -> Iterator[Record]:
        """Stored records, oldest first (newest first with ``reverse``): from the files when storage is
        attached, else from the ring, as they were when this is called.

        ``since``/``until`` are epoch seconds (see :func:`parse_since`), ``unit`` one unit or several,
        ``level`` a minimum level, ``grep`` a pattern for the message (see ``query.compile_grep``),
        ``boot`` 0 for this boot, -1 for the one before...; ``limit`` keeps the newest N. Reads files
        lazily, a block at a time (memory stays bounded), and closes them when exhausted or closed: from
        async code, use :meth:`stream`. Raises ValueError for a bad level or pattern, LookupError for a
        boot the journal does not hold."""
        source, records = self._open(since, unit, limit, level, until, grep, boot, reverse)
        try:
            yield from records
        finally:
            source.close()

    def _open(
        self,
        since: float | None,
        unit: str | Sequence[str] | None,
        limit: int | None,
        level: str | None,
        until: float | None,
        grep: str | None,
        boot: int | None,
        reverse: bool,
    ) -> tuple[RecordSource, Iterator[Record]]:
        """What is stored now, and the records of it that match (read when iterated); the caller closes
        the source. Raises ValueError at once for a bad level or pattern."""
        selector = RecordFilter(since=since, unit=unit, level=level, until=until, grep=grep)
        with self._lock:
            source = self._source()
        return source, _read(source, selector, limit, reverse, boot, self.boot_id)

    def query(
        self,
        since: float | None = None,
        unit: str | Sequence[str] | None = None,
        limit: int | None = None,
        level: str | None = None,
        **more: Any,
    ) -> list[Record]:
        """:meth:`records` as a list (for tests and small journals: it holds every matching record)."""
        return list(self.records(since, unit, limit, level, **more))

    async def stream(
        self,
        since: float | None = None,
        unit: str | Sequence[str] | None = None,
        limit: int | None = None,
        level: str | None = None,
        *,
        until: float | None = None,
        grep: str | None = None,
        boot: int | None = None,
        reverse: bool = False,
    ) -> AsyncGenerator[Record, None]:
        """:meth:`records` for async code: read in a worker thread, a batch at a time; the files are
        closed when the records are exhausted or the iteration is closed or cancelled."""
        # listing and opening the files is file system work: off the loop, like the reading
        source, records = await asyncio.to_thread(self._open, since, unit, limit, level, until, grep, boot,
                                                  reverse)
        async with contextlib.aclosing(stream_records(records, on_close=source.close)) as batched:
            async for record in batched:
                yield record

    def follow(
        self,
        unit: str | Sequence[str] | None = None,
        level: str | None = None,
        backlog: int = 0,
        maxsize: int = DEFAULT_FOLLOW_QUEUE,
        since: float | None = None,
        *,
        grep: str | None = None,
        this_boot: bool = False,
    ) -> Follower:
        """Subscribe now; iterate (``async for``) to receive records as they are emitted.

        ``backlog`` first yields up to that many stored records (newest, matching), with no gap or
        overlap between them and the live ones. ``this_boot``: only records of this boot (the live
        ones all are). Call ``close()`` (or use ``async with``) to stop. Must be called with a running
        event loop. Raises ValueError for a bad level or pattern."""
        selector = RecordFilter(since=since, unit=unit, level=level, grep=grep,
                                boot=self.boot_id if this_boot else None)
        with self._lock:
            batches = None
            if backlog > 0:
                source = self._source()
                batches = Batches(read(source, selector, backlog), on_close=source.close)
            follower = Follower(selector, maxsize, self._unsubscribe, backlog=batches)
            if self._closed:
                follower.close()
            else:
                self._followers.add(follower)
        return follower

    def _unsubscribe(self, follower: Follower) -> None:
        with self._lock:
            self._followers.discard(follower)

    @property
    def follower_count(self) -> int:
        return len(self._followers)

