"""``python -m image.console``: build ``corral/console:latest``, the image of the ``console`` system unit.

Where a user logs in, as in RancherOS: a getty on the serial console and Debian's sshd, users ``rancher``
(passwordless sudo) and ``docker``, and ``corral``, ``docker``, ``system-docker`` commands that run the
host's (``nsenter`` into PID 1's namespaces). Made from Debian packages (``PACKAGES``, unpacked with
``dpkg -x`` by ``image.debs``) without a daemon: only the files the console runs are taken from the
unpacked root (the binaries below, the PAM modules the PAM files name, busybox-static for a shell and small
tools) with the shared libraries they need (their ELF ``DT_NEEDED`` closure, looked up in the same root),
plus the console's own files from ``image/console/``: the entrypoint ``/usr/lib/corral/console-init``
(see it for what a start does), sshd's and PAM's configuration, sudoers and the host-command wrapper.

One layer, written as a ``docker save`` archive by ``image.docker.write_archive`` (the same writer as the
user dockerd's image): byte-for-byte reproducible for the same input files. Entrypoint ``tini -s -g --
console-init``: tini reaps (as a subreaper: with ``pid: host`` it is not PID 1) and passes a stop
signal to the whole process group."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from image import debs
from image.busybox import applets
from image.docker import MERGED, PATH_ENV, Rootfs
from image.docker import write_archive as write_save_archive
from image.elf import LIBRARY_DIRS, elf_needs, find_library

IMAGE = "corral/console:latest"
REPO_ROOT = Path(__file__).resolve().parent.parent
FILES_DIR = Path(__file__).resolve().parent / "console"
DEFAULT_OUTPUT = REPO_ROOT / ".cache" / "images" / "console.tar"
DEFAULT_LOCK = Path(__file__).resolve().parent / "console.lock"  # shared with `python -m image build`
ENTRYPOINT = "/usr/lib/corral/console-init"

# The Debian packages the console's files come from (with their Depends, less EXCLUDE).
PACKAGES = (
    "openssh-server",  # sshd
    "openssh-sftp-server",  # sftp, and scp (which speaks sftp since OpenSSH 9)
    "openssh-client",  # ssh-keygen: the host keys
    "sudo",
    "login",  # login (agetty runs it), nologin
    "passwd",  # chpasswd
    "util-linux",  # agetty, nsenter, setsid
    "libpam-modules",  # pam_unix, pam_deny, pam_permit
    "libpam-modules-bin",  # unix_chkpwd
    "busybox-static",  # the shell (/bin/sh) and small tools
    "tini",  # the container's init
)
# Dependencies that only maintainer scripts use (dpkg -x never runs them).
EXCLUDE = ("debconf", "perl-base", "ucf", "adduser", "dpkg", "init-system-helpers", "lsb-base",
           "sysvinit-utils", "procps", "runit-helper", "debianutils", "sensible-utils", "logsave", "systemd",
           "systemd-sysv")

# What the console runs, as paths in the unpacked root (usr-merged). ELF files bring their libraries.
BINARIES = (
    "/usr/sbin/sshd",
    "/usr/bin/ssh-keygen",
    "/usr/lib/openssh/sftp-server",
    "/usr/bin/sudo",  # setuid root, as unpacked
    "/usr/libexec/sudo/sudoers.so",  # sudo's policy plugin (dlopened)
    "/usr/bin/login",
    "/usr/sbin/nologin",
    "/usr/sbin/agetty",
    "/usr/bin/nsenter",
    "/usr/bin/setsid",  # the getty's session (--wait, which busybox's setsid lacks)
    "/usr/sbin/chpasswd",
    "/usr/sbin/unix_chkpwd",  # pam_unix's helper (setgid shadow)
    "/usr/bin/tini",
    "/usr/bin/busybox",
)
PAM_MODULES = ("pam_unix.so", "pam_deny.so", "pam_permit.so", "pam_motd.so")  # as etc/pam.d names
CONFIG_FROM_PACKAGES = ("/etc/login.defs", "/etc/ssh/moduli", "/etc/sudo.conf")
# busybox applets not linked: the real tools are there, or the applet would need to be setuid.
NOT_APPLETS = frozenset({"login", "su", "passwd", "getty", "sulogin", "vlock", "chpasswd", "cryptpw",
                         "mkpasswd", "adduser", "addgroup", "deluser", "delgroup", "nologin"})
# The console's own files: image/console/<source> -> path in the image.
OWN_FILES = {
    "console-init": ENTRYPOINT.lstrip("/"),
    "host-command": "usr/lib/corral/host-command",
    "etc/ssh/sshd_config": "etc/ssh/sshd_config",
    "etc/sudoers": "etc/sudoers",
    **{f"etc/pam.d/{n}": f"etc/pam.d/{n}" for n in ("common-auth", "common-account", "common-session",
                                                     "common-password", "sshd", "login", "sudo", "other")},
}
HOST_COMMANDS = ("corral", "docker", "system-docker")  # /usr/local/bin/NAME -> the host's NAME
GENERATED = {
    # Rewritten by console-init at each start; these make the image usable before it runs.
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": b"root:x:0:\nshadow:x:42:\n",
    "etc/nsswitch.conf": b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    "etc/shells": b"/bin/sh\n/usr/bin/sh\n/bin/ash\n",
    "etc/issue": b"corral \\n (\\l)\n\n",
    "etc/motd": (b"\ncorral console. On the host, with sudo: corral status | corral logs -f | "
                 b"system-docker ps | docker ps\n\n"),
}
BASE_DIRS = ("dev", "etc", "home", "proc", "root", "run", "sys", "var", "var/lib", "var/lib/corral",
             "var/log", "usr/local/bin")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}

_lock = threading.Lock()


class ConsoleImageError(RuntimeError):
    """A file the console needs is not in the root (the message names it and the root)."""


def add_with_libraries(fs: Rootfs, paths: Iterable[str]) -> None:
    """Add each path (of ``fs.root``) and, for ELF files, the loader and libraries it needs, recursively,
    all looked up in ``fs.root`` (never the build machine's own /usr)."""
    todo = list(paths)
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        fs.add(path)
        real = Path(os.path.realpath(fs.root / path.lstrip("/")))
        if not real.is_relative_to(fs.root.resolve()):
            real = fs.root / path.lstrip("/")
        interp, needed, runpath = elf_needs(real)
        if interp is not None:
            todo.append(interp)
        origin = "/" + str(Path(path).parent).lstrip("/")
        search = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in runpath]
        for name in needed:
            found = find_library(fs.root, name, [*search, *LIBRARY_DIRS])
            if found is None:
                raise ConsoleImageError(f"{path} needs {name}: not in {fs.root} "
                                        "(is its package in PACKAGES?)")
            todo.append(found)


