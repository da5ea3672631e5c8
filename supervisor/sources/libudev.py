"""pyudev contexts without ldconfig.

pyudev finds libudev with ``ctypes.util.find_library``, which runs ``/sbin/ldconfig -p`` for every
``pyudev.Context()``: a process spawned behind the back of PID 1's process module, raced by its
``waitpid(-1)`` reaper, at every coldplug. Here pyudev is given the sonames instead (the same way
``supervisor.clib`` loads libblkid and libkmod); an unknown name is "not found" rather than a search."""

from __future__ import annotations

from typing import Any

from supervisor.clib import LIBC

SONAMES = {"udev": "libudev.so.1", "libc": LIBC}


def soname(name: str) -> str | None:
    return SONAMES.get(name)


def context() -> Any:
    """A new ``pyudev.Context`` (each thread wants its own: libudev contexts are not thread-safe)."""
    import pyudev
    import pyudev._ctypeslib.utils as ctypes_utils

    ctypes_utils.find_library = soname  # what pyudev's loader calls; set again, harmlessly, every time
    return pyudev.Context()
