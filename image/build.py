"""``corral-image build``: the kernel and initramfs of corral's OS, from Debian packages and this repository.

Stages, each cached under ``.cache/image/`` by a hash of its inputs, so a rebuild redoes only what
changed (and nothing at all, in about a second, when no input did):

1. resolve  the definition's packages to pinned versions (``image/packages.lock``; ``--update-lock``)
2. fetch    the .debs into ``.cache/debs/`` (offline when cached)
3. base     unpack, usr-merge, strip, alternatives' links, busybox applets, Python requirements, .pyc
4. kernel   the kernel package unpacked and indexed (depmod)
5. images   the preloaded ``docker save`` archives: the user dockerd's (from the base root) and the console's
6. root     a copy of base + corral (built from this tree) + modules + images + config + /etc
7. initrd   cpio + compression into the output directory, with ``vmlinuz`` and ``manifest.json``
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image import bootfiles, debs, elf, initramfs, iso, manifest, modules, repeats, rootfs, wheels
from image import bundle as upgrade_bundle
from image.definition import Definition

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = REPO_ROOT / "image"
CACHE = REPO_ROOT / ".cache" / "image"
DEFAULT_OUT = CACHE / "out"
LOCK = IMAGE_DIR / "packages.lock"
CONSOLE_LOCK = IMAGE_DIR / "console.lock"
PYTHON_LOCK = IMAGE_DIR / "python.lock"
INIT = IMAGE_DIR / "init"
IMAGES_DIR = "usr/share/corral/images"
USER_IMAGES_DIR = "usr/share/corral/user-images"  # preloaded into the user dockerd (units/images.py USER)
USER_PREFIX = "user/"  # an image name with it is the user dockerd's: "user/busybox"
# Python directories compiled to .pyc in the base stage (corral's own are compiled in the root stage).
PYTHON_DIRS = (Path("usr/lib/python3.11"), rootfs.DIST_PACKAGES)
CORRAL_DIRS = tuple(rootfs.DIST_PACKAGES / p for p in rootfs.CORRAL_PACKAGES)
BUILDER_FILES = ("debs.py", "rootfs.py", "definition.py", "wheels.py")


class BuildError(RuntimeError):
    pass


class Progress:
    """Stage lines on the terminal: ``[3/7] base: 74 packages unpacked, 212.4 MiB (9.1 s)``."""

    STAGES = 7

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.stage_started = self.started
        self.number = 0

    def stage(self, name: str, detail: str = "") -> None:
        self.number += 1
        self.stage_started = time.monotonic()
        self._print(f"[{self.number}/{self.STAGES}] {name}{': ' + detail if detail else ''} ...")

    def done(self, detail: str) -> None:
        self._print(f"      {detail} ({time.monotonic() - self.stage_started:.1f} s)")

    def heading(self, text: str) -> None:
        self._print(text)

    def note(self, text: str) -> None:
        self._print(f"      {text}")

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def _hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


def _files_hash(paths: Iterable[Path], base: Path) -> str:
    """Hash of the names and contents of ``paths`` (sorted; __pycache__ skipped)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def corral_sources_hash(src: Path) -> str:
    """Hash of corral's sources as copied by rootfs.copy_corral_sources."""
    return _files_hash(src.rglob("*"), src)