def collect(root: Path) -> Rootfs:
    """Every file of the console image: from ``root`` (the unpacked packages) and ``image/console/``."""
    root = root.resolve()
    fs = Rootfs(root=root, generated=dict(GENERATED), base_dirs=BASE_DIRS)
    for top in MERGED:
        if (root / top).is_symlink():
            fs.links[top] = os.readlink(root / top)
    missing = [p for p in (*BINARIES, *CONFIG_FROM_PACKAGES) if not (root / p.lstrip("/")).exists()]
    if missing:
        raise ConsoleImageError(f"{root}: missing {', '.join(missing)} (unpack image.console.PACKAGES there)")
    pam_dir = next((d for d in LIBRARY_DIRS if (root / d / "security").is_dir()), None)
    if pam_dir is None:
        raise ConsoleImageError(f"{root}: no PAM modules (libpam-modules) under {', '.join(LIBRARY_DIRS)}")
    add_with_libraries(fs, [*BINARIES, *(f"/{pam_dir}/security/{m}" for m in PAM_MODULES)])
    for path in CONFIG_FROM_PACKAGES:
        fs.add(path)
    for source, target in OWN_FILES.items():
        fs.files[target] = FILES_DIR / source
    for name in HOST_COMMANDS:
        fs.links[f"usr/local/bin/{name}"] = "../../lib/corral/host-command"
    busybox = root / "usr/bin/busybox"
    for applet in applets(busybox):
        name = f"usr/bin/{applet}"
        if applet in NOT_APPLETS or name in fs.files or name in fs.links or f"usr/sbin/{applet}" in fs.files:
            continue
        fs.links[name] = "busybox"
    return fs


