"""When the journal cannot write its files (disk full, I/O error): what failed, since when, and a thread
that tries again until it can.

The records meanwhile wait in the journal's bounded ring (the oldest dropped and counted). The thread
waits (the one backoff, ``supervisor.backoff``: 1 s doubling up to ``cap``), and when the failure was a
full disk it tries only once the file system has room again; trying is :meth:`Journal.attach_storage`
on the same directory, which writes the waiting records first, in order, and says how many were
dropped. Nothing here runs on the event loop."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.backoff import Backoff
from supervisor.journal.records import format_ts

FIRST_RETRY = 1.0  # seconds after a failure
RETRY_CAP = 15.0  # the longest wait between tries
MIN_FREE = 64 * 1024  # bytes free on the file system before a full disk is tried again



@dataclass(eq=False)
class Failure:
    """What could not be written, why, since when (epoch seconds), and how often it was tried since."""

    log_dir: Path
    max_bytes: int
    keep: int
    path: str
    error: str
    errno: int | None
    since: float
    tries: int = 0

    def reason(self, waiting: int, dropped: int) -> str:
        return (f"cannot write {self.path} since {format_ts(self.since)}: {self.error}; "
                f"{waiting} records kept in memory, {dropped} dropped; retrying")


Reattach = Callable[[Path, int, int, Failure], None]  # Journal.attach_storage(..., retrying=failure)


def space_may_be_back(log_dir: Path, need: int = MIN_FREE) -> bool:
    """Whether the file system of ``log_dir`` has ``need`` bytes free (for root: reserved blocks count)."""
    try:
        st = os.statvfs(log_dir)
    except OSError:
        return True  # cannot tell: trying will
    return st.f_bfree * st.f_frsize >= need


class Outage:
    """The journal's failure to write, if any (:attr:`failure`), and the thread retrying meanwhile.

    ``lock`` is the journal's (reentrant) lock: a failure is set and cleared under it. A retry is
    ``reattach(..., failure)``, which does nothing once that failure is over (storage detached)."""

    def __init__(
        self, lock: threading.RLock, reattach: Reattach, first: float = FIRST_RETRY, cap: float = RETRY_CAP
    ) -> None:
        self._lock = lock
        self._reattach = reattach
        self._backoff = Backoff(initial=first, cap=cap, first=first)
        self.failure: Failure | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def failed(self, log_dir: Path, max_bytes: int, keep: int, path: Path, exc: OSError) -> None:
        """Writing ``path`` raised ``exc``: remember it (the first failure's time is kept while retries
        fail) and make sure the retrying thread runs. The caller holds the lock."""
        if self.failure is not None:
            self.failure.error, self.failure.errno = str(exc), exc.errno
            return
        self.failure = Failure(log_dir, max_bytes, keep, str(path), str(exc), exc.errno, time.time())
        self._backoff.reset()
        self._wake.clear()  # (set by the last clearing)
        if not self._closed and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._run, name="journal-retry", daemon=True)
            self._thread.start()

    def cleared(self) -> Failure | None:
        """Writing works again (or storage was detached on purpose): the failure that ended, if any.
        The caller holds the lock."""
        failure, self.failure = self.failure, None
        self._wake.set()
        return failure

    def close(self, timeout: float = 5.0) -> None:
        """Stop retrying (shutdown)."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def status(self, waiting: int, dropped: int) -> dict[str, Any] | None:
        failure = self.failure
        if failure is None:
            return None
        return {"path": failure.path, "error": failure.error, "since": format_ts(failure.since),
                "tries": failure.tries, "reason": failure.reason(waiting, dropped)}

    def _run(self) -> None:
        while True:
            delay = self._backoff.next_delay(ran_for=0.0)
            self._wake.wait(delay)
            self._wake.clear()
            with self._lock:
                failure = self.failure
                if failure is None or self._closed:
                    self._thread = None  # under the lock: a failure after this starts a new thread
                    return
            if failure.errno == errno.ENOSPC and not space_may_be_back(failure.log_dir):
                continue
            failure.tries += 1
            try:  # not under the lock: the journal writes what waits a chunk at a time
                self._reattach(failure.log_dir, failure.max_bytes, failure.keep, failure)
            except OSError as exc:  # the directory or file could not even be opened
                with self._lock:
                    if self.failure is failure:
                        self.failed(failure.log_dir, failure.max_bytes, failure.keep, failure.log_dir, exc)
