"""Assembling the image's root directory: what goes on top of the unpacked Debian packages.

Each step is a function of the root directory and plain data from the definition, so the builder can
cache a stage and tests can run a step on a small tree: ``strip`` (drop docs, locales, static libraries,
unused stdlib; rules as globs), ``add_links`` (what dpkg's alternatives would have made: ``iptables`` ->
``xtables-nft-multi``), ``add_busybox_applets`` (a link for each applet no package provides: ``sh``,
``ip``, ...), ``install_python`` (pip, no dependencies resolved: the definition pins them all),
``install_corral`` (this repository's packages, built by pip from a clean copy), ``compile_python``
(``.pyc`` next to every module, unchecked-hash so mtimes do not matter), ``write_etc``, ``install_init``
and ``install_config``. ``clamp_mtimes`` makes the tree's timestamps fixed before it is archived."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import structlog

from handlers.hostname import hostname_file, hosts_file

log = structlog.get_logger(__name__)

HOST_PYTHON = "/usr/bin/python3"  # the build machine's python: the same 3.11.2 as the image's
PYTHON_VERSION = "3.11"
DIST_PACKAGES = Path("usr/lib/python3/dist-packages")
# image/ is the builder: not in the guest
CORRAL_PACKAGES = ("supervisor", "handlers", "netconf", "units", "storage", "swarm", "osdisk")
CORRAL_FILES = ("pyproject.toml", "README.md")
BUSYBOX = Path("usr/bin/busybox")
DIRECTORIES = {"proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777, "root": 0o700,
               "mnt": 0o755, "home": 0o755, "var": 0o755, "var/lib": 0o755, "var/log": 0o755,
               "var/cache": 0o755, "etc/corral": 0o755, "usr/share/corral/images": 0o755,
               "usr/share/corral/cloud-config.d": 0o755,
               "etc/corral/seed": 0o755}  # the seed datasource's directory: present, so never "not found"
INIT_LINKS = {"var/run": "../run", "var/lock": "../run/lock", "etc/mtab": "../proc/self/mounts"}


class RootfsError(RuntimeError):
    """A step that could not be done (the message names the file or tool)."""


def _run(argv: Sequence[str], cwd: Path | None = None) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=1800)
    if result.returncode != 0:
        raise RootfsError(f"{' '.join(argv[:4])}... failed ({result.returncode}): "
                          f"{(result.stderr or result.stdout).strip()[-3000:]}")
    return result.stdout


# --- strip ---------------------------------------------------------------------------------------------

def matches(rel: str, patterns: Iterable[str]) -> bool:
    """Whether a path (relative to the root, '/'-separated) is stripped by one of ``patterns``.

    A pattern without wildcards names a path and everything under it; ``**/GLOB`` matches an entry's
    name at any depth; any other pattern is a glob over the whole relative path."""
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if fnmatch.fnmatchcase(name, pattern[3:]):
                return True
        elif any(c in pattern for c in "*?["):
            if fnmatch.fnmatchcase(rel, pattern):
                return True
        elif rel == pattern or rel.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def tree_size(path: Path) -> int:
    """Bytes under ``path`` (symlinks not followed)."""
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    return sum(tree_size(p) for p in path.iterdir())


def strip(root: Path, patterns: Sequence[str]) -> tuple[int, int]:
    """Remove what ``patterns`` match under ``root``; returns (entries removed, bytes freed)."""
    removed = freed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for entry in [*dirnames, *filenames]:
            path = base / entry
            rel = path.relative_to(root).as_posix()
            if not matches(rel, patterns):
                continue
            freed += tree_size(path)
            removed += 1
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        dirnames[:] = [d for d in dirnames if (base / d).is_dir()]
    return removed, freed


# --- links ---------------------------------------------------------------------------------------------

def _replace_with_link(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)


def add_links(root: Path, links: Mapping[str, str]) -> None:
    """Symlinks ``{path: target}`` (paths relative to the root; a target as the link will hold it)."""
    for rel, target in sorted(links.items()):
        _replace_with_link(root / rel, target)


def add_busybox_applets(root: Path, applets: Iterable[str]) -> list[str]:
    """A link to busybox in usr/bin for each ``applet`` no package put in usr/bin or usr/sbin."""
    added = []
    for applet in sorted(set(applets)):
        if not applet or "/" in applet or applet == "busybox":
            continue
        if any(os.path.lexists(root / d / applet) for d in ("usr/bin", "usr/sbin")):
            continue
        (root / "usr/bin" / applet).symlink_to("busybox")
        added.append(applet)
    return added


# --- python --------------------------------------------------------------------------------------------

def install_python(root: Path, wheels: Sequence[Path]) -> None:
    """Install ``wheels`` (files: image/wheels.py fetched them) into the image's dist-packages with the
    build machine's pip, offline."""
    if not wheels:
        return
    _run([HOST_PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--no-index",
          "--disable-pip-version-check", "--target", os.fspath(root / DIST_PACKAGES),
          *(os.fspath(w) for w in wheels)])
    _drop_pip_leftovers(root)


