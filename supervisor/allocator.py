"""How PID 1 allocates memory, so that what a big or hostile config document took is given back.

PID 1 lives for the whole boot and parses, on its config worker thread, documents of up to 1 MiB that
become tens of MiB of short-lived Python objects. With CPython's own small-object allocator (pymalloc)
those objects fill 1 MiB arenas shared with the loop thread; a few long-lived objects the loop allocates
meanwhile pin each arena, and pymalloc never returns a pinned arena's free pages: PID 1 grew by 16-20 MiB
over 150 hostile configs and never came back (docs/reliability.md). So PID 1 runs with:

- ``PYTHONMALLOC=malloc`` (``ENV``): objects come from glibc, where each thread allocates from its own
  arena (the worker's garbage does not sit among the loop's objects) and free pages can be returned;
- a fixed ``M_MMAP_THRESHOLD`` (``tune``, at start): glibc's threshold otherwise rises after each big
  block is freed (up to 32 MiB), and then big blocks come from the heaps and their top is kept;
- ``M_ARENA_MAX`` 2 (``tune``, at start, before any thread): glibc otherwise gives each thread that
  allocates its own arena (up to 8 per core), and each keeps its own free space and top: PID 1's
  threads (prefetch, the config worker, the default executor's, the console writer) cost 1.5-2 MiB of
  RSS ready and idle (docs/benchmarks.md). With 2, the loop thread keeps the main arena to itself and
  the other threads share the second, so the worker's garbage still never sits among the loop's
  objects;
- after each config request the worker calls ``release`` (supervisor.config.worker): a full collection and
  ``malloc_trim(0)``.

``ENV`` must be in the environment before the interpreter starts: image/init exports it, and
``corral sandbox`` (supervisor.sandbox) passes it to its PID 1."""

from __future__ import annotations

import ctypes

from supervisor import clib

ENV = {"PYTHONMALLOC": "malloc"}
"""PID 1's environment for the allocator (a unit test checks image/init exports the same)."""

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024
"""Blocks this big or bigger are mapped on their own and unmapped when freed (glibc's default start
value, made fixed)."""
ARENA_MAX = 2
"""The main arena (the loop thread's) and one for every other thread."""


def tune() -> bool:
    """Fix glibc's mmap threshold and arena count (``mallopt``); False where the C library has no
    ``mallopt`` or refuses either."""
    try:
        mallopt = clib.libc().mallopt
    except AttributeError:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(M_ARENA_MAX, ARENA_MAX))
