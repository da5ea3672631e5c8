"""The build's check that every ELF file's libraries are in the root (what a strip or exclude broke)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from image.elf import elf_needs, unresolved

TRUE = Path(os.path.realpath("/usr/bin/true"))


def test_a_binary_without_its_libraries_is_named_with_what_it_needs(tmp_path: Path) -> None:
    interp, needed, _ = elf_needs(TRUE)
    assert interp is not None and "libc.so.6" in needed
    (tmp_path / "usr/bin").mkdir(parents=True)
    shutil.copy(TRUE, tmp_path / "usr/bin/true")
    os.mkfifo(tmp_path / "usr/bin/fifo")  # opening a FIFO (or dev/console) would block: never opened
    (tmp_path / "usr/bin/script").write_text("#!/bin/sh\n")
    assert unresolved(tmp_path) == sorted([f"/usr/bin/true needs {interp}",
                                           *(f"/usr/bin/true needs {lib}" for lib in needed)])
    libdir = tmp_path / "usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    for lib in needed:
        shutil.copy(os.path.realpath(f"/usr/lib/x86_64-linux-gnu/{lib}"), libdir / lib)
    loader = tmp_path / interp.lstrip("/")
    loader.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.realpath(interp), loader)
    shutil.copy(os.path.realpath(interp), libdir / Path(interp).name)  # libc.so.6 needs it by soname
    assert unresolved(tmp_path) == []
