"""C libraries through ctypes (libblkid, libkmod): loaded by soname, with the signatures of the functions
used declared up front. By soname, not ``ctypes.util.find_library``: that runs ``ldconfig -p`` (a
process) to learn a name we know. ``None`` when the library or one of the functions is missing: the
callers then fall back to the command line tool."""

from __future__ import annotations

import ctypes
import functools

LIBC = "libc.so.6"

Signatures = dict[str, tuple[list[type], type | None]]


def load(soname: str, signatures: Signatures, *, use_errno: bool = False) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(soname, use_errno=use_errno)
    except OSError:
        return None
    try:
        for fn, (args, res) in signatures.items():
            func = getattr(lib, fn)
            func.argtypes = args
            func.restype = res
    except AttributeError:
        return None
    return lib


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, errno kept (``ctypes.get_errno()``)."""
    return ctypes.CDLL(LIBC, use_errno=True)


def malloc_trim() -> bool:
    """Give the C heap's free pages back to the kernel (glibc's ``malloc_trim(0)``: the top of each
    heap and the free pages inside it). False where the C library has no such call (not glibc)."""
    try:
        trim = libc().malloc_trim
    except AttributeError:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
