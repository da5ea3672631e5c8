"""Debian packages for the image: dependency closure, a lock file of pinned versions, download, unpack.

``resolve`` walks Pre-Depends and Depends (never Recommends or Suggests) with ``apt-cache depends``, one
batch of names per level: of an OR group the first alternative is taken unless another one is already
chosen; a virtual package becomes its first provider. Names in ``exclude`` are not taken and not walked
(what an initramfs never runs: dpkg, debconf, init-system-helpers...). The closure is pinned in a lock
file (``name version arch`` per line) whose header holds a hash of the request, so the same request reads
the same versions back; a changed request (or ``update=True``) resolves again and rewrites it.

The lock records what a build used; it must not make the build impossible once Debian's archive moves on
(a security update replaces a version, and the old one is gone from the archive). So before a lock is
used, its pins are checked against apt's lists (``apt-cache madison``, after one ``apt-get update`` when
a pin is missing from them). A pin the archive no longer has *moves*: the closure is walked again, every
pin still available is kept, the rest take apt's candidate version, and the lock is rewritten; the moves
(``name old -> new``) are returned and logged. With ``frozen=True`` (release builds) a missing pin is an
error naming every one, and nothing is rewritten.

``download`` runs ``apt-get download name=version`` for what ``cache_dir`` lacks (apt checks the hashes
against the signed index), so a build whose packages are cached is offline. ``fetch`` is resolve +
download, moving pins that the download found gone. ``unpack`` is ``dpkg -x`` of each, then merges
``/bin``, ``/sbin``, ``/lib``, ``/lib64`` into ``/usr`` as Debian 12 does."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from supervisor.atomic import write_atomic

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "debs"
MERGED = ("bin", "sbin", "lib", "lib64")
_APT_CACHE_DEPENDS = ["apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                      "--no-breaks", "--no-replaces", "--no-enhances"]
_LOCK_HEADER = "# corral image package lock"
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")


DependsLookup = Callable[[Sequence[str]], dict[str, list[list[str]]]]


class DebsError(RuntimeError):
    """A package that cannot be resolved, downloaded or unpacked (the message names it)."""


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str
    arch: str

    @property
    def filename(self) -> str:
        """The name ``apt-get download`` gives the file (an epoch's ':' is written '%3a')."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def request_hash(names: Iterable[str], exclude: Iterable[str] = ()) -> str:
    text = "names:" + ",".join(sorted(set(names))) + "\nexclude:" + ",".join(sorted(set(exclude)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- the lock file ---------------------------------------------------------------------------------------

def format_lock(packages: Iterable[Package], request: str) -> str:
    lines = [f"{_LOCK_HEADER} (written by `python -m image build`; `--update-lock` refreshes it)",
             f"# request {request}"]
    lines += [f"{p.name} {p.version} {p.arch}" for p in sorted(packages)]
    return "\n".join(lines) + "\n"


def parse_lock(text: str, path: Path | str = "lock") -> tuple[str | None, list[Package]]:
    """(request hash or None, packages); a malformed line raises DebsError naming the file and line."""
    request: str | None = None
    packages: list[Package] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("# request "):
            request = line.removeprefix("# request ").strip()
            continue
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if len(words) != 3 or not _NAME.match(words[0]):
            raise DebsError(f"{path}: line {number}: expected 'name version arch', got {line!r}")
        packages.append(Package(*words))
    return request, packages


def read_lock(path: Path) -> tuple[str | None, list[Package]]:
    return parse_lock(path.read_text(), path)


def write_lock(path: Path, packages: Iterable[Package], request: str) -> None:
    write_atomic(path, format_lock(packages, request).encode())


# --- resolving with apt ------------------------------------------------------------------------------------

def parse_depends(text: str) -> dict[str, list[list[str]]]:
    """``apt-cache depends`` output -> {package: [OR group of candidate names, ...]}.

    A dependency line may be followed by indented names: the packages providing it (for a virtual
    package, written ``<name>``, they are the only way to satisfy it). Alternatives of an OR group are
    written ``|Depends:`` on every line but the group's last."""
    result: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    group: list[str] = []
    open_group = False
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw.startswith(" "):
            current = result.setdefault(raw.strip().strip("<>"), [])
            group, open_group = [], False
            continue
        if current is None:
            continue
        stripped = raw.strip()
        if raw.startswith("    "):  # a provider of the dependency just read
            if group:
                group.append(stripped.split(":")[0])
            continue
        kind, _, target = stripped.partition(": ")
        if kind.lstrip("|") not in ("Depends", "PreDepends"):
            continue
        if not open_group:
            group = []
            current.append(group)
        target = target.strip()
        # a virtual package is satisfied by its providers only: mark it so the chooser skips it
        group.append("<virtual>" if target.startswith("<") else target.split(":")[0])
        open_group = kind.startswith("|")
    for deps in result.values():
        deps[:] = [[n for n in g if n != "<virtual>"] for g in deps]
    return result


def choose(group: Sequence[str], chosen: set[str], exclude: set[str]) -> str | None:
    """Which package satisfies an OR group: one already chosen, else the first not excluded; None when
    every alternative is excluded (or the group is empty)."""
    for name in group:
        if name in chosen:
            return None
    if any(name in exclude for name in group):
        return None
    return group[0] if group else None


def closure(names: Sequence[str], exclude: Iterable[str] = (),
            depends: DependsLookup | None = None) -> list[str]:
    """Every package ``names`` need, breadth first; ``depends`` maps a batch of names to their parsed
    dependencies (``apt-cache depends`` by default)."""
    excluded = set(exclude)
    lookup = depends or _apt_depends
    chosen: set[str] = set()
    todo = [n for n in dict.fromkeys(names) if n not in excluded]
    while todo:
        chosen.update(todo)
        found = lookup(todo)
        missing = [n for n in todo if n not in found]
        if missing:
            raise DebsError(f"no such Debian package: {', '.join(missing)}")
        following: list[str] = []
        for name in todo:
            for group in found[name]:
                pick = choose(group, chosen | set(following), excluded)
                if pick is not None and pick not in chosen and pick not in following:
                    following.append(pick)
        todo = following
    return sorted(chosen)


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=1800)
    if result.returncode != 0:
        raise DebsError(f"{' '.join(argv[:3])}... failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _apt_depends(names: Sequence[str]) -> dict[str, list[list[str]]]:
    return parse_depends(_run([*_APT_CACHE_DEPENDS, *names]))


def parse_show(text: str) -> dict[str, Package]:
    """``apt-cache show --no-all-versions`` output -> {name: Package}."""
    found: dict[str, Package] = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                      if ": " in line and not line.startswith(" "))
        if "Package" in fields and "Version" in fields:
            found.setdefault(fields["Package"], Package(fields["Package"], fields["Version"],
                                                        fields.get("Architecture", "all")))
    return found


def candidates(names: Sequence[str]) -> list[Package]:
    found = parse_show(_run(["apt-cache", "show", "--no-all-versions", *names]))
    missing = [n for n in names if n not in found]
    if missing:
        raise DebsError(f"no candidate version for: {', '.join(missing)}")
    return [found[n] for n in names]


def parse_madison(text: str) -> dict[str, set[str]]:
    """``apt-cache madison`` output -> {name: every version apt's lists offer} (binary packages only)."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2].endswith("Packages"):
            found.setdefault(fields[0], set()).add(fields[1])
    return found


def _apt_versions(names: Sequence[str]) -> dict[str, set[str]]:
    return parse_madison(_run(["apt-cache", "madison", *names])) if names else {}


_refreshed = False


def refresh_lists() -> bool:
    """``apt-get update`` once per process (root only): apt's lists may be older than the archive. False
    when it could not run (not root, or it failed: the lists stay as they were)."""
    global _refreshed
    if _refreshed:
        return True
    if os.geteuid() != 0:
        log.warning("apt lists not refreshed: not root")
        return False
    log.info("refreshing apt lists (apt-get update)")
    try:
        _run(["apt-get", "update", "-qq", "-o", "DPkg::Lock::Timeout=300"])
    except DebsError as exc:
        log.warning("apt-get update failed; using the lists as they are", error=str(exc))
        return False
    _refreshed = True
    return True


VersionsLookup = Callable[[Sequence[str]], dict[str, set[str]]]


@dataclass(frozen=True)
class Move:
    """A pin that changed: ``old`` None for a package new to the closure, ``new`` None for one that left."""

    name: str
    old: str | None
    new: str | None

    def __str__(self) -> str:
        return f"{self.name} {self.old or '(new)'} -> {self.new or '(gone)'}"


@dataclass(frozen=True)
class Resolution:
    packages: list[Package]
    moves: list[Move]  # empty when the lock was used as it was


class PinsGone(DebsError):
    """A frozen build's lock pins versions the archive no longer has (the message names every one)."""


def diff(old: Iterable[Package], new: Iterable[Package]) -> list[Move]:
    before = {p.name: p.version for p in old}
    after = {p.name: p.version for p in new}
    return [Move(n, before.get(n), after.get(n)) for n in sorted(before.keys() | after.keys())
            if before.get(n) != after.get(n)]


def missing_pins(packages: Sequence[Package], versions: VersionsLookup | None = None,
                 refresh: Callable[[], bool] | None = None) -> list[Package]:
    """The pins apt's lists do not offer; when there are any, the lists are refreshed once (``refresh``)
    and asked again, so a stale list neither moves a pin nor fails a frozen build."""
    lookup = versions or _apt_versions

    def gone() -> list[Package]:
        offered = lookup(sorted({p.name for p in packages}))
        return [p for p in packages if p.version not in offered.get(p.name, set())]

    missing = gone()
    if missing and (refresh or refresh_lists)():
        missing = gone()
    return missing


def resolve(names: Sequence[str], lock: Path | None, *, exclude: Sequence[str] = (),
            update: bool = False, frozen: bool = False, depends: DependsLookup | None = None,
            versions: VersionsLookup | None = None, candidate: Callable[[Sequence[str]], list[Package]]
            | None = None, refresh: Callable[[], bool] | None = None) -> Resolution:
    """The pinned dependency closure of ``names``: ``lock`` as it is when it was written for the same
    request (names and exclude) and apt still offers every pin; pins it no longer offers move (see the
    module's doc) and the lock is rewritten; no lock, another request or ``update`` resolves it all
    again. ``frozen`` never rewrites: a lock that is missing, for another request or with a pin gone
    raises (PinsGone names every such pin). ``depends``, ``versions``, ``candidate`` and ``refresh``
    stand in for apt (tests)."""
    if frozen and update:
        raise DebsError("--frozen and --update-lock contradict each other")
    choose_candidates = candidate or candidates
    request = request_hash(names, exclude)
    where = str(lock) if lock is not None else "(no lock)"
    locked: list[Package] = []
    if lock is not None and lock.exists():
        locked_request, locked = read_lock(lock)
        if locked_request != request:
            if frozen:
                raise DebsError(f"{where} was written for another package list: build without --frozen "
                                "to resolve it again")
            log.info("lock is for another request: resolving again", lock=where)
            update = True
    elif frozen:
        raise DebsError(f"{where}: no lock to build from (--frozen)")
    if update or not locked:
        packages = sorted(choose_candidates(closure(names, exclude, depends)))
    else:
        gone = missing_pins(locked, versions, refresh)
        if not gone:
            return Resolution(locked, [])
        if frozen:
            raise PinsGone(f"{where} pins versions the archive no longer has: "
                           + ", ".join(f"{p.name} {p.version}" for p in gone)
                           + " (build without --frozen to move them to the archive's current versions)")
        keep = {p.name: p for p in locked if p not in gone}
        wanted = closure(names, exclude, depends)
        packages = sorted([keep[n] for n in wanted if n in keep]
                          + choose_candidates([n for n in wanted if n not in keep]))
    moves = diff(locked, packages)
    if lock is not None:
        write_lock(lock, packages, request)
    if locked and moves:
        log.warning("lock pins moved", lock=where, moves=[str(m) for m in moves])
    return Resolution(packages, moves)


# --- download and unpack -----------------------------------------------------------------------------------

def fetch(names: Sequence[str], lock: Path | None, *, exclude: Sequence[str] = (), update: bool = False,
          frozen: bool = False, cache_dir: Path = DEFAULT_CACHE) -> tuple[Resolution, list[Path]]:
    """``resolve`` + ``download``. apt's lists may still offer a version the archive has dropped (they
    are older than the archive): when the download fails, the lists are refreshed and the pins checked
    again (moving the dropped ones, or naming them when ``frozen``) before a second and last try."""
    resolution = resolve(names, lock, exclude=exclude, update=update, frozen=frozen)
    try:
        return resolution, download(resolution.packages, cache_dir)
    except DebsError as exc:
        if _refreshed or not refresh_lists():
            raise
        log.warning("download failed; trying again with refreshed apt lists", error=str(exc))
    again = resolve(names, lock, exclude=exclude, frozen=frozen)
    return Resolution(again.packages, chain(resolution.moves, again.moves)), \
        download(again.packages, cache_dir)


def chain(first: Iterable[Move], second: Iterable[Move]) -> list[Move]:
    """The moves of two resolutions one after the other, as one."""
    merged = {m.name: m for m in first}
    for m in second:
        prev = merged.get(m.name)
        merged[m.name] = Move(m.name, prev.old if prev else m.old, m.new)
    return [m for _, m in sorted(merged.items()) if m.old != m.new]


def download(pkgs: Sequence[Package], cache_dir: Path = DEFAULT_CACHE) -> list[Path]:
    """The .deb file of each package, fetched with ``apt-get download`` when not cached."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    absent = [p for p in pkgs if not (cache_dir / p.filename).exists()]
    if absent:
        log.info("downloading", count=len(absent), cache=str(cache_dir))
        _run(["apt-get", "download", "-q", *(f"{p.name}:{p.arch}={p.version}" if p.arch != "all"
                                              else f"{p.name}={p.version}" for p in absent)],
             cwd=cache_dir)
    paths = [cache_dir / p.filename for p in pkgs]
    lost = [p.name for p in pkgs if not (cache_dir / p.filename).exists()]
    if lost:
        raise DebsError(f"apt-get download did not write: {', '.join(lost)} (in {cache_dir})")
    return paths


def unpack(debs: Iterable[Path], root: Path) -> None:
    """``dpkg -x`` each package into ``root``, then merge /bin, /sbin, /lib, /lib64 into /usr."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", os.fspath(deb), os.fspath(root)])
        usr_merge(root)  # dpkg-deb may replace a merged /lib symlink with a directory: merge after each


