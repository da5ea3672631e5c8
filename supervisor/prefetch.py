"""Import the heavy libraries in a background thread while PID 1 boots.

Under QEMU's TCG, ``import pyroute2`` takes about 4 s (its package imports every netlink family it
has) and aiohttp/aiodocker about as long. Imported where first used, they held the boot up: the system
dockerd's bridge (pyroute2) came 5 s late, and dockerd with it. A thread imports them while the main
thread waits on modprobe, fsck and mounts; the main thread's own import of the same module then finds
it done, or waits on the module's import lock until it is.

Two batches, so that the system dockerd's spawn waits for no more than it needs: ``EARLY`` (pyroute2's
IPRoute, for its bridge) when the boot phases begin; ``AFTER_SPAWN`` (aiohttp and aiodocker, first
needed to ping it) once it is spawned, while it starts. Imported from the start, the API client took
1.3 s of the GIL from the phases before the spawn under TCG (``-X importtime`` in the guest,
docs/benchmarks.md). Started any earlier than the phases, a batch only competes for the GIL with the
supervisor's own imports (5 s under TCG), which delays everything by as much.

Only third-party libraries go here (they never import corral's modules, so the two threads cannot take
module locks in opposite orders). A failure is left for the real import to report."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence

from supervisor.lean import NETLINK_MODULES

# pyroute2's IPRoute for the system dockerd's bridge and the loopback (right after the state phase; the
# submodule, not the package: supervisor/lean.py).
EARLY = NETLINK_MODULES
# aiohttp and aiodocker for the system dockerd's API: first needed to ping it, once it is spawned.
AFTER_SPAWN = ("aiohttp", "aiodocker")
BOOT_MODULES = (*EARLY, *AFTER_SPAWN)


def _run(modules: Sequence[str], done: dict[str, bool]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the real import, where the module is used, reports it
            done[name] = False
        else:
            done[name] = True


def load(modules: Sequence[str]) -> dict[str, bool]:
    """Import ``modules`` in this thread (e.g. through ``asyncio.to_thread``); name → imported."""
    done: dict[str, bool] = {}
    _run(tuple(modules), done)
    return done


def start(modules: Sequence[str] = EARLY) -> tuple[threading.Thread, dict[str, bool]]:
    """Start importing ``modules`` in a daemon thread; returns it and a name → imported map it fills."""
    done: dict[str, bool] = {}
    thread = threading.Thread(target=_run, args=(tuple(modules), done), name="prefetch", daemon=True)
    thread.start()
    return thread, done
