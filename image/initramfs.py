"""The initramfs: a newc cpio of the root directory, compressed for the kernel.

``listing`` gives the archive's order: every directory before what it holds, then sorted, with chosen
paths moved to the end (the preloaded image archives repeat the docker binaries of the root; next to each
other the compressor's window finds the repeat). ``write`` runs ``cpio -o -H newc --reproducible`` (owner
root, fixed order; the caller fixes mtimes) and compresses: zstd (fast, the default), xz with the crc32
check the kernel's decoder needs, or none. Returns the sizes of the raw archive and the compressed file."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

COMPRESSORS: dict[str, list[str] | None] = {
    "none": None,
    # zstd's long-distance matching over 128 MiB, the largest window the kernel's decoder accepts (a
    # 256 MiB one fails as "ZSTD-compressed data is probably corrupt"): it reaches the repeats
    # ``split_around`` places. xz: the x86 branch filter first (2.7 % smaller on dockerd; the kernel has
    # CONFIG_XZ_DEC_X86), a 64 MiB dictionary, and the CRC32 check (the kernel has no CRC64). One
    # thread: -T0 cuts the archive into independent blocks (3 x 64 MiB), which loses the repeats across
    # a cut (1.6 % larger); "e" (extreme) is 0.4 % smaller again. About 6 min on this machine.
    "zstd": ["zstd", "-q", "-T0", "-3", "--long=27", "--stdout"],
    "xz": ["xz", "-q", "--check=crc32", "--x86", "--lzma2=preset=9e", "-T1", "--stdout"],
}


class InitramfsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Sizes:
    raw: int  # the uncompressed cpio archive
    compressed: int  # the file written (== raw for "none")


def _key(rel: str) -> tuple[str, ...]:
    return tuple(rel.split("/"))


def listing(root: Path, last: Sequence[str] = ()) -> list[str]:
    """Paths under ``root`` (relative, '.' first) in archive order: sorted by path components (so a
    directory comes before its contents); entries under a ``last`` prefix moved to the end, in
    ``last``'s order, their directories staying in place."""
    entries = ["."]
    for dirpath, dirnames, filenames in os.walk(root):
        base = os.path.relpath(dirpath, root)
        for name in [*dirnames, *filenames]:
            entries.append(name if base == "." else f"{base}/{name}")
    return order(entries, last, {e for e in entries if (root / e).is_dir() and not (root / e).is_symlink()})


def order(entries: Sequence[str], last: Sequence[str] = (), directories: set[str] | None = None) -> list[str]:
    """The pure part of ``listing``: sort, then move the non-directory entries under ``last`` to the end."""
    dirs = directories or set()
    ranked = sorted(entries, key=lambda e: (0, ()) if e == "." else (0, _key(e)))

    def tail_rank(entry: str) -> int | None:
        if entry in dirs:
            return None
        for i, prefix in enumerate(last):
            if entry == prefix or entry.startswith(prefix.rstrip("/") + "/"):
                return i
        return None

    head = [e for e in ranked if tail_rank(e) is None]
    tail = sorted((e for e in ranked if tail_rank(e) is not None), key=lambda e: (tail_rank(e), _key(e)))
    return head + tail


def split_around(layer: Sequence[str], sizes: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """Where to put a root's copies of the files an archive holds (``layer``, in the archive's order) so
    that the compressor finds each repeat: the first k before the archive, the rest after it.

    A file before the archive lies (the copies before it, from it on) + (the archive before it) back
    from its repeat: the sum of the first k sizes, whatever the file. After it, likewise the sum of the
    rest. The k that minimises the larger sum keeps every repeat within about half the archive."""
    total = sum(sizes[rel] for rel in layer)
    best_k, best, running = 0, total, 0
    for k in range(len(layer) + 1):
        worst = max(running, total - running)
        if worst < best:
            best_k, best = k, worst
        if k < len(layer):
            running += sizes[layer[k]]
    return list(layer[:best_k]), list(layer[best_k:])


def write(root: Path, dest: Path, compression: str, last: Sequence[str] = ()) -> Sizes:
    """Archive ``root`` into ``dest`` (replaced atomically)."""
    if compression not in COMPRESSORS:
        raise InitramfsError(f"compression {compression!r}: expected one of {', '.join(COMPRESSORS)}")
    names = listing(root, last)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".initrd.") as tmp:
        raw = Path(tmp) / "initrd.cpio"
        with raw.open("wb") as out:
            result = subprocess.run(
                ["cpio", "--quiet", "-o", "-H", "newc", "--reproducible", "-R", "0:0", "--null"],
                input=b"\0".join(n.encode() for n in names) + b"\0", stdout=out, stderr=subprocess.PIPE,
                cwd=root, timeout=1800)
        if result.returncode != 0:
            raise InitramfsError(f"cpio failed: {result.stderr.decode(errors='replace').strip()}")
        raw_size = raw.stat().st_size
        command = COMPRESSORS[compression]
        if command is None:
            final = raw
        else:
            final = Path(tmp) / "initrd"
            with raw.open("rb") as src, final.open("wb") as out:
                result = subprocess.run(command, stdin=src, stdout=out, stderr=subprocess.PIPE, timeout=3600)
            if result.returncode != 0:
                raise InitramfsError(f"{command[0]} failed: {result.stderr.decode(errors='replace').strip()}")
        final.chmod(0o644)
        os.replace(final, dest)
        return Sizes(raw=raw_size, compressed=dest.stat().st_size)
