"""Image preload: at boot, ``docker load`` every image archive shipped with the OS or dropped in by the
user, once.

Archives (``*.tar``, ``*.tar.gz``/``*.tgz``, ``*.tar.xz``, ``*.tar.bz2``: what ``docker load`` reads)
are taken from ``/usr/share/corral/images/`` (shipped) and ``/var/lib/corral/preload/`` (the user's),
under the Paths prefix. Each is streamed to dockerd through the API (``POST /images/load``), and its
stamp (size, mtime in nanoseconds, the images it held, when) is recorded in
``/var/lib/corral/preload.json``, rewritten atomically once the archives (the smallest first, each
with a head start) are in.
An archive is skipped while its stamp matches and the images it held still exist; a changed size or
mtime (a replaced archive) or a missing image (a wiped data root) loads it again. Each load is reported
in the journal: file, size, seconds, images. ``plan_loads`` is the pure decision."""

from __future__ import annotations

import asyncio
import functools
import json
import tarfile
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from supervisor.atomic import write_atomic
from supervisor.paths import Paths
from supervisor.tasks import spawn_task
from units.preloads import Preloads
from units.runtime import DockerAPIError, DockerUnavailable, LoadResult, Runtime

log = structlog.get_logger("units.images")

IMAGE_DIRS = ("/usr/share/corral/images", "/var/lib/corral/preload")
SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
STAMP_FILE = "preload.json"
STAMP_VERSION = 1
HEAD_START = 2.0  # seconds an archive's load has before the next (bigger) one begins

T = TypeVar("T")
MANIFEST_MEMBERS = 100_000  # tar members looked at for manifest.json before its images count as unknown
MANIFEST_BYTES = 1 << 20  # a larger manifest.json is not read
MANIFEST_TAGS = 1_000  # image names taken from one manifest at most


@dataclass(frozen=True)
class Target:
    """Which dockerd a preload feeds: the directories its archives come from (under the Paths prefix)
    and the stamp file (in the state directory) that remembers what was loaded into it."""

    name: str
    dirs: tuple[str, ...]
    stamp_file: str


SYSTEM = Target("system", IMAGE_DIRS, STAMP_FILE)
# The user's dockerd gets images of its own: the OS ships busybox (`docker run --rm busybox echo hi` works
# with no registry), and the user may drop archives in /var/lib/corral/user-preload.
USER = Target("user", ("/usr/share/corral/user-images", "/var/lib/corral/user-preload"),
              "user-preload.json")


@dataclass(frozen=True)
class Archive:
    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Stamp:
    size: int
    mtime_ns: int
    images: tuple[str, ...] = ()
    loaded_at: float = 0.0

    def matches(self, archive: Archive) -> bool:
        return self.size == archive.size and self.mtime_ns == archive.mtime_ns


@dataclass
class PreloadResult:
    loaded: list[str] = field(default_factory=list)  # archive paths
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # archive path -> reason
    images: list[str] = field(default_factory=list)  # images loaded by this pass

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_dirs(paths: Paths, target: Target = SYSTEM) -> list[Path]:
    return [paths.under(d) for d in target.dirs]


def stamp_path(paths: Paths, target: Target = SYSTEM) -> Path:
    return paths.state_dir / target.stamp_file


def find_archives(directories: Iterable[Path]) -> list[Archive]:
    """Image archives in ``directories`` (not recursive; hidden files skipped), in order, sorted by name."""
    found = []
    for directory in directories:
        try:
            entries = sorted(directory.iterdir())
        except FileNotFoundError:
            continue
        for path in entries:
            if path.name.startswith(".") or not path.name.endswith(SUFFIXES):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file():
                found.append(Archive(path, st.st_size, st.st_mtime_ns))
    return found


