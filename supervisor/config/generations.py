"""The user's persisted config as generations: every commit switches both files at once.

Layout of ``conf/`` (``paths.config_dir``)::

    cloud-config.d/           drop-ins, edited by hand (not managed here)
    .gen/<N>/cloud-config.yml the user's config of generation N (mode 0600)
    .gen/<N>/private.yml      its secrets, when it has any (mode 0600)
    current -> .gen/<N>       the generation in force: swapped with one rename
    cloud-config.yml -> current/cloud-config.yml   stable names, for people and tools
    private.yml -> current/private.yml

A commit writes a whole new generation directory (files fsynced, directory fsynced), then points a new
symlink at it and renames that over ``current``: a crash at any instant leaves the old generation or
the new one in force, never one file of each. ``.gen`` is 0700 and every file 0600: the persisted
config (secrets, but also environment values such as API tokens) is readable by root only.

``recover`` runs before every read of the user's files (boot, reload): it adopts files of the old
layout (regular ``cloud-config.yml``/``private.yml``, also one an editor wrote in place of the link)
into a new generation, and removes what a crash left: generations not in force, half-made symlinks and
the temporary files of atomic writes (``.<name>.*.tmp``). Adoption takes, for each of the two names,
the regular file if there is one, else the generation's file, so that re-running it after a crash
in its middle gives the same config."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from supervisor.atomic import fsync_directory, write_atomic

CLOUD_CONFIG = "cloud-config.yml"
PRIVATE = "private.yml"
GEN_DIR = ".gen"
CURRENT = "current"
FILE_MODE = 0o600
DIR_MODE = 0o700
NAMES = (CLOUD_CONFIG, PRIVATE)


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` did: the files it adopted (old layout or hand-edited) and what it removed."""

    adopted: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class Generations:
    def __init__(self, config_dir: Path) -> None:
        self.dir = config_dir

    @property
    def current_link(self) -> Path:
        return self.dir / CURRENT

    def in_force(self) -> Path | None:
        """The directory of the generation in force (resolved once: read both files from it), or None
        when there is none yet."""
        try:
            target = os.readlink(self.current_link)
        except (FileNotFoundError, OSError):
            return None
        return self.dir / target

    def read_dir(self) -> Path:
        """Where to read the user's files from now: the generation in force, or (old layout, nothing
        committed yet) the config directory itself."""
        return self.in_force() or self.dir

    def commit(self, files: dict[str, bytes | None]) -> Path:
        """Make ``files`` (name -> content; None or absent: no such file) the user's config, whole, in
        one rename. Returns the new generation's directory."""
        gen_root = self.dir / GEN_DIR
        gen_root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(gen_root, DIR_MODE)
        number = self._next_number(gen_root)
        staging = gen_root / f".{number}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=DIR_MODE)
        for name in NAMES:
            content = files.get(name)
            if content is not None:
                write_atomic(staging / name, content, mode=FILE_MODE)
        fsync_directory(staging)
        final = gen_root / str(number)
        os.rename(staging, final)
        fsync_directory(gen_root)
        self._point_at(final)
        self._link_names()
        self._remove_others()
        return final

    def recover(self) -> Recovered:
        """Adopt old-layout or hand-edited files, remove what a crash left; see the module's text."""
        removed = self._remove_stale_temporaries()
        adopted = tuple(name for name in NAMES if _is_regular(self.dir / name))
        if adopted:
            source = self.in_force()
            files: dict[str, bytes | None] = {}
            for name in NAMES:
                regular = self.dir / name
                if _is_regular(regular):
                    files[name] = regular.read_bytes()
                elif source is not None and (source / name).is_file():
                    files[name] = (source / name).read_bytes()
            self.commit(files)
        if self.in_force() is not None:
            self._link_names()
        removed += self._remove_others()
        return Recovered(adopted, removed)

    def _next_number(self, gen_root: Path) -> int:
        numbers = [int(p.name) for p in gen_root.iterdir() if p.name.isdigit()]
        current = self.in_force()
        if current is not None and current.name.isdigit():
            numbers.append(int(current.name))
        return max(numbers, default=0) + 1

    def _point_at(self, generation: Path) -> None:
        tmp = self.dir / f".{CURRENT}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.path.relpath(generation, self.dir), tmp)
        os.replace(tmp, self.current_link)
        fsync_directory(self.dir)

    def _link_names(self) -> None:
        """``cloud-config.yml`` and ``private.yml`` as links into ``current`` (each replaced by a rename;
        a regular file there was adopted first)."""
        changed = False
        for name in NAMES:
            link = self.dir / name
            want = f"{CURRENT}/{name}"
            with contextlib.suppress(OSError):
                if os.readlink(link) == want:
                    continue
            tmp = self.dir / f".{name}.link.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(want, tmp)
            os.replace(tmp, link)
            changed = True
        if changed:
            fsync_directory(self.dir)

    def _remove_others(self) -> tuple[str, ...]:
        """Every generation but the one in force (and half-made ones) goes."""
        gen_root = self.dir / GEN_DIR
        current = self.in_force()
        removed: list[str] = []
        if not gen_root.is_dir():
            return ()
        for entry in gen_root.iterdir():
            if current is not None and entry.name == current.name:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(f"{GEN_DIR}/{entry.name}")
        if removed:
            fsync_directory(gen_root)
        return tuple(sorted(removed))

    def _remove_stale_temporaries(self) -> tuple[str, ...]:
        """What an atomic write or a link swap killed midway left in the config directory."""
        removed = []
        for entry in self.dir.glob(".*.tmp") if self.dir.is_dir() else ():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        if removed:
            fsync_directory(self.dir)
        return tuple(sorted(removed))


def _is_regular(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()
