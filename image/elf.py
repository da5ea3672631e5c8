"""ELF files' dynamic needs, looked up in an image root (never the build machine's own /usr)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import InterpSegment

LIBRARY_DIRS = ("usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "lib/x86_64-linux-gnu")
ELF_MAGIC = b"\x7fELF"


def elf_needs(path: Path) -> tuple[str | None, list[str], list[str]]:
    """(program interpreter, DT_NEEDED names, DT_RUNPATH/DT_RPATH dirs) of an ELF file; (None, [], []) for
    anything else (a script, a static binary with no dynamic section)."""
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            interp = None
            for segment in elf.iter_segments():
                if isinstance(segment, InterpSegment):
                    interp = segment.get_interp_name()
            needed: list[str] = []
            runpath: list[str] = []
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        kind = tag.entry.d_tag
                        value: Any = cast(Any, tag)  # pyelftools sets .needed/.runpath/.rpath per tag
                        if kind == "DT_NEEDED":
                            needed.append(str(value.needed))
                        elif kind in ("DT_RUNPATH", "DT_RPATH"):
                            text = value.runpath if kind == "DT_RUNPATH" else value.rpath
                            runpath += str(text).split(":")
            return interp, needed, runpath
    except ELFError:
        return None, [], []


def find_library(root: Path, name: str, search: Iterable[str]) -> str | None:
    for directory in search:
        candidate = root / directory.lstrip("/") / name
        if candidate.exists():
            return "/" + str(candidate.relative_to(root))
    return None


def unresolved(root: Path) -> list[str]:
    """``"PATH needs NAME"`` for every ``DT_NEEDED`` of every ELF file under ``root`` that no file in
    ``root`` provides: what a strip or an excluded package broke."""
    root = root.resolve()
    problems: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if not _is_elf(path):
                continue
            interp, needed, runpath = elf_needs(path)
            origin = "/" + str(Path(rel).parent)
            search = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath]
            if interp is not None and not (root / interp.lstrip("/")).exists():
                problems.append(f"/{rel} needs {interp}")
            problems += [f"/{rel} needs {lib}" for lib in needed
                         if find_library(root, lib, [*search, *LIBRARY_DIRS]) is None]
    return sorted(problems)


def _is_elf(path: Path) -> bool:
    """A regular file (not a link, not a device node such as the root's dev/console) that is ELF."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        with path.open("rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False

