"""The journal's files: ``current.jsonl`` plus rotated ``current.jsonl.1`` (newest) .. ``.keep`` (oldest).

One writer (the Journal, under its lock) appends whole lines and flushes each, so a reader sees every
record promptly; rotation renames files, so no line is copied, lost or written twice. Readers take a
:class:`Snapshot`: files opened (and the current file's size noted) at one instant, read afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from supervisor.journal.records import Record, decode

CURRENT = "current.jsonl"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5
# Every unit's output is in the journal: root reads and writes it, a group an administrator chooses
# (chgrp, as Debian's adm for /var/log) may read it, nobody else may (docs/journal.md).
FILE_MODE = 0o640
DIR_MODE = 0o750

_ROTATED = re.compile(re.escape(CURRENT) + r"\.([0-9]+)")


def log_files(log_dir: Path) -> list[Path]:
    """The journal files in ``log_dir``, oldest first (highest rotation number first, current last)."""
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    rotated = sorted(
        ((int(m.group(1)), name) for name in names if (m := _ROTATED.fullmatch(name))), reverse=True
    )
    files = [log_dir / name for _, name in rotated]
    if CURRENT in names:
        files.append(log_dir / CURRENT)
    return files


Position = tuple[int, int]  # (index of the file in the snapshot, byte offset of a line in it)
BLOCK = 64 * 1024  # bytes read at a time when reading a file backwards


class Snapshot:
    """The journal files as they were at one instant; reading it later is unaffected by rotation.

    Each file is read up to the size it had at that instant, forwards (:meth:`forward`) or backwards
    (:meth:`backward`, newest first, a block at a time), as often as needed until :meth:`close`. Both
    see the same lines at the same :data:`Position`, so a backward pass can find where a forward pass
    starts (``corral logs -n N`` reads the tail twice instead of the whole journal once). Memory stays
    bounded by one block plus the longest line."""

    def __init__(self, handles: list[tuple[BinaryIO, int]]) -> None:
        self._handles = handles

    @classmethod
    def of_files(cls, files: list[Path], current_size: int | None = None) -> Snapshot:
        """Open ``files`` (oldest first); the last is read up to ``current_size`` bytes if given, every
        other file up to its size now."""
        handles: list[tuple[BinaryIO, int]] = []
        for i, path in enumerate(files):
            try:
                fh = path.open("rb")
            except FileNotFoundError:  # rotated away between listing and opening
                continue
            end = os.fstat(fh.fileno()).st_size
            if current_size is not None and i == len(files) - 1:
                end = min(end, current_size)
            handles.append((fh, end))
        return cls(handles)

    def forward(self, start: Position | None = None) -> Iterator[tuple[Position, Record]]:
        """Every parseable record from ``start`` (or the oldest) on, oldest first, with its position;
        torn or foreign lines are skipped."""
        first, offset = start if start is not None else (0, 0)
        for index in range(first, len(self._handles)):
            fh, end = self._handles[index]
            pos = offset if index == first else 0
            fh.seek(pos)
            while pos < end:
                line = fh.readline(end - pos)
                if not line:
                    break
                record = decode(line)
                if record is not None:
                    yield (index, pos), record
                pos += len(line)

    def backward(self) -> Iterator[tuple[Position, Record]]:
        """Every parseable record, newest first, with the same positions as :meth:`forward`."""
        for index in range(len(self._handles) - 1, -1, -1):
            fh, end = self._handles[index]
            for pos, line in _lines_backward(fh, end):
                record = decode(line)
                if record is not None:
                    yield (index, pos), record

    def records(self) -> Iterator[Record]:
        """Every parseable record, oldest first; closes the files when done."""
        try:
            for _, record in self.forward():
                yield record
        finally:
            self.close()

    def close(self) -> None:
        for fh, _ in self._handles:
            fh.close()
        self._handles = []


def _lines_backward(fh: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """The lines of ``fh``'s first ``end`` bytes, last first, each with its offset (newline kept as
    :meth:`Snapshot.forward` sees it: a line cut by ``end`` comes without)."""
    pos = end
    tail = b""  # the start of the line that follows the block read last
    while pos > 0:
        size = min(BLOCK, pos)
        pos -= size
        fh.seek(pos)
        buf = fh.read(size) + tail
        cut = buf.rfind(b"\n", 0, len(buf) - 1) if buf.endswith(b"\n") else buf.rfind(b"\n")
        stop = len(buf)
        while cut >= 0:
            yield pos + cut + 1, buf[cut + 1 : stop]
            stop = cut + 1
            cut = buf.rfind(b"\n", 0, cut)
        tail = buf[:stop]
    if tail:
        yield 0, tail


def restrict_mode(path: Path, allowed: int) -> None:
    """Clear the permission bits of ``path`` beyond ``allowed`` (never adds any: a stricter mode an
    administrator chose stays). A symlink or a vanished file is left alone."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            return
        mode = stat.S_IMODE(st.st_mode)
        if mode & ~allowed:
            os.chmod(path, mode & allowed)


