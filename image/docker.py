"""``python -m image.docker``: build ``corral/docker:latest``, the user dockerd's image, daemonless.

There is no registry (``docker:27-dind`` cannot be pulled), so the ``docker`` unit's image is made here.
It holds no binaries: the unit mounts the host's ``/usr`` read-only, so the user's dockerd runs the
host's Debian ``dockerd``, ``containerd``, ``runc``, ``docker-init`` (tini) and ``iptables`` -- the
same files the system dockerd runs, carried once in the OS image. The layer has the merged-/usr links
(``/bin`` -> ``usr/bin``), /etc basics, the iptables alternatives links and empty mount points.

The image is one layer, written as the ``docker save`` archive ``docker load`` reads, like
``image.busybox``: no dockerd needed, byte-for-byte reproducible (timestamps fixed, owners root). It is
cached in ``.cache/images/docker.tar`` and rebuilt only when this builder is newer than the archive.

Entrypoint ``docker-init -- /cgroup-nest`` (tini reaps what containerd's shims leave behind; cgroup-nest
moves the container's processes out of its cgroup root so that the user's containers get the cgroup v2
controllers, as Docker's docker-in-docker images do), command ``dockerd``; the unit file
(``units/defaults/docker.yml``) gives dockerd its options."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from image.busybox import BUSYBOX

IMAGE = "corral/docker:latest"
DEFAULT_TAGS = (IMAGE,)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / ".cache" / "images" / "docker.tar"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}

# What the image runs, from the host's /usr (the package in parentheses): checked by ``missing()``.
BINARIES = (
    "/usr/sbin/dockerd",  # docker.io
    "/usr/sbin/docker-proxy",  # docker.io: published ports
    "/usr/bin/docker-init",  # docker.io -> tini-static: PID 1 of the container
    "/usr/bin/containerd",  # containerd
    "/usr/bin/containerd-shim-runc-v2",  # containerd
    "/usr/sbin/runc",  # runc
)
IPTABLES = ("iptables", "iptables-save", "iptables-restore",
            "ip6tables", "ip6tables-save", "ip6tables-restore")
SBIN = Path("/usr/sbin")
MERGED = ("bin", "sbin", "lib", "lib64")  # top-level symlinks into /usr, when the build machine has them
DIRECTORIES = ("dev", "etc", "host", "proc", "root", "run", "sys", "var", "var/lib", "var/lib/docker",
               "var/log")
ETC = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": b"root:x:0:\n",
    "etc/nsswitch.conf": b"hosts: files dns\n",
}

# The entrypoint's cgroup v2 nesting step (image/docker-files/cgroup-nest: see it for why), outside /usr,
# which the unit mounts from the host.
NEST = "/cgroup-nest"
NEST_SOURCE = Path(__file__).resolve().parent / "docker-files" / "cgroup-nest"

_lock = threading.Lock()


@dataclass
class Rootfs:
    """What goes into the layer: files (taken from the build machine) and symlinks, by path in the image
    (relative, no leading slash)."""

    files: dict[str, Path] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    root: Path = Path("/")
    generated: dict[str, bytes] = field(default_factory=lambda: dict(ETC))  # written by the builder, 0644
    base_dirs: tuple[str, ...] = DIRECTORIES  # directories the image has even when empty

    def add(self, path: str | Path) -> None:
        """Add a path of the build machine (under ``root``): a file, or a symlink and what it points to,
        at its canonical place (its directory resolved, so /lib/x is stored as usr/lib/x on a merged
        /usr)."""
        host = self.root / str(path).lstrip("/")
        parent = Path(os.path.realpath(host.parent))
        entry = parent / host.name
        name = os.path.relpath(entry, self.root)
        if name in self.files or name in self.links:
            return
        if entry.is_symlink():
            target = os.readlink(entry)
            self.links[name] = target
            self.add(target if os.path.isabs(target) else "/" + os.path.relpath(parent / target, self.root))
        elif entry.is_file():
            self.files[name] = entry
        else:
            raise FileNotFoundError(f"{host}: not in the build machine (install the package that ships it)")

    def directories(self) -> list[str]:
        found = set(self.base_dirs)
        for name in [*self.files, *self.links, *self.generated]:
            parts = Path(name).parts[:-1]
            for i in range(1, len(parts) + 1):
                found.add(str(Path(*parts[:i])))
        return sorted(found - set(self.links))

    def inputs(self) -> list[Path]:
        return sorted(self.files.values())


def collect(root: Path = Path("/"), busybox: Path = BUSYBOX) -> Rootfs:
    """The image's own files: everything but ``/usr``, which the ``docker`` unit mounts read-only from the
    host (``/usr:/usr:ro``). The user's dockerd thus runs the very binaries the system dockerd runs
    (Debian's docker.io, containerd, runc, tini, iptables), and the OS image carries them once instead of
    twice (the copy cost 159 MB raw and a minute of ``docker load`` under TCG). What is left: the merged
    /usr links (/bin -> usr/bin...), /etc basics, and the alternatives links of iptables, so the user's
    dockerd uses the same iptables backend (nft or legacy) as the system dockerd. ``busybox`` is kept in
    the signature for the callers; the shell comes from the host's /usr too."""
    fs = Rootfs(root=root, base_dirs=(*DIRECTORIES, "usr"))
    fs.files[NEST.lstrip("/")] = NEST_SOURCE
    for top in MERGED:
        link = root / top
        if link.is_symlink():
            fs.links[top] = os.readlink(link)
    for name in IPTABLES:
        alternative = root / "etc" / "alternatives" / name
        if alternative.is_symlink():
            fs.links[f"etc/alternatives/{name}"] = os.readlink(alternative)
    return fs


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_layer(out: io.BufferedIOBase, fs: Rootfs, mtime: int) -> None:
    """The image's only layer, an uncompressed tar, in a fixed order (reproducible)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in fs.directories():
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o755, mtime))
        tar.addfile(_info("tmp", tarfile.DIRTYPE, 0o1777, mtime))
        entries: list[tuple[str, Path | str]] = [*fs.files.items(), *fs.links.items()]
        for name, source in sorted(entries, key=lambda e: e[0]):
            if isinstance(source, Path):
                info = _info(name, tarfile.REGTYPE, source.stat().st_mode & 0o7777, mtime)
                info.size = source.stat().st_size
                with source.open("rb") as data:
                    tar.addfile(info, data)
            else:
                link = _info(name, tarfile.SYMTYPE, 0o777, mtime)
                link.linkname = source
                tar.addfile(link)
        for name, blob in sorted(fs.generated.items()):
            info = _info(name, tarfile.REGTYPE, 0o644, mtime)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def image_config(layer_digest: str, created: str) -> bytes:
    config = {
        "architecture": _GOARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/docker-init", "--", NEST],
            "Cmd": ["dockerd"],
            "Env": [PATH_ENV],
            "Labels": {"io.corral.image": "docker"},
            "Volumes": {"/var/lib/docker": {}},
        },
        "created": created,
        "history": [{"created": created, "created_by": "python -m image.docker",
                     "comment": "Debian's docker.io, containerd, runc, tini, iptables; busybox-static"}],
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(dest: Path, tags: Sequence[str] = DEFAULT_TAGS, fs: Rootfs | None = None,
                  config_for: Callable[[str, str], bytes] = image_config) -> str:
    """Write the ``docker save`` archive to ``dest`` (atomically); returns the image id (sha256:...).
    ``config_for(layer_digest, created)`` gives the image config (another image reuses this writer)."""
    fs = fs or collect()
    when = max((int(p.stat().st_mtime) for p in fs.inputs()), default=0)  # no inputs: a fixed date
    created = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".docker-image.") as tmpdir:
        layer_path = Path(tmpdir) / "layer.tar"
        with layer_path.open("wb") as out:
            write_layer(out, fs, when)
        layer_hex = _sha256(layer_path)
        config = config_for(f"sha256:{layer_hex}", created)
        config_hex = hashlib.sha256(config).hexdigest()
        manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": list(tags),
                                "Layers": [f"{layer_hex}/layer.tar"]}], separators=(",", ":")).encode()
        repositories: dict[str, dict[str, str]] = {}
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            repositories.setdefault(repo, {})[name] = layer_hex
        tmp = Path(tmpdir) / "archive.tar"
        with tmp.open("wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
            tar.addfile(_info(layer_hex, tarfile.DIRTYPE, 0o755, when))
            small = [(f"{layer_hex}/VERSION", b"1.0"), (f"{config_hex}.json", config),
                     ("manifest.json", manifest),
                     ("repositories", json.dumps(repositories, sort_keys=True).encode())]
            info = _info(f"{layer_hex}/layer.tar", tarfile.REGTYPE, 0o644, when)
            info.size = layer_path.stat().st_size
            with layer_path.open("rb") as data:
                tar.addfile(info, data)
            for name, blob in small:
                info = _info(name, tarfile.REGTYPE, 0o644, when)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)  # a concurrent reader sees the old archive or the new one
    return f"sha256:{config_hex}"


def is_fresh(archive: Path, inputs: Iterable[Path]) -> bool:
    """True when ``archive`` exists and is newer than every input file and than this builder."""
    try:
        built = archive.stat().st_mtime
    except FileNotFoundError:
        return False
    newest = max([Path(__file__).stat().st_mtime, *(p.stat().st_mtime for p in inputs)])
    return built >= newest


def missing() -> list[str]:
    """The build machine's files the image needs that are not there (empty: it can be built)."""
    return [p for p in (*BINARIES, str(BUSYBOX), str(SBIN / "iptables")) if not Path(p).exists()]


def ensure(archive: Path = DEFAULT_OUTPUT, tags: Sequence[str] = DEFAULT_TAGS, force: bool = False) -> Path:
    """The cached archive, built first when missing or stale (or ``force``)."""
    with _lock:
        fs = collect()
        if force or not is_fresh(archive, fs.inputs()):
            write_archive(archive, tags, fs)
    return archive


def link_or_copy(archive: Path, dest: Path) -> None:
    """Put the archive at ``dest`` (a hard link when on the same filesystem: it is large)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(archive, dest)
    except OSError:
        shutil.copyfile(archive, dest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.docker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT,
                        help=f"archive to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--tag", "-t", action="append", dest="tags", metavar="REPO:TAG",
                        help=f"tag to give the image, repeatable (default: {', '.join(DEFAULT_TAGS)})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the archive is fresh")
    parser.add_argument("--list", action="store_true", help="print the image's files and exit")
    args = parser.parse_args(argv)
    absent = missing()
    if absent:
        print(f"missing: {', '.join(absent)}: install docker.io, containerd, runc, tini, iptables, "
              "busybox-static", file=sys.stderr)
        return 1
    if args.list:
        fs = collect()
        for name in sorted([*fs.files, *fs.links]):
            print(f"/{name}" + (f" -> {fs.links[name]}" if name in fs.links else ""))
        return 0
    tags = tuple(args.tags or DEFAULT_TAGS)
    if args.tags and args.output == DEFAULT_OUTPUT:
        parser.error("--tag needs --output: the cache must keep its default tags")
    print(ensure(args.output, tags, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
