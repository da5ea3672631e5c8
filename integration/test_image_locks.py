"""The image's lock files against Debian's real archive: a pin the archive no longer has moves (and the
lock is rewritten, naming the move); ``--frozen`` fails naming it instead and rewrites nothing.

A version that does not exist stands in for one a security update replaced: to apt they are the same
(``apt-cache madison`` does not list it, ``apt-get download name=version`` cannot find it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from image import build, console, debs

REPO = Path(__file__).resolve().parent.parent
GONE = "1:0.0-gone1"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (apt-get update, ldconfig -r)"),
    pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt"),
    pytest.mark.timeout(1800),
]


def _repin(lock: Path, name: str, version: str) -> None:
    """Pin ``name`` to ``version`` in ``lock``, keeping its request header (so the lock is still "for"
    the same package list)."""
    text, n = re.subn(rf"^{re.escape(name)} \S+ ", f"{name} {version} ", lock.read_text(), flags=re.M)
    assert n == 1, f"{name} not pinned in {lock}"
    lock.write_text(text)


def test_real_archive_moves_a_pin_it_no_longer_has(tmp_path: Path) -> None:
    lock = tmp_path / "console.lock"
    shutil.copyfile(build.CONSOLE_LOCK, lock)
    _repin(lock, "busybox-static", GONE)
    resolution = debs.resolve(console.PACKAGES, lock, exclude=console.EXCLUDE)
    moved = {m.name: m for m in resolution.moves}
    assert moved["busybox-static"].old == GONE
    now = moved["busybox-static"].new
    assert now is not None and now in debs.parse_madison(
        subprocess.run(["apt-cache", "madison", "busybox-static"], capture_output=True, text=True,
                       check=True).stdout)["busybox-static"]
    assert f"busybox-static {now} amd64" in lock.read_text()
    assert debs.resolve(console.PACKAGES, lock, exclude=console.EXCLUDE).moves == []  # settled


def test_frozen_names_the_pin_and_keeps_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "console.lock"
    shutil.copyfile(build.CONSOLE_LOCK, lock)
    _repin(lock, "busybox-static", GONE)
    before = lock.read_text()
    with pytest.raises(debs.PinsGone, match=f"busybox-static {re.escape(GONE)}"):
        debs.resolve(console.PACKAGES, lock, exclude=console.EXCLUDE, frozen=True)
    assert lock.read_text() == before


def _build(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "image", "build", "-o", os.fspath(tmp_path / "out"),
            "--lock", os.fspath(tmp_path / "packages.lock"),
            "--console-lock", os.fspath(tmp_path / "console.lock"),
            "--python-lock", os.fspath(tmp_path / "python.lock"), *extra]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1800)


def test_the_build_moves_dropped_pins_in_every_lock_and_frozen_refuses(tmp_path: Path) -> None:
    """`corral-image build` (what `make image`, `make run` and the guest tests run) with a pin gone from
    each lock: --frozen fails naming all three and writes nothing; without it the build succeeds, says
    which pins moved from what to what, and rewrites the locks."""
    for name in ("packages.lock", "console.lock", "python.lock"):
        shutil.copyfile(REPO / "image" / name, tmp_path / name)
    _repin(tmp_path / "packages.lock", "busybox-static", GONE)
    _repin(tmp_path / "console.lock", "busybox-static", GONE)
    python_lock = tmp_path / "python.lock"
    python_lock.write_text(re.sub(r"^structlog==\S+$", "structlog==0.0.1", python_lock.read_text(),
                                  flags=re.M))
    before = {n: (tmp_path / n).read_text() for n in ("packages.lock", "console.lock", "python.lock")}

    frozen = _build(tmp_path, "--frozen")
    assert frozen.returncode == 1, frozen.stderr[-3000:]
    assert f"packages.lock pins versions the archive no longer has: busybox-static {GONE}" in frozen.stderr
    assert f"console.lock pins versions the archive no longer has: busybox-static {GONE}" in frozen.stderr
    assert "python.lock pins versions the index no longer serves: structlog==0.0.1" in frozen.stderr
    assert {n: (tmp_path / n).read_text() for n in before} == before
    assert not (tmp_path / "out" / "initrd").exists()

    moved = _build(tmp_path)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert re.search(rf"busybox-static {re.escape(GONE)} -> \S+", moved.stderr)
    assert re.search(r"structlog 0\.0\.1 -> \S+", moved.stderr)
    assert "pin(s) moved" in moved.stderr
    for name in before:
        assert (tmp_path / name).read_text() != before[name], name
    assert GONE not in (tmp_path / "packages.lock").read_text()
    assert "structlog==0.0.1" not in python_lock.read_text()
    assert (tmp_path / "out" / "initrd").exists()

    again = _build(tmp_path, "--frozen")  # the rewritten locks are complete: a frozen build takes them
    assert again.returncode == 0, again.stderr[-3000:]
    assert "moved" not in again.stderr
