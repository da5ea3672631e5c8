"""A guard against blocking calls on PID 1's event loop, for tests: with ``CORRAL_LOOP_GUARD=1`` in its
environment (the test sandboxes set it) and blockbuster installed (the venv's test extra; never in the
OS image), a blocking call (file or socket I/O, ``time.sleep``, ``os.stat``...) made by corral's code
while the loop runs in that thread raises ``blockbuster.BlockingError``: the reconcile or phase fails,
the journal shows the traceback, and the test's clean-journal check fails. The unit tests use the same
guard (tests/conftest.py).

``ALLOWED`` is the one list of blocking calls PID 1 makes on its loop on purpose, each with why."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

ENV = "CORRAL_LOOP_GUARD"
PACKAGES = ["supervisor", "handlers", "netconf", "units", "storage", "swarm"]
# The CLI's side never runs on PID 1's loop: its blocking socket client is what it should be.
NOT_PID1 = ["supervisor.cli", "supervisor.control.client", "supervisor.sandbox", "supervisor.loopguard"]
# The journal's file (supervisor/journal/storage.py) is written from the loop: each record is one
# write(2) and flush to the page cache, rotation (every 10 MiB) renames files, and `logs -f` lists and
# opens the files under the journal's lock together with the follower's subscription, so that no record
# falls between the backlog and the live ones. (A writer thread would take these off the loop.)
JOURNAL_FILE = ("supervisor/journal/storage.py",
                {"write", "rotate", "open", "_open_current", "_ends_with_newline", "snapshot", "log_files"})
ALLOWED: dict[str, list[tuple[str, set[str]]]] = {
    "os.write": [
        # A trial boot's /dev/watchdog is petted (and closed) from the loop: a write to the softdog's
        # character device returns at once (a plain file in the unit tests).
        ("supervisor/watchdog.py", {"_write", "disarm"}),
    ],
    "os.stat": [
        # The udev source asks once, when it is made or switched, whether udevd runs (a stat on /run).
        ("supervisor/sources/udev.py", {"udevd_running"}),
        # aiohttp sizes an image archive it streams to dockerd: an fstat of the open file.
        ("units/runtime.py", {"load_image"}),
    ],
    "io.TextIOWrapper.read": [
        # schema.json is read once per process (cached); in PID 1 before its loop runs.
        ("supervisor/config/schema.py", {"_schema_text"}),
        # procfs: served from the kernel's memory, never waits on a device.
        ("supervisor/app.py", {"_status_kib"}),
        ("units/system_dockerd.py", {"_root_fstype"}),
    ],
}
# Lazy imports of heavy modules (aiodocker, aiohttp, pyroute2, jsonschema) at their first use: PID 1
# prefetches them in a thread from its first moment (supervisor/prefetch.py), so a first use before the
# prefetch is done waits for it (the import lock) and then finds the module in sys.modules.
IMPORTS = ("<frozen importlib._bootstrap>", {"_find_and_load", "_call_with_frames_removed"})


@contextlib.contextmanager
def guarded() -> Iterator[Any]:
    """blockbuster, on, with ``ALLOWED``; the BlockBuster object is yielded."""
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(PACKAGES, excluded_modules=NOT_PID1) as bb:
        for name, function in bb.functions.items():
            function.can_block_in(*JOURNAL_FILE)
            function.can_block_in(*IMPORTS)
            for filename, functions in ALLOWED.get(name, ()):
                function.can_block_in(filename, functions)
        yield bb


def from_environment() -> contextlib.AbstractContextManager[Any]:
    """``guarded()`` when ``CORRAL_LOOP_GUARD=1`` (and blockbuster can be imported), else nothing."""
    if os.environ.get(ENV) != "1":
        return contextlib.nullcontext()
    try:
        import blockbuster  # noqa: F401
    except ImportError:
        return contextlib.nullcontext()
    return guarded()
