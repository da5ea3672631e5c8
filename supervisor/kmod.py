"""Module alias lookup with libkmod, the library behind ``modprobe`` (and udev's kmod builtin), through
ctypes: which modules a ``MODALIAS`` resolves to and whether they are in the kernel already, without a
process. At boot most aliases (ACPI, platform, CPU devices...) resolve to nothing or to built-in code;
a ``modprobe`` per alias cost a process each (about 40 under QEMU, seconds of CPU under TCG) to learn
that. ``lookup_many`` blocks (it maps the module indexes): run it in a thread. ``None`` when the library
cannot be loaded or the module directory has no indexes; callers then run ``modprobe`` for every alias.
Loading stays with ``modprobe -b`` (blacklist, options, soft dependencies), but for ``insert``: PID 1's
one load before its loop (and so its reaper) runs, the trial boot's softdog (supervisor/watchdog.py)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from supervisor import clib

# enum kmod_module_initstate (libkmod.h); a negative value: not in the kernel
BUILTIN, LIVE, COMING, GOING = 0, 1, 2, 3


@dataclass(frozen=True)
class Lookup:
    modules: tuple[str, ...]  # what the alias resolves to; empty: no module has it
    in_kernel: bool  # every one of them is built in or loaded already

    @property
    def needs_modprobe(self) -> bool:
        return bool(self.modules) and not self.in_kernel


@cache
def _library() -> ctypes.CDLL | None:
    vp, i, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    return clib.load("libkmod.so.2", {
        "kmod_new": ([cp, vp], vp),
        "kmod_unref": ([vp], vp),
        "kmod_load_resources": ([vp], i),
        "kmod_module_new_from_lookup": ([vp, cp, ctypes.POINTER(vp)], i),
        "kmod_list_next": ([vp, vp], vp),
        "kmod_module_get_module": ([vp], vp),
        "kmod_module_get_name": ([vp], cp),
        "kmod_module_get_initstate": ([vp], i),
        "kmod_module_unref": ([vp], vp),
        "kmod_module_unref_list": ([vp], i),
        "kmod_module_new_from_name": ([vp, cp, ctypes.POINTER(vp)], i),
        "kmod_module_probe_insert_module": ([vp, ctypes.c_uint, cp, vp, vp, vp], i),
    })


def available() -> bool:
    return _library() is not None


def _lookup(lib: ctypes.CDLL, ctx: int, alias: str) -> Lookup | None:
    head = ctypes.c_void_p()
    if lib.kmod_module_new_from_lookup(ctx, alias.encode(), ctypes.byref(head)) < 0:
        return None
    names: list[str] = []
    in_kernel = True
    entry = head.value
    try:
        while entry:
            module = lib.kmod_module_get_module(entry)
            if module:
                names.append((lib.kmod_module_get_name(module) or b"").decode(errors="replace"))
                in_kernel = in_kernel and lib.kmod_module_get_initstate(module) in (BUILTIN, LIVE)
                lib.kmod_module_unref(module)
            entry = lib.kmod_list_next(head.value, entry)
    finally:
        if head.value:
            lib.kmod_module_unref_list(head.value)
    return Lookup(tuple(names), in_kernel and bool(names))


def lookup_many(aliases: Sequence[str], dirname: str | None = None) -> dict[str, Lookup] | None:
    """Each alias's modules (blocking). ``dirname``: the module directory (default: the running
    kernel's). ``None`` when libkmod is missing or cannot read the directory's indexes; an alias whose
    lookup fails is left out (the caller runs modprobe for it)."""
    lib = _library()
    if lib is None:
        return None
    ctx = lib.kmod_new(dirname.encode() if dirname else None, None)
    if not ctx:
        return None
    try:
        if lib.kmod_load_resources(ctx) < 0:
            return None
        out: dict[str, Lookup] = {}
        for alias in aliases:
            found = _lookup(lib, ctx, alias)
            if found is not None:
                out[alias] = found
        return out
    finally:
        lib.kmod_unref(ctx)


def insert(name: str, options: str = "") -> str:
    """Load module ``name`` and what it depends on, with ``options`` (``modprobe NAME OPTIONS`` in-process,
    blocking): "" when it is in the kernel after (loaded now or before), else why not."""
    lib = _library()
    if lib is None:
        return "libkmod cannot be loaded"
    ctx = lib.kmod_new(None, None)
    if not ctx:
        return "libkmod: no context"
    try:
        module = ctypes.c_void_p()
        err = lib.kmod_module_new_from_name(ctx, name.encode(), ctypes.byref(module))
        if err < 0:
            return f"{name}: {os.strerror(-err)}"
        try:
            err = lib.kmod_module_probe_insert_module(module, 0, options.encode() or None, None, None, None)
        finally:
            lib.kmod_module_unref(module)
        return "" if err >= 0 else f"{name}: {os.strerror(-err)}"
    finally:
        lib.kmod_unref(ctx)
