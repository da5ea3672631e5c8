"""Atomic file replacement, for every file corral persists.

``write_atomic`` writes a temporary file in the target's directory, fsyncs it, sets its mode, renames
it over the target and fsyncs the directory. A reader, or a reboot at any instant, sees the old file or
the new one, never a mix; a writer killed midway leaves at most a stray ``.<name>.*.tmp`` beside it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably. The parent directory must exist."""
    target = Path(path)
    directory = target.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")  # mode 0600
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.write(fd, view[offset : offset + CHUNK])
        os.fsync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def remove_durably(path: str | os.PathLike[str]) -> None:
    """Unlink ``path`` if it exists and fsync its directory."""
    target = Path(path)
    try:
        target.unlink()
    except FileNotFoundError:
        return
    fsync_directory(target.parent)
