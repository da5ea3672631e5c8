"""Import the heavy libraries in a background thread while PID 1 boots.

Under QEMU's TCG, ``import pyroute2`` takes about 4 s (its package imports every netlink family it
has) and aiohttp/aiodocker about as long. Imported where first used, they held the boot up: the system
dockerd's bridge (pyroute2) came 5 s late, and dockerd with it. A thread started when the boot phases
begin imports them while the main thread waits on modprobe, fsck and mounts; the main thread's own
import of the same module then finds it done, or waits on the module's import lock until it is.
Started any earlier, it only competes for the GIL with the supervisor's own imports (5 s under TCG),
which delays everything by as much.

Only third-party libraries go here (they never import corral's modules, so the two threads cannot take
module locks in opposite orders). A failure is left for the real import to report."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence

from supervisor.lean import NETLINK_MODULES

# In the order the boot needs them: pyroute2's IPRoute for the system dockerd's bridge and the loopback
# (right after the state phase; the submodule, not the package: supervisor/lean.py), aiohttp and
# aiodocker for the system dockerd's API (once it is spawned).
BOOT_MODULES = (*NETLINK_MODULES, "aiohttp", "aiodocker")


def _run(modules: Sequence[str], done: dict[str, bool]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the real import, where the module is used, reports it
            done[name] = False
        else:
            done[name] = True


def start(modules: Sequence[str] = BOOT_MODULES) -> tuple[threading.Thread, dict[str, bool]]:
    """Start importing ``modules`` in a daemon thread; returns it and a name → imported map it fills."""
    done: dict[str, bool] = {}
    thread = threading.Thread(target=_run, args=(tuple(modules), done), name="prefetch", daemon=True)
    thread.start()
    return thread, done