def _merge_tree(src: Path, dst: Path) -> None:
    """Move everything under ``src`` into ``dst``; an entry already in ``dst`` wins."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge_tree(entry, target)
        elif target.exists() or target.is_symlink():
            log.debug("usr-merge: keeping /usr's copy", path=str(target))
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        else:
            entry.rename(target)
    src.rmdir()


def usr_merge(root: Path) -> None:
    for top in MERGED:
        path = root / top
        if path.is_symlink():
            continue
        if path.is_dir():
            _merge_tree(path, root / "usr" / top)
        elif top == "lib64" and not (root / "usr" / "lib64").exists():
            continue  # no 64-bit loader link in what was unpacked (yet)
        (root / "usr" / top).mkdir(parents=True, exist_ok=True)
        path.symlink_to(f"usr/{top}")


def merged_path(path: str) -> str:
    """A path as a package lists it (``./bin/ls``) -> where it is in a usr-merged root (``usr/bin/ls``)."""
    rel = path.removeprefix("./").lstrip("/").rstrip("/")
    top, _, rest = rel.partition("/")
    if top in MERGED:
        return f"usr/{top}/{rest}" if rest else f"usr/{top}"
    return rel


def contents(deb: Path) -> list[str]:
    """The paths a package ships (files and symlinks, not directories), usr-merged."""
    out = subprocess.run(["dpkg-deb", "--fsys-tarfile", os.fspath(deb)], capture_output=True, timeout=600)
    if out.returncode != 0:
        raise DebsError(f"dpkg-deb --fsys-tarfile {deb}: {out.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        return [merged_path(m.name) for m in tar.getmembers() if not m.isdir()]
