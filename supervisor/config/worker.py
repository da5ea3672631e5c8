"""The one thread that parses and validates config for PID 1, so that its loop never does.

Every piece of config work that reads user input (``config validate/set/unset/merge``, ``reload``, the
boot load, an export that reads the user's files) runs here, one at a time: a big document holds this
thread, never the loop, and eight big documents at once hold one thread's worth of memory, not eight.
At most ``MAX_WAITING`` requests wait behind the running one; more are refused at once with
``WorkerBusy`` (the client is told to try again) instead of piling up 1 MiB documents in memory.

Each document is bounded anyway (supervisor/config/yamlload.py: bytes, nesting, keys, values), so the
time one request holds the thread is bounded too.

The memory is given back, too. Parsing and validating a big or hostile document allocates tens of MiB
of short-lived objects; freed, they stayed in PID 1's heap: in Python's free lists (up to 2,000 tuples
of each size) and in C heap pages that glibc keeps, so each such document left PID 1 a little bigger
(+20 MiB over 150 hostile configs, docs/reliability.md). Once the queue is empty the worker
``release``: a full garbage collection (the only call that empties the free lists) and
``malloc_trim(0)``, on its own thread, never the loop's.

The full collection walks PID 1's whole heap with the GIL held (100-300 ms on the development machine:
the loop waits that long). A `config set`, `unset` or `merge` is two requests, the change and the reload
that puts it in force: they are one burst (``burst``), so the release comes once, after the reload,
instead of once between them (where the reload also waited for it) and once after.

Most of what that collection walked is PID 1's boot: its modules' code, classes and functions, the
handlers, the config in force (some 60,000 objects the collector tracks; they live as long as PID 1).
Once PID 1 is ready, ``freeze`` collects once more and moves every object alive then to the collector's
permanent generation (``gc.freeze``): later collections, the release's and the automatic ones of the
loop's own garbage, walk only what was allocated since (docs/benchmarks.md: the release's hold on the
loop). What is frozen is still freed when its last reference goes; only a reference cycle among frozen
objects is never collected, which bounds that leak by the boot's heap: it cannot grow with time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from supervisor import clib

MAX_WAITING = 8
"""Config requests that may wait for the worker while one runs; one more is refused (WorkerBusy)."""

P = ParamSpec("P")
T = TypeVar("T")


class WorkerBusy(RuntimeError):
    """Too many config requests are waiting already."""


class ConfigWorker:
    def __init__(self, max_waiting: int = MAX_WAITING) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="config-worker")
        self._limit = max_waiting + 1  # the running one and those waiting
        self._pending = 0
        self._bursts = 0  # ``burst`` blocks open: the release waits for their end too
        self.releases = 0  # times the worker gave its memory back (``release``)
        self.frozen = 0  # objects ``freeze`` moved to the permanent generation (0: not yet)

    @property
    def pending(self) -> int:
        """Requests running or waiting now."""
        return self._pending

    async def run_input(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the worker thread, for a request carrying user input (a document, a
        value): WorkerBusy when ``MAX_WAITING`` requests already wait. Cancelled while it waits, it never
        runs."""
        if self._pending >= self._limit:
            raise WorkerBusy(
                f"busy: {self._pending - 1} config requests are already waiting (the limit is "
                f"{self._limit - 1}); try again"
            )
        return await self.run(fn, *args, **kwargs)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` on the worker thread, after what runs and waits now (boot's load and
        ``reload``, which carry no input of their own, are never refused)."""
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            self._pending -= 1
            self._maybe_release()

    @contextlib.asynccontextmanager
    async def burst(self) -> AsyncIterator[None]:
        """The requests made inside are one burst: the memory is given back once, after the last of them
        (a change and the reload that puts it in force), not between them."""
        self._bursts += 1
        try:
            yield
        finally:
            self._bursts -= 1
            self._maybe_release()

    def _maybe_release(self) -> None:
        if self._pending == 0 and self._bursts == 0:  # the last of a burst: give memory back
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                self._executor.submit(self._release)

    def _release(self) -> None:
        release()
        self.releases += 1

    async def freeze(self) -> int:
        """Once, when PID 1 is ready: after what runs and waits now, a release and then ``gc.freeze()``
        (on the worker thread, like the release); how many objects are frozen. A second call does
        nothing (objects frozen later would include whatever a config request left alive)."""
        if self.frozen:
            return self.frozen
        self.frozen = await self.run(_release_and_freeze)
        return self.frozen

    def shutdown(self) -> None:
        """Stop taking work; what is running finishes on its own (the thread is not waited for)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _release_and_freeze() -> int:
    release()
    gc.freeze()
    return gc.get_freeze_count()


def release() -> None:
    """Give back what a finished parse left behind: a full collection (it also empties the interpreter's
    free lists of tuples, lists, dicts and floats, which only a full collection does) and then the C
    heap's free pages (``malloc_trim``). Runs on the worker thread: it holds the GIL for the
    collection (tens of ms), never the loop's own time."""
    gc.collect()
    clib.malloc_trim()