def source_date_epoch() -> int:
    """SOURCE_DATE_EPOCH from the environment, else the time of the repository's last commit."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    result = subprocess.run(["git", "-C", os.fspath(REPO_ROOT), "log", "-1", "--format=%ct"],
                            capture_output=True, text=True, timeout=30)
    return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else 0


def corral_version() -> str:
    """The project's version (supervisor.__version__): a build's version unless ``--version`` says."""
    from supervisor import __version__

    return __version__


_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$")


def check_version(version: str) -> str:
    """A version goes into os-release, GRUB's environment block and file names: letters, digits and
    ``.+~_-``, starting with a letter or digit, at most 64 characters."""
    if not _VERSION.fullmatch(version):
        raise BuildError(f"--version {version!r}: use letters, digits and . + ~ _ - (starting with a letter "
                         "or digit, at most 64 characters)")
    return version


@dataclass
class Stage:
    """A cached directory ``CACHE/<name>-<key>``; built into ``.tmp`` and renamed when complete."""

    name: str
    key: str

    @property
    def path(self) -> Path:
        return CACHE / f"{self.name}-{self.key}"

    def ready(self) -> bool:
        return (self.path / ".complete").exists()

    def begin(self) -> Path:
        tmp = CACHE / f".{self.name}-{self.key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, tmp: Path) -> None:
        (tmp / ".complete").write_text("")
        shutil.rmtree(self.path, ignore_errors=True)
        tmp.rename(self.path)
        for old in CACHE.glob(f"{self.name}-*"):  # earlier versions of this stage
            if old != self.path:
                shutil.rmtree(old, ignore_errors=True)


def _unpack_debs(paths: Sequence[Path], root: Path) -> dict[str, str]:
    """Unpack; returns {root path: package} for the manifest's components."""
    owners: dict[str, str] = {}
    debs.unpack(paths, root)
    for deb in paths:
        package = deb.name.split("_", 1)[0]
        for rel in debs.contents(deb):
            owners.setdefault(rel, package)
    return owners