class RotatingFile:
    """Appends encoded lines to ``log_dir/current.jsonl``, rotating by size, keeping ``keep`` old files."""

    def __init__(self, log_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if keep < 0:
            raise ValueError("keep must be >= 0")
        self.log_dir = log_dir
        self.max_bytes = max_bytes
        self.keep = keep
        self.path = log_dir / CURRENT
        self._fh: BinaryIO | None = None
        self._size = 0

    def open(self) -> None:
        """Create the directory, drop rotated files beyond ``keep``, take away from the directory and
        the files any permission beyond :data:`DIR_MODE` / :data:`FILE_MODE` (a journal of an older
        corral was 0755 / 0644), open ``current.jsonl`` for append."""
        self.log_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        restrict_mode(self.log_dir, DIR_MODE)
        for path in log_files(self.log_dir):
            m = _ROTATED.fullmatch(path.name)
            if m and int(m.group(1)) > self.keep:
                path.unlink(missing_ok=True)
            else:
                restrict_mode(path, FILE_MODE)
        self._open_current()
        assert self._fh is not None
        if self._size > 0 and not self._ends_with_newline():
            self._fh.write(b"\n")  # a torn last line (power cut): start ours on a fresh line
            self._fh.flush()
            self._size += 1

    def _open_current(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        fh = os.fdopen(fd, "ab")
        self._fh = fh
        self._size = os.fstat(fh.fileno()).st_size

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    @property
    def is_open(self) -> bool:
        return self._fh is not None

    @property
    def size(self) -> int:
        return self._size

    def write(self, line: bytes) -> None:
        """Append one encoded line and flush it (no fsync); rotate first if it would not fit."""
        if self._fh is None:
            raise ValueError("journal file is not open")
        if self._size > 0 and self._size + len(line) > self.max_bytes:
            self.rotate()
        assert self._fh is not None
        self._fh.write(line)
        self._fh.flush()
        self._size += len(line)

    def rotate(self) -> None:
        """``current.jsonl`` becomes ``.1``, ``.1`` becomes ``.2`` ... ``.keep`` is dropped."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.keep - 1, 0, -1):
                older = self.log_dir / f"{CURRENT}.{n}"
                if older.exists():
                    os.replace(older, self.log_dir / f"{CURRENT}.{n + 1}")
            if self.path.exists():
                os.replace(self.path, self.log_dir / f"{CURRENT}.1")
        self._open_current()

    def snapshot(self) -> Snapshot:
        """Open every file now (the caller holds the writer's lock so nothing rotates meanwhile)."""
        if self._fh is not None:
            self._fh.flush()
        return Snapshot.of_files(log_files(self.log_dir), current_size=self._size)

    def sync(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Flush, fsync and close; never raises for an already unusable file."""
        fh, self._fh = self._fh, None
        if fh is None:
            return
        try:
            with contextlib.suppress(OSError, ValueError):
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            with contextlib.suppress(OSError):
                fh.close()