def image_config(layer_digest: str, created: str) -> bytes:
    config = {
        "architecture": _GOARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/bin/tini", "-s", "-g", "--", ENTRYPOINT],
            "Env": [PATH_ENV],
            "Labels": {"io.corral.image": "console"},
            "WorkingDir": "/",
        },
        "created": created,
        "history": [{"created": created, "created_by": "python -m image.console",
                     "comment": "Debian's openssh-server, sudo, login, util-linux, PAM; busybox-static"}],
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def write_archive(dest: Path, root: Path, tags: Sequence[str] = (IMAGE,)) -> str:
    """Write ``corral/console:latest`` as a ``docker save`` archive to ``dest`` (atomically), from ``root``
    where ``PACKAGES`` are unpacked; returns the image id (sha256:...)."""
    return write_save_archive(dest, tags, collect(root), config_for=image_config)


def unpack_packages(root: Path, lock: Path | None = DEFAULT_LOCK, cache_dir: Path = debs.DEFAULT_CACHE,
                    update: bool = False) -> list[debs.Package]:
    """Resolve (pinned by ``lock``), download (cached) and unpack ``PACKAGES`` into ``root``."""
    resolution, paths = debs.fetch(PACKAGES, lock, exclude=EXCLUDE, update=update, cache_dir=cache_dir)
    debs.unpack(paths, root)
    return resolution.packages


def inputs() -> list[Path]:
    """The files the archive is made from besides the packages: this builder, the console's own files
    and the package lock."""
    own = [Path(__file__), DEFAULT_LOCK, *(p for p in FILES_DIR.rglob("*") if p.is_file())]
    return sorted(p for p in own if p.exists())


def is_fresh(archive: Path) -> bool:
    """True when ``archive`` exists and is newer than every input (the lock pins the packages)."""
    try:
        built = archive.stat().st_mtime
    except FileNotFoundError:
        return False
    return all(built >= p.stat().st_mtime for p in inputs())


def ensure(archive: Path = DEFAULT_OUTPUT, lock: Path = DEFAULT_LOCK, force: bool = False) -> Path:
    """The cached archive, built first (packages fetched and unpacked into a temporary root) when missing
    or stale, or ``force``."""
    with _lock:
        if force or not is_fresh(archive):
            with tempfile.TemporaryDirectory(prefix="corral-console-root.") as tmp:
                unpack_packages(Path(tmp), lock)
                write_archive(archive, Path(tmp))
    return archive


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.console", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", "-o", type=Path, default=DEFAULT_OUTPUT,
                        help=f"archive to write (default: {DEFAULT_OUTPUT.relative_to(REPO_ROOT)})")
    parser.add_argument("--root", type=Path,
                        help="a directory where PACKAGES are already unpacked (default: fetch and unpack "
                             "them into a temporary one)")
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="the package lock file to read/write")
    parser.add_argument("--update-lock", action="store_true", help="resolve the packages again")
    parser.add_argument("--list", action="store_true", help="print the image's files instead of building")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="corral-console-root.") as tmp:
            root = args.root
            if root is None:
                root = Path(tmp)
                unpack_packages(root, args.lock, update=args.update_lock)
            if args.list:
                fs = collect(root)
                for name in sorted([*fs.files, *fs.links, *fs.generated]):
                    print(f"/{name}" + (f" -> {fs.links[name]}" if name in fs.links else ""))
                return 0
            image_id = write_archive(args.output, root)
    except (ConsoleImageError, debs.DebsError) as exc:
        print(f"python -m image.console: {exc}", file=sys.stderr)
        return 1
    print(f"{args.output} {image_id} {args.output.stat().st_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
