"""Low-level probing with libblkid, the library behind ``blkid -p``, through ctypes: the same probe
without a process to spawn (spawning blocks the event loop until the child has exec'ed, milliseconds
on a loaded machine; the probe itself reads a few KiB). Configured as ``blkid -p`` configures it:
superblocks (label, UUID, type, usage, version) and partitions (with the partition entry details:
PART_ENTRY_UUID, PART_ENTRY_NAME...). ``probe`` blocks (it reads the device): run it in a thread.
``available()`` is false when the library cannot be loaded; the prober then runs the ``blkid`` command."""

from __future__ import annotations

import ctypes
import errno
import os
from functools import cache

from supervisor import clib

# superblocks probing flags (blkid.h)
SUBLKS_LABEL = 1 << 1
SUBLKS_UUID = 1 << 3
SUBLKS_TYPE = 1 << 5
SUBLKS_SECTYPE = 1 << 6
SUBLKS_USAGE = 1 << 7
SUBLKS_VERSION = 1 << 8
# partitions probing flags
PARTS_ENTRY_DETAILS = 1 << 2

# what `blkid -p -o export` exits with, which the prober understands
FOUND, NOTHING, AMBIVALENT = 0, 2, 8


@cache
def _library() -> ctypes.CDLL | None:
    vp, i, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    return clib.load("libblkid.so.1", {
        "blkid_new_probe_from_filename": ([cp], vp),
        "blkid_free_probe": ([vp], None),
        "blkid_probe_enable_superblocks": ([vp, i], i),
        "blkid_probe_set_superblocks_flags": ([vp, i], i),
        "blkid_probe_enable_partitions": ([vp, i], i),
        "blkid_probe_set_partitions_flags": ([vp, i], i),
        "blkid_do_safeprobe": ([vp], i),
        "blkid_probe_numof_values": ([vp], i),
        "blkid_probe_get_value": ([vp, i, ctypes.POINTER(cp), ctypes.POINTER(cp),
                                   ctypes.POINTER(ctypes.c_size_t)], i),
    }, use_errno=True)


def available() -> bool:
    return _library() is not None


def probe(device: str) -> tuple[int, dict[str, str]]:
    """``(status, values)`` as ``blkid -p -o export DEVICE`` would give them: status FOUND (values:
    TYPE, LABEL, UUID, PTTYPE, PART_ENTRY_UUID...), NOTHING or AMBIVALENT. OSError when the device
    cannot be opened or read. Blocking."""
    lib = _library()
    if lib is None:
        raise OSError(errno.ENOSYS, "libblkid is not available")
    pr = lib.blkid_new_probe_from_filename(os.fsencode(device))
    if not pr:
        err = ctypes.get_errno() or errno.EIO
        raise OSError(err, f"{device}: {os.strerror(err)}")
    try:
        lib.blkid_probe_enable_superblocks(pr, 1)
        lib.blkid_probe_set_superblocks_flags(pr, SUBLKS_LABEL | SUBLKS_UUID | SUBLKS_TYPE | SUBLKS_SECTYPE
                                              | SUBLKS_USAGE | SUBLKS_VERSION)
        lib.blkid_probe_enable_partitions(pr, 1)
        lib.blkid_probe_set_partitions_flags(pr, PARTS_ENTRY_DETAILS)
        rc = lib.blkid_do_safeprobe(pr)
        if rc == 1:
            return NOTHING, {}
        if rc == -2:
            return AMBIVALENT, {}
        if rc != 0:
            err = ctypes.get_errno() or errno.EIO
            raise OSError(err, f"{device}: probing failed: {os.strerror(err)}")
        values: dict[str, str] = {}
        name, data, size = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_size_t()
        for n in range(lib.blkid_probe_numof_values(pr)):
            got = lib.blkid_probe_get_value(pr, n, ctypes.byref(name), ctypes.byref(data), ctypes.byref(size))
            if got == 0 and name.value is not None and data.value is not None:
                values[name.value.decode(errors="replace")] = data.value.decode(errors="replace")
        return FOUND, values
    finally:
        lib.blkid_free_probe(pr)