def _drop_pip_leftovers(root: Path) -> None:
    target = root / DIST_PACKAGES
    bindir = target / "bin"
    if bindir.is_dir():
        for script in bindir.iterdir():
            dest = root / "usr/bin" / script.name
            if dest.exists() or dest.is_symlink():
                dest.unlink()
            shutil.move(script, dest)
        bindir.rmdir()


def copy_corral_sources(repo: Path, workdir: Path) -> Path:
    """A clean copy of this repository's packages (no __pycache__) in ``workdir``/src, emptied first.
    The build hashes and installs this copy, so what it installs is what it hashed even while the
    tree is being edited; a fixed path keeps the installed metadata reproducible."""
    shutil.rmtree(workdir, ignore_errors=True)
    src = workdir / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache")
    for package in CORRAL_PACKAGES:
        shutil.copytree(repo / package, src / package, ignore=ignore)
    for name in CORRAL_FILES:
        if (repo / name).exists():
            shutil.copy2(repo / name, src / name)
    return src


def install_corral(root: Path, src: Path) -> None:
    """Build corral from ``src`` (see copy_corral_sources; no build/ or egg-info is left in the shared
    tree) and install it into the image, with its ``corral`` script in /usr/bin."""
    _run([HOST_PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
          "--no-build-isolation", "--disable-pip-version-check",
          "--target", os.fspath(root / DIST_PACKAGES), os.fspath(src)], cwd=src.parent)
    _drop_pip_leftovers(root)


def strip_symbols(root: Path, directory: Path) -> int:
    """``strip --strip-unneeded`` the shared objects under ``directory`` (wheels ship their C extensions
    with symbols: PyYAML's 2.7 MB, 0.4 MB stripped; Debian's own binaries are stripped already).
    Returns the bytes saved."""
    objects = sorted(p for p in (root / directory).rglob("*.so") if p.is_file() and not p.is_symlink())
    if not objects:
        return 0
    before = sum(p.stat().st_size for p in objects)
    _run(["strip", "--strip-unneeded", *map(os.fspath, objects)])
    return before - sum(p.stat().st_size for p in objects)


def compile_python(root: Path, directories: Sequence[Path], sourceless: bool = False) -> None:
    """``.pyc`` for every module under ``directories`` (relative to ``root``), compiled with the build
    machine's python as the image will import them: paths as in the image, hashes not checked.
    ``sourceless``: each ``X.pyc`` goes next to its ``X.py`` (where Python imports it without a source)
    and the ``.py`` is removed."""
    present = [os.fspath(root / d) for d in directories if (root / d).is_dir()]
    if not present:
        return
    _run([HOST_PYTHON, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
          *(["-b"] if sourceless else []), "-s", os.fspath(root), "-p", "/", *present])
    if sourceless:
        for directory in present:
            for source in Path(directory).rglob("*.py"):
                if source.with_suffix(".pyc").is_file() and not source.is_symlink():
                    source.unlink()


