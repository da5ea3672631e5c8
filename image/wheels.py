"""The image's Python requirements: pinned in ``image/python.lock``, downloaded as wheels into a cache.

The definition names the requirements (``aiodocker``, ``pyroute2``...); the lock pins each to a version
(``name==version``), with a hash of the names in its header as the Debian lock has. The pins are the
versions the project's venv runs the tests against: a name the lock lacks (or ``update``) is pinned to
the version installed beside this builder, else to the index's newest. Wheels are fetched once with the
build machine's pip (``pip download --only-binary :all: --no-deps``) into ``.cache/wheels``, so later
builds install them offline. A pin the index no longer serves (a yanked-and-deleted release, a mirror
that lacks it) moves the same way a Debian pin does (image/debs.py): to the venv's version, the lock is
rewritten and the move reported; ``frozen`` fails naming every such pin instead."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from image.debs import DebsError, Move, PinsGone, request_hash
from supervisor.atomic import write_atomic

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "wheels"
HOST_PYTHON = "/usr/bin/python3"  # the build machine's python: the same 3.11 as the image's
_HEADER = "# corral image Python lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")

Fetcher = Callable[[Sequence[str], Path], str | None]  # pins, cache -> None, or pip's error text


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str, path: Path | str = "python.lock") -> tuple[str | None, dict[str, str]]:
    """(request hash or None, {name: version}); a malformed line names the file and line."""
    request: str | None = None
    pins: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("# request "):
            request = line.removeprefix("# request ").strip()
        elif line and not line.startswith("#"):
            match = _PIN.match(line)
            if not match:
                raise DebsError(f"{path}: line {number}: expected 'name==version', got {line!r}")
            pins[match[1]] = match[2]
    return request, pins


def format_lock(pins: dict[str, str], request: str) -> str:
    ordered = sorted(pins.items(), key=lambda item: canonical(item[0]))
    lines = [f"{_HEADER} (written by `python -m image build`; `--update-lock` refreshes it)",
             f"# request {request}", *(f"{n}=={v}" for n, v in ordered)]
    return "\n".join(lines) + "\n"


def venv_version(name: str) -> str | None:
    """The version of ``name`` installed beside this builder (the project's venv), if any."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def wheel_path(cache: Path, name: str, version: str) -> Path | None:
    """The cached wheel of ``name`` ``version``, if there is one."""
    stem = f"{canonical(name).replace('-', '_')}-{version}-"
    for path in sorted(cache.glob("*.whl")):
        if path.name.lower().startswith(stem.lower()):
            return path
    return None


def pip_download(pins: Sequence[str], cache: Path) -> str | None:
    """``pip download`` of ``pins`` into ``cache``; None when it worked, else pip's error text."""
    result = subprocess.run([HOST_PYTHON, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary",
                             ":all:", "--disable-pip-version-check", "--dest", os.fspath(cache), *pins],
                            capture_output=True, text=True, timeout=1800)
    return None if result.returncode == 0 else (result.stderr.strip()[-2000:] or "pip download failed")


def pin(names: Sequence[str], lock: Path, *, update: bool = False, frozen: bool = False,
        cache: Path = DEFAULT_CACHE, download: Fetcher = pip_download,
        installed: Callable[[str], str | None] = venv_version) -> tuple[dict[str, str], list[Move]]:
    """The pins of ``names`` with every wheel in ``cache``, and the pins that moved (lock rewritten)."""
    if frozen and update:
        raise DebsError("--frozen and --update-lock contradict each other")
    request = request_hash(names)
    locked: dict[str, str] = {}
    if lock.exists():
        locked_request, locked = parse_lock(lock.read_text(), lock)
        if locked_request != request:
            if frozen:
                raise DebsError(f"{lock} was written for another requirement list: build without --frozen")
            update = True
    elif frozen:
        raise DebsError(f"{lock}: no lock to build from (--frozen)")
    pins: dict[str, str] = {}
    for name in names:
        version = None if update else locked.get(name)
        version = version or installed(name)
        if version is None:
            raise DebsError(f"{lock}: {name} is neither pinned nor installed in this venv: "
                            "run `make venv` (pip install -e .[test]) first")
        pins[name] = version
    cache.mkdir(parents=True, exist_ok=True)
    gone = _fetch(pins, cache, download)
    if gone and frozen:
        raise PinsGone(f"{lock} pins versions the index no longer serves: "
                       + ", ".join(f"{n}=={pins[n]}" for n in gone)
                       + " (build without --frozen to move them to the venv's versions)")
    for name in gone:
        fallback = installed(name)
        if fallback is None or fallback == pins[name]:
            raise DebsError(f"{name}=={pins[name]}: cannot be downloaded, and this venv has no other "
                            f"version to pin instead: {gone[name]}")
        pins[name] = fallback
    still = _fetch(pins, cache, download)
    if still:
        raise DebsError("cannot download: " + "; ".join(f"{n}=={pins[n]}: {e}" for n, e in still.items()))
    moves = [Move(n, locked.get(n), pins.get(n)) for n in sorted(set(locked) | set(pins), key=canonical)
             if locked.get(n) != pins.get(n)]
    if moves or not lock.exists():
        write_atomic(lock, format_lock(pins, request).encode())
    if locked and moves:
        log.warning("lock pins moved", lock=str(lock), moves=[str(m) for m in moves])
    return pins, moves


def _fetch(pins: dict[str, str], cache: Path, download: Fetcher) -> dict[str, str]:
    """Download what ``cache`` lacks; {name: error} for the pins that could not be had."""
    absent = [n for n, v in pins.items() if wheel_path(cache, n, v) is None]
    if not absent or download([f"{n}=={pins[n]}" for n in absent], cache) is None:
        return {}
    errors = {}  # one of them failed: find which, one at a time (the others land in the cache)
    for name in absent:
        error = download([f"{name}=={pins[name]}"], cache)
        if error is not None:
            errors[name] = error
    return errors


def wheels(pins: dict[str, str], cache: Path = DEFAULT_CACHE) -> list[Path]:
    """The cached wheel files of ``pins`` (``pin`` has fetched them)."""
    paths = []
    for name, version in sorted(pins.items()):
        path = wheel_path(cache, name, version)
        if path is None:
            raise DebsError(f"{name}=={version}: no wheel in {cache}")
        paths.append(path)
    return paths


__all__ = ["PinsGone", "pin", "wheels"]
