"""``python -m image.busybox``: build ``corral/busybox:latest`` as a ``docker save`` archive, daemonless.

There is no registry to pull from, so tests and default units get their small image from here: a rootfs
of Debian's ``/bin/busybox`` (busybox-static) with a symlink in ``/bin`` for each of its applets, ``CMD
["sh"]``, written as a one-layer image in the archive format ``docker load`` (``POST /images/load``)
reads: ``manifest.json``, the image config ``<id>.json`` and ``<layer>/layer.tar``. No dockerd is
needed to build it, and the output is byte-for-byte reproducible for a given busybox binary (fixed
timestamps and owners), so the image id is stable and loading it again changes nothing.

The archive is cached (``.cache/images/busybox.tar`` by default) and rebuilt only when busybox or this
file is newer than it. It carries the tags ``corral/busybox:latest`` and ``corral-test/busybox:latest``
(the name the integration tests' ``dockerd`` fixture has always used); both name the same image."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
IMAGE = "corral/busybox:latest"
TEST_ALIAS = "corral-test/busybox:latest"
DEFAULT_TAGS = (IMAGE, TEST_ALIAS)
USER_TAGS = ("busybox:latest",)  # in the OS's user dockerd: `docker run --rm busybox echo hi`
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / ".cache" / "images" / "busybox.tar"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIRECTORIES = ("bin", "dev", "etc", "proc", "root", "run", "sys", "usr", "var")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}

_lock = threading.Lock()


def applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applets ``busybox --list`` names (sh, sleep, echo, ip, udhcpc, ...)."""
    out = subprocess.run([os.fspath(busybox), "--list"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return sorted({a for a in out.split() if a != "busybox" and "/" not in a})


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def rootfs_layer(busybox: Path = BUSYBOX, mtime: int | None = None) -> bytes:
    """The image's only layer: an uncompressed tar of the busybox rootfs (reproducible)."""
    when = int(busybox.stat().st_mtime) if mtime is None else mtime
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in DIRECTORIES:
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o755, when))
        tar.addfile(_info("tmp", tarfile.DIRTYPE, 0o1777, when))
        data = busybox.read_bytes()
        info = _info("bin/busybox", tarfile.REGTYPE, 0o755, when)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for applet in applets(busybox):
            link = _info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, when)
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def image_config(layer_digest: str, created: str) -> bytes:
    config = {
        "architecture": _GOARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": [PATH_ENV], "Labels": {"io.corral.image": "busybox"}},
        "created": created,
        "history": [{"created": created, "created_by": "python -m image.busybox",
                     "comment": "busybox-static rootfs"}],
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def write_archive(dest: Path, tags: Sequence[str] = DEFAULT_TAGS, busybox: Path = BUSYBOX) -> str:
    """Write the ``docker save`` archive to ``dest`` (atomically); returns the image id (sha256:...)."""
    when = int(busybox.stat().st_mtime)
    created = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    layer = rootfs_layer(busybox, when)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = image_config(f"sha256:{layer_hex}", created)
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": list(tags),
                            "Layers": [f"{layer_hex}/layer.tar"]}], separators=(",", ":")).encode()
    repositories: dict[str, dict[str, str]] = {}
    for tag in tags:
        repo, _, name = tag.rpartition(":")
        repositories.setdefault(repo, {})[name] = layer_hex
    files = [
        (f"{layer_hex}/VERSION", b"1.0"),
        (f"{layer_hex}/layer.tar", layer),
        (f"{config_hex}.json", config),
        ("manifest.json", manifest),
        ("repositories", json.dumps(repositories, sort_keys=True).encode()),
    ]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w",
                                                      format=tarfile.USTAR_FORMAT) as tar:
            tar.addfile(_info(layer_hex, tarfile.DIRTYPE, 0o755, when))
            for name, data in files:
                info = _info(name, tarfile.REGTYPE, 0o644, when)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)  # a concurrent reader sees the old archive or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"sha256:{config_hex}"


def is_fresh(archive: Path, busybox: Path = BUSYBOX) -> bool:
    """True when ``archive`` exists and is newer than busybox and than this builder."""
    try:
        built = archive.stat().st_mtime
    except FileNotFoundError:
        return False
    return built >= busybox.stat().st_mtime and built >= Path(__file__).stat().st_mtime


def ensure(archive: Path = DEFAULT_OUTPUT, tags: Sequence[str] = DEFAULT_TAGS, busybox: Path = BUSYBOX,
           force: bool = False) -> Path:
    """The cached archive, built first when missing or stale (or ``force``)."""
    with _lock:
        if force or not is_fresh(archive, busybox):
            write_archive(archive, tags, busybox)
    return archive


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.busybox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT,
                        help=f"archive to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--tag", "-t", action="append", dest="tags", metavar="REPO:TAG",
                        help=f"tag to give the image, repeatable (default: {', '.join(DEFAULT_TAGS)})")
    parser.add_argument("--busybox", type=Path, default=BUSYBOX, help="the static busybox binary")
    parser.add_argument("--force", action="store_true", help="rebuild even when the archive is fresh")
    args = parser.parse_args(argv)
    if not args.busybox.exists():
        print(f"{args.busybox} missing: install busybox-static", file=sys.stderr)
        return 1
    tags = tuple(args.tags or DEFAULT_TAGS)
    if args.tags and args.output == DEFAULT_OUTPUT:
        parser.error("--tag needs --output: the cache must keep its default tags")
    path = ensure(args.output, tags, args.busybox, force=args.force)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