def index_libraries(root: Path) -> None:
    """``/etc/ld.so.cache``: the dynamic loader finds libraries by soname in it (corral's ctypes loads
    too); it is made at build time (``ldconfig -r`` chroots into the root)."""
    if not (root / "etc/ld.so.conf").exists():
        _put(root / "etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n")
    _run(["ldconfig", "-r", os.fspath(root)])


# --- /etc, /init, config -------------------------------------------------------------------------------

def _put(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a new file (unlinking first: the tree's files may be hard links into a cached stage)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)
    path.chmod(mode)


def etc_files(version: str, hostname: str = "corral") -> dict[str, bytes]:
    """The basic /etc of the image (paths relative to the root)."""
    return {
        # dhcpcd: the user dhcpcd's privilege separation runs as (chrooted to its home), as Debian makes it
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                      b"dhcpcd:x:100:65534:DHCP Client Daemon:/usr/lib/dhcpcd:/bin/false\n",
        "etc/group": b"root:x:0:\ndocker:x:999:\nnogroup:x:65534:\n",
        "etc/shadow": b"root:*:1::::::\nnobody:*:1::::::\ndhcpcd:*:1::::::\n",
        "etc/hostname": hostname_file(hostname),  # as the hostname reconciler writes them (at each boot)
        "etc/hosts": hosts_file(hostname),
        "etc/nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
        "etc/resolv.conf": b"",
        "usr/lib/os-release": (
            f'NAME="corral"\nID=corral\nVERSION="{version}"\nVERSION_ID="{version}"\n'
            f'PRETTY_NAME="corral {version}"\nHOME_URL="https://github.com/corral-os/corral"\n').encode(),
    }


VERSION_FILE = Path("supervisor/__init__.py")  # holds __version__, in the copy of the sources
_VERSION_LINE = re.compile(r'^__version__ = "[^"\n]*"$', re.MULTILINE)


def set_version(src: Path, version: str) -> None:
    """Make the copied sources' ``__version__`` the build's version (status, ``corral --version``, the
    boot's ready line and the console's banner show it)."""
    path = src / VERSION_FILE
    text = path.read_text()
    new, count = _VERSION_LINE.subn(f'__version__ = "{version}"', text)
    if count != 1:
        raise RuntimeError(f"{path}: no single __version__ = \"...\" line to set the version on")
    path.write_text(new)


def write_etc(root: Path, version: str, hostname: str = "corral") -> None:
    for rel, data in etc_files(version, hostname).items():
        _put(root / rel, data, 0o640 if rel == "etc/shadow" else 0o644)
    _replace_with_link(root / "etc/os-release", "../usr/lib/os-release")
    for rel, mode in DIRECTORIES.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel).chmod(mode)
    for rel, target in INIT_LINKS.items():
        _replace_with_link(root / rel, target)


def make_console(root: Path) -> None:
    """``/dev/console``: the kernel opens it for /init's stdin/out/err before /init mounts devtmpfs."""
    console = root / "dev" / "console"
    if console.exists():
        console.unlink()
    os.mknod(console, 0o600 | stat.S_IFCHR, os.makedev(5, 1))


def install_init(root: Path, script: Path) -> None:
    _put(root / "init", script.read_bytes(), 0o755)


def install_config(root: Path, source: Path) -> list[str]:
    """Copy ``source/*.yml`` verbatim into /usr/share/corral/cloud-config.d/; none when it is absent."""
    dest = root / "usr/share/corral/cloud-config.d"
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(source.glob("*.yml")) if source.is_dir() else []:
        _put(dest / path.name, path.read_bytes())
        copied.append(path.name)
    return copied


def clamp_mtimes(root: Path, epoch: int) -> None:
    """Every entry's mtime set to ``epoch`` (symlinks themselves, not what they point to)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            os.utime(Path(dirpath) / entry, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))