def build_base(definition: Definition, packages: Sequence[debs.Package], deb_paths: Sequence[Path],
               wheel_paths: Sequence[Path], key: str, progress: Progress) -> Path:
    stage = Stage("base", key)
    if stage.ready():
        progress.done(f"cached ({stage.path.name})")
        return stage.path
    tmp = stage.begin()
    root = tmp / "root"
    rootfs_debs = [p for pkg, p in zip(packages, deb_paths, strict=True) if not _is_kernel(pkg.name)]
    owners = _unpack_debs(rootfs_debs, root)
    progress.note(f"{len(rootfs_debs)} packages unpacked: {mib(rootfs.tree_size(root))}")
    removed, freed = rootfs.strip(root, definition.strip)
    progress.note(f"stripped {removed} entries, {mib(freed)}")
    rootfs.add_links(root, definition.links)
    applets = subprocess.run([os.fspath(root / rootfs.BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True, timeout=60).stdout.split()
    added = rootfs.add_busybox_applets(root, applets)
    progress.note(f"{len(added)} busybox applets linked")
    rootfs.install_python(root, wheel_paths)
    saved = rootfs.strip_symbols(root, rootfs.DIST_PACKAGES)
    progress.note(f"{len(wheel_paths)} Python requirements installed "
                  f"({mib(saved)} of symbols stripped)")
    rootfs.strip(root, definition.strip)  # what the wheels brought (tests, .pyi, C sources)
    rootfs.compile_python(root, PYTHON_DIRS, sourceless=definition.python_sources == "corral")
    rootfs.index_libraries(root)
    broken = elf.unresolved(root)
    if broken:  # a strip or an excluded package took a library something still links
        raise BuildError("libraries missing from the root:\n  " + "\n  ".join(broken))
    (tmp / "owners.json").write_text(json.dumps(owners, sort_keys=True))
    size = rootfs.tree_size(root)
    stage.commit(tmp)
    progress.done(f"base root {mib(size)}")
    return stage.path


def _is_kernel(name: str) -> bool:
    return name.startswith("linux-image-")


def build_kernel(packages: Sequence[debs.Package], deb_paths: Sequence[Path], progress: Progress) -> Path:
    kernel_debs = [p for pkg, p in zip(packages, deb_paths, strict=True)
                   if _is_kernel(pkg.name) and p.stat().st_size > 1_000_000]  # not the meta package
    if len(kernel_debs) != 1:
        raise BuildError(f"expected one kernel package in the lock, found {[p.name for p in kernel_debs]}")
    stage = Stage("kernel", _hash(kernel_debs[0].name))
    if stage.ready():
        progress.done(f"cached ({stage.path.name})")
        return stage.path
    tmp = stage.begin()
    debs.unpack(kernel_debs, tmp)
    version = modules.kernel_version(tmp)
    modules.depmod(tmp, version)
    stage.commit(tmp)
    progress.done(f"kernel {version}")
    return stage.path


def image_dest(name: str) -> str:
    """Where an image's archive is in the root: the system's images, or the user dockerd's."""
    if name.startswith(USER_PREFIX):
        return f"{USER_IMAGES_DIR}/{name.removeprefix(USER_PREFIX)}.tar"
    return f"{IMAGES_DIR}/{name}.tar"


def _busybox_image(images_dir: Path, base_root: Path, base_key: str) -> Path:
    """busybox:latest for the user dockerd, from the root's own busybox-static (no registry needed)."""
    from image import busybox

    key = _hash(base_key, Path(busybox.__file__).read_bytes())
    dest = images_dir / f"user-busybox-{key}.tar"
    if not dest.exists():
        busybox.write_archive(dest, tags=busybox.USER_TAGS, busybox=base_root / rootfs.BUSYBOX)
    return dest


def _docker_image(images_dir: Path, base_root: Path, base_key: str) -> Path:
    from image import docker

    key = _hash(base_key, Path(docker.__file__).read_bytes())
    dest = images_dir / f"docker-{key}.tar"
    if not dest.exists():
        docker.write_archive(dest, fs=docker.collect(root=base_root))
    return dest


def _console_image(images_dir: Path, locks: Locks, progress: Progress) -> Path:
    from image import console, docker

    resolution, paths = debs.fetch(list(console.PACKAGES), locks.console,
                                   exclude=list(getattr(console, "EXCLUDE", ())), update=locks.update,
                                   frozen=locks.frozen)
    _report_moves(locks.console, resolution, progress)
    sources = [Path(console.__file__), Path(docker.__file__)]  # console's archive uses docker's writer
    if (IMAGE_DIR / "console").is_dir():
        sources += list((IMAGE_DIR / "console").rglob("*"))
    key = _hash(locks.console.read_text(), _files_hash(sources, IMAGE_DIR))
    dest = images_dir / f"console-{key}.tar"
    if not dest.exists():
        stage = Stage("console-root", _hash(locks.console.read_text()))
        if not stage.ready():
            tmp = stage.begin()
            debs.unpack(paths, tmp / "root")
            stage.commit(tmp)
        console.write_archive(dest, stage.path / "root")
    return dest


def build_images(definition: Definition, base_root: Path, base_key: str, locks: Locks,
                 progress: Progress) -> dict[str, Path]:
    """The archives to preload (the user dockerd's named ``user/...``), each cached as
    ``CACHE/images/<name>-<key>.tar``."""
    out: dict[str, Path] = {}
    images_dir = CACHE / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    if "docker" in definition.images:
        out["docker"] = _docker_image(images_dir, base_root, base_key)
    if "console" in definition.images:
        out["console"] = _console_image(images_dir, locks, progress)
    if "busybox" in definition.user_images:
        out[f"{USER_PREFIX}busybox"] = _busybox_image(images_dir, base_root, base_key)
    for name, path in sorted(out.items()):
        for old in images_dir.glob(f"{name.replace('/', '-')}-*"):
            if not old.name.startswith(path.stem):
                old.unlink(missing_ok=True)
    progress.done(", ".join(f"{name} {mib(p.stat().st_size)}" for name, p in out.items()) or "none")
    return out


def build_root(definition: Definition, base: Path, kernel: Path, images: dict[str, Path], corral_src: Path,
               epoch: int, progress: Progress, version: str) -> tuple[Path, modules.Closure, str]:
    root = CACHE / "root"
    if root.exists():
        shutil.rmtree(root)
    # A copy, not hard links: cpio defers files with more than one link to the end of the archive,
    # which would undo the order the compressor's window needs (archive_order).
    subprocess.run(["cp", "-a", os.fspath(base / "root"), os.fspath(root)], check=True, timeout=600)
    if definition.corral:
        rootfs.install_corral(root, corral_src)
        rootfs.compile_python(root, CORRAL_DIRS)
    kernel_version = modules.kernel_version(kernel)
    closure = modules.install(kernel, kernel_version, definition.modules, root)
    progress.note(f"{len(closure.paths)} kernel modules "
                  f"({len(closure.builtin)} of those listed are built in)")
    for name, archive in images.items():
        dest = root / image_dest(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive, dest)
    copied = rootfs.install_config(root, definition.config_dir)
    progress.note(f"default config: {', '.join(copied) or 'none'}")
    rootfs.write_etc(root, version)
    boot = bootfiles.install(root)
    progress.note(f"GRUB for corral install: {', '.join(f'{n} {mib(b)}' for n, b in boot.items())}")
    rootfs.install_init(root, INIT)
    rootfs.make_console(root)
    rootfs.clamp_mtimes(root, epoch)
    progress.done(f"root {mib(rootfs.tree_size(root))}")
    return root, closure, kernel_version


def archive_order(images: dict[str, Path], root: Path) -> list[str]:
    """Paths the initrd holds last, in this order (see ``initramfs.split_around``): for each image, the
    root's copies of the files it repeats (``repeats.repeated``) split around its archive, so that each
    repeat is at most about half those files' size away from its first copy (inside zstd's 128 MiB window
    and xz's dictionary); then whatever else is in the images directory."""
    order: list[str] = []
    claimed: set[str] = set()
    for name, archive in sorted(images.items()):
        layer = [rel for rel in repeats.repeated(archive, root) if rel not in claimed]
        claimed.update(layer)
        before, after = initramfs.split_around(layer, {rel: (root / rel).stat().st_size for rel in layer})
        order += [*before, image_dest(name), *after]
    return [*order, IMAGES_DIR, USER_IMAGES_DIR]


def inputs_hash(definition: Definition, base_key: str, kernel: Path, images: dict[str, Path],
                corral_src: Path, compression: str, epoch: int) -> str:
    builder = _files_hash([IMAGE_DIR / n for n in ("build.py", "initramfs.py", "manifest.py", "modules.py",
                                                      "repeats.py", "bootfiles.py")],
                          IMAGE_DIR)
    config = _files_hash(definition.config_dir.glob("*.yml"), definition.config_dir) \
        if definition.config_dir.is_dir() else ""
    return _hash(base_key, kernel.name, json.dumps([definition.modules, definition.components]),
                 *sorted(p.name for p in images.values()), corral_sources_hash(corral_src),
                 INIT.read_bytes(), config, builder, compression, str(epoch), bootfiles.input_key())


@dataclass(frozen=True)
class Locks:
    """The lock files a build reads and (unless ``frozen``) rewrites when a pin moved (image/debs.py)."""

    packages: Path = LOCK
    console: Path = CONSOLE_LOCK
    python: Path = PYTHON_LOCK
    update: bool = False  # resolve everything again (--update-lock)
    frozen: bool = False  # a pin the archive no longer has fails the build instead (--frozen)


def _report_moves(lock: Path, resolution: debs.Resolution, progress: Progress) -> None:
    if resolution.moves:
        shown = lock.relative_to(REPO_ROOT) if lock.is_relative_to(REPO_ROOT) else lock
        progress.note(f"{shown}: {len(resolution.moves)} pin(s) moved (the archive no longer has "
                      "the locked version, or the package list changed); lock rewritten:")
        for move in resolution.moves:
            progress.note(f"  {move}")


def check_frozen(definition: Definition, locks: Locks) -> None:
    """A frozen build checks every lock before it fetches anything, and names every pin gone at once."""
    from image import console

    gone: list[str] = []
    checks: list[Callable[[], object]] = [
        lambda: debs.resolve(definition.all_packages, locks.packages, exclude=definition.exclude,
                             frozen=True),
        lambda: wheels.pin(definition.requirements, locks.python, frozen=True)]
    if "console" in definition.images:
        checks.append(lambda: debs.resolve(list(console.PACKAGES), locks.console,
                                           exclude=list(console.EXCLUDE), frozen=True))
    for check in checks:
        try:
            check()
        except debs.DebsError as exc:
            gone.append(str(exc))
    if gone:
        raise BuildError("--frozen: " + "\n  ".join(gone))


def build(definition: Definition, out: Path = DEFAULT_OUT, compression: str = "zstd",
          locks: Locks | None = None, progress: Progress | None = None,
          sign_key: Path | None = None, version: str | None = None) -> dict[str, Any]:
    """Build (or find up to date) ``out``/{vmlinuz,initrd,manifest.json}; returns the manifest. One
    build at a time per cache: a second waits for the first (they share the stages). ``version``: the
    image's corral version (default: the project's, :func:`corral_version`)."""
    version = check_version(version if version is not None else corral_version())
    if compression not in initramfs.COMPRESSORS:
        raise BuildError(f"--compression {compression}: expected one of {', '.join(initramfs.COMPRESSORS)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = _build(definition, out, compression, locks or Locks(), progress or Progress(), version)
        section = upgrade_bundle.write(out, data, sign_key)  # a few seconds: made again each time
        if data.get("bundle") != section:
            data = {**data, "bundle": section}
            manifest.write(out / "manifest.json", data)
        return data


def _build(definition: Definition, out: Path, compression: str, locks: Locks,
           progress: Progress, version: str) -> dict[str, Any]:

    progress.stage("resolve", f"{len(definition.all_packages)} packages listed")
    if locks.frozen:
        check_frozen(definition, locks)
    resolution, deb_paths = debs.fetch(definition.all_packages, locks.packages, exclude=definition.exclude,
                                       update=locks.update, frozen=locks.frozen)
    packages = resolution.packages
    _report_moves(locks.packages, resolution, progress)
    progress.done(f"{len(packages)} packages pinned in {locks.packages}")

    progress.stage("fetch", f"{len(definition.requirements)} Python requirements")
    pins, moves = wheels.pin(definition.requirements, locks.python, update=locks.update, frozen=locks.frozen)
    _report_moves(locks.python, debs.Resolution([], moves), progress)
    wheel_paths = wheels.wheels(pins)
    progress.note(f"{len(wheel_paths)} wheels pinned in {locks.python}")
    progress.done(f"{len(deb_paths)} .debs, {mib(sum(p.stat().st_size for p in deb_paths))} "
                  f"in {debs.DEFAULT_CACHE.relative_to(REPO_ROOT)}")

    progress.stage("base")
    base_key = _hash(json.dumps([definition.packages, definition.exclude, definition.requirements,
                                 definition.strip, definition.links, definition.python_sources]),
                     locks.packages.read_bytes(), locks.python.read_bytes(),
                     _files_hash([IMAGE_DIR / n for n in BUILDER_FILES], IMAGE_DIR))
    base = build_base(definition, packages, deb_paths, wheel_paths, base_key, progress)

    progress.stage("kernel")
    kernel = build_kernel(packages, deb_paths, progress)

    shipped = [*definition.images, *(USER_PREFIX + i for i in definition.user_images)]
    progress.stage("images", ", ".join(shipped) or "none")
    images = build_images(definition, base / "root", base_key, locks, progress)

    epoch = source_date_epoch()
    corral_src = rootfs.copy_corral_sources(REPO_ROOT, CACHE / "corral-src")
    rootfs.set_version(corral_src, version)  # hashed below: another version is another initrd
    key = inputs_hash(definition, base_key, kernel, images, corral_src, compression, epoch)
    previous = manifest.read(out / "manifest.json")
    if previous and previous.get("input_hash") == key and (out / "initrd").exists() \
            and (out / "vmlinuz").exists():
        progress.stage("root", "unchanged")
        progress.stage("initrd", "unchanged")
        progress.done(f"up to date: {out}")
        return previous

    progress.stage("root")
    root, closure, kernel_version = build_root(definition, base, kernel, images, corral_src, epoch, progress,
                                               version)

    progress.stage("initrd", compression)
    out.mkdir(parents=True, exist_ok=True)
    sizes = initramfs.write(root, out / "initrd", compression, last=archive_order(images, root))
    vmlinuz = kernel / "boot" / f"vmlinuz-{kernel_version}"
    shutil.copyfile(vmlinuz, out / ".vmlinuz.tmp")
    os.replace(out / ".vmlinuz.tmp", out / "vmlinuz")
    owners = json.loads((base / "owners.json").read_text())
    components = manifest.component_sizes(root, owners, definition.components)
    data = manifest.build_manifest(
        corral_version=version, kernel_version=kernel_version, compression=compression,
        initrd_bytes=sizes.compressed, initrd_raw_bytes=sizes.raw,
        kernel_bytes=(out / "vmlinuz").stat().st_size,
        components=components, packages=[(p.name, p.version, p.arch) for p in packages],
        python=[f"{n}=={v}" for n, v in sorted(pins.items())],
        modules=[modules.module_name(p) for p in closure.paths],
        images={name: p.stat().st_size for name, p in images.items()}, input_hash=key)
    (out / iso.ISO_NAME).unlink(missing_ok=True)  # made from the previous initrd: stale now
    manifest.write(out / "manifest.json", data)
    progress.done(f"initrd {mib(sizes.compressed)} ({compression}; {mib(sizes.raw)} raw), "
                  f"vmlinuz {mib(data['files']['vmlinuz'])} -> {out}")
    return data


def add_iso(data: dict[str, Any], out: Path, progress: Progress | None = None) -> dict[str, Any]:
    """``--iso``: make (or find up to date) ``out/corral.iso`` from the build in ``out`` and record its
    sizes in the manifest's ``iso`` section; returns the manifest."""
    progress = progress or Progress()
    progress.heading(f"[iso] {iso.ISO_NAME} ...")
    started = time.monotonic()
    with (CACHE / ".lock").open("w") as lock:  # a concurrent build must not swap the initrd meanwhile
        fcntl.flock(lock, fcntl.LOCK_EX)
        section, made = iso.build(out, str(data["corral_version"]), data.get("iso"))
        if made or data.get("iso") != section:
            data = {**data, "iso": section}
            manifest.write(out / "manifest.json", data)
    what = "made" if made else "up to date"
    progress.note(f"{what}: {out / iso.ISO_NAME}, {mib(section['bytes'])} "
                  f"({time.monotonic() - started:.1f} s)")
    return data


def summary(data: dict[str, Any]) -> str:
    lines = [f"corral {data['corral_version']}, kernel {data['kernel_version']}, "
             f"initrd {mib(data['files']['initrd'])} {data['compression']} "
             f"({mib(data['initrd_raw_bytes'])} raw)"]
    for name, size in data["components"].items():
        lines.append(f"  {name:<8} {mib(size):>11}")
    if "iso" in data:
        section = data["iso"]
        lines.append(f"{section['file']} {mib(section['bytes'])} (hybrid: BIOS and UEFI, CD or USB stick)")
        for name, size in section["components"].items():
            lines.append(f"  {name:<10} {mib(size):>9}")
    if "bundle" in data:
        section = data["bundle"]
        lines.append(f"{section['archive']} {mib(section['bytes'])} (the upgrade bundle, "
                     f"{'signed' if section['signed'] else 'unsigned'})")
    return "\n".join(lines)