def plan_loads(archives: Sequence[Archive], stamps: Mapping[str, Stamp],
               missing_images: Iterable[str] = ()) -> tuple[list[Archive], list[Archive]]:
    """(to load, to skip): an archive is loaded unless its stamp matches its size and mtime and none of
    the images it held is missing."""
    missing = set(missing_images)
    load, skip = [], []
    for archive in archives:
        stamp = stamps.get(str(archive.path))
        if stamp is not None and stamp.matches(archive) and not missing.intersection(stamp.images):
            skip.append(archive)
        else:
            load.append(archive)
    return load, skip


def read_stamps(path: Path) -> dict[str, Stamp]:
    """The stamps on file; an unreadable or foreign file counts as none (everything is loaded again)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("preload stamps unreadable; loading every archive", file=str(path), error=str(exc))
        return {}
    if not isinstance(data, dict) or data.get("version") != STAMP_VERSION:
        return {}
    stamps = {}
    for name, entry in (data.get("archives") or {}).items():
        try:
            stamps[str(name)] = Stamp(int(entry["size"]), int(entry["mtime_ns"]),
                                      tuple(str(i) for i in entry.get("images") or ()),
                                      float(entry.get("loaded_at") or 0.0))
        except (KeyError, TypeError, ValueError):
            continue
    return stamps


def write_stamps(path: Path, stamps: Mapping[str, Stamp]) -> None:
    data = {"version": STAMP_VERSION,
            "archives": {name: {"size": s.size, "mtime_ns": s.mtime_ns, "images": list(s.images),
                                "loaded_at": s.loaded_at} for name, s in sorted(stamps.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def archive_images(path: Path) -> tuple[str, ...] | None:
    """The images (RepoTags) a ``docker save`` archive's ``manifest.json`` names; None when that is not
    known cheaply: a compressed archive (it would be decompressed whole), no manifest among its first
    ``MANIFEST_MEMBERS`` members, one larger than ``MANIFEST_BYTES``, or not readable. Blocking."""
    if path.name.endswith(SUFFIXES[1:]):
        return None
    try:
        with tarfile.open(path, "r:") as tar:
            for count, member in enumerate(tar):
                if count >= MANIFEST_MEMBERS:
                    return None
                if member.name.lstrip("./") != "manifest.json":
                    continue
                if not member.isfile() or member.size > MANIFEST_BYTES:
                    return None
                handle = tar.extractfile(member)
                if handle is None:
                    return None
                manifest = json.loads(handle.read(MANIFEST_BYTES))
                break
            else:
                return None
    except (OSError, tarfile.TarError, ValueError):
        return None
    if not isinstance(manifest, list):
        return None
    tags = [str(t) for entry in manifest if isinstance(entry, dict)
            for t in (entry.get("RepoTags") or []) if isinstance(t, str)]
    return tuple(tags[:MANIFEST_TAGS])


def expected_archives(paths: Paths, target: Target = SYSTEM) -> dict[str, tuple[str, ...] | None]:
    """Every archive a preload pass will look at (path -> the images it holds, from its stamp when that
    matches, else its manifest; None: unknown): what units wait for until the pass says (loaded, not
    needed, failed). Blocking (run it in a thread)."""
    stamps = read_stamps(stamp_path(paths, target))
    found: dict[str, tuple[str, ...] | None] = {}
    for archive in find_archives(image_dirs(paths, target)):
        stamp = stamps.get(str(archive.path))
        found[str(archive.path)] = (stamp.images if stamp is not None and stamp.matches(archive)
                                    else archive_images(archive.path))
    return found


async def _load(runtime: Runtime, archive: Archive, target: Target) -> LoadResult | str:
    """Load one archive: what dockerd loaded, or why it did not (logged)."""
    log.info("loading image archive", file=str(archive.path), size=archive.size, dockerd=target.name)
    try:
        loaded = await runtime.load_image(archive.path)
    except (DockerUnavailable, DockerAPIError, OSError) as exc:
        log.error("image archive not loaded", file=str(archive.path), error=str(exc), dockerd=target.name)
        return str(exc)
    log.info("image archive loaded", file=str(archive.path), size=archive.size, dockerd=target.name,
             seconds=round(loaded.seconds, 3), images=list(loaded.images),
             mib_per_s=round(archive.size / (1 << 20) / max(loaded.seconds, 1e-6), 1))
    return loaded


async def staggered(works: Sequence[Callable[[], Coroutine[Any, Any, T]]], head_start: float,
                    name: str) -> list[T]:
    """Run ``works`` in order, each begun once the one before has ended or ``head_start`` seconds after
    the one before began, whichever comes first (a load that hangs holds the next back by ``head_start``
    at most); their results, in order."""
    tasks: list[asyncio.Task[T]] = []
    try:
        for i, work in enumerate(works):
            if tasks:
                await asyncio.wait({tasks[-1]}, timeout=head_start)
            tasks.append(spawn_task(work(), name=f"{name}:{i}"))
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()  # (a no-op once done; the rest when the pass itself is cancelled)


async def preload(runtime: Runtime, paths: Paths, *, directories: Sequence[Path] | None = None,
                  target: Target = SYSTEM, progress: Preloads | None = None) -> PreloadResult:
    """One pass into ``target``'s dockerd: load what is new or changed, skip the rest. Failures are
    reported per archive and do not stop the pass. ``progress`` is told as each archive is done with
    (skipped, loaded or failed), and that nothing is pending once the pass ends, however it ends."""
    try:
        return await _preload(runtime, paths, directories, target, progress)
    finally:
        if progress is not None:
            progress.finish_all()


async def _preload(runtime: Runtime, paths: Paths, directories: Sequence[Path] | None, target: Target,
                   progress: Preloads | None) -> PreloadResult:
    dirs = list(directories) if directories is not None else image_dirs(paths, target)
    stamps_file = stamp_path(paths, target)
    archives = await asyncio.to_thread(find_archives, dirs)
    stamps = await asyncio.to_thread(read_stamps, stamps_file)
    result = PreloadResult()
    if not archives:
        log.debug("no image archives to preload", dirs=[str(d) for d in dirs])
        return result
    recorded = {i for a in archives if (s := stamps.get(str(a.path))) and s.matches(a) for i in s.images}
    missing = [image for image in sorted(recorded) if not await runtime.image_exists(image)]
    to_load, to_skip = plan_loads(archives, stamps, missing)
    for archive in to_skip:
        result.skipped.append(str(archive.path))
        log.info("image archive already loaded", file=str(archive.path), size=archive.size,
                 dockerd=target.name)
        if progress is not None:
            progress.finished(str(archive.path), True)

    async def one(archive: Archive) -> LoadResult | str:
        outcome = await _load(runtime, archive, target)
        if progress is not None:  # its units are started now, not once every archive is in
            progress.finished(str(archive.path), not isinstance(outcome, str))
        return outcome

    # Smallest first, each with a head start (``staggered``): one after another by name, a 30 KB archive
    # took 2 s after a 19 MiB one under TCG; side by side, 3.5 s beside it (dockerd's loads share the two
    # vCPUs), and the unit that needs only the small one (the user dockerd) waited for it. The stamps are
    # written once, after all of them.
    to_load = sorted(to_load, key=lambda archive: (archive.size, str(archive.path)))
    outcomes = await staggered([functools.partial(one, archive) for archive in to_load], HEAD_START,
                               name=f"preload:{target.name}")
    for archive, outcome in zip(to_load, outcomes, strict=True):
        if isinstance(outcome, str):
            result.failed[str(archive.path)] = outcome
            continue
        stamps[str(archive.path)] = Stamp(archive.size, archive.mtime_ns, outcome.images, time.time())
        result.loaded.append(str(archive.path))
        result.images.extend(outcome.images)
    if result.loaded:
        await asyncio.to_thread(write_stamps, stamps_file, stamps)
    # Stamps of archives that are gone are dropped, so a file put back later is loaded again.
    present = {str(a.path) for a in archives}
    if set(stamps) - present:
        await asyncio.to_thread(write_stamps, stamps_file, {k: v for k, v in stamps.items() if k in present})
    return result
