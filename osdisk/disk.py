"""Carry a layout out on a real disk, and write a version into a slot (docs/install.md).

Every tool (``sfdisk``, ``mkfs.vfat``, ``mkfs.ext4``, ``mount``, ``umount``, ``wipefs``) runs by argument
vector with a timeout; nothing passes through a shell. These block: they run in the CLI's process
(``corral install``, ``corral os upgrade``), never in PID 1's loop.

``write_slot`` writes a version whole: it makes a new filesystem on the slot, writes each file under a
temporary name, fsyncs it, renames it into place, fsyncs the directory, unmounts. A power cut in the
middle leaves a slot that is incomplete; it is only ever selected (grubenv) after ``write_slot``
returned, so the old slot is still the one that boots."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from osdisk.bundle import SLOT_FILES, Bundle
from osdisk.layout import MOUNT_OPTIONS, Layout, partition_path, sfdisk_script
from supervisor.atomic import fsync_directory

TOOL_TIMEOUT = 120.0
PARTITION_WAIT = 15.0
CHUNK = 1 << 20


class DiskError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tools:
    """Runs the disk tools: by argv, with a timeout, the tool's own words in the error."""

    timeout: float = TOOL_TIMEOUT

    def run(self, argv: Sequence[str], stdin: bytes | None = None, timeout: float | None = None) -> str:
        try:
            done = subprocess.run(list(argv), input=stdin, capture_output=True, check=False,
                                  timeout=timeout or self.timeout)
        except FileNotFoundError:
            raise DiskError(f"{argv[0]} is missing") from None
        except subprocess.TimeoutExpired:
            raise DiskError(f"{argv[0]} took more than {timeout or self.timeout:.0f} s") from None
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).decode(errors="replace").split())[:400]
            raise DiskError(f"{' '.join(argv[:2])} failed ({done.returncode}): {said}")
        return done.stdout.decode(errors="replace")


def device_bytes(device: str) -> int:
    """The size of a block device (or an image file) in bytes."""
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def partition(device: str, layout: Layout, tools: Tools, settle: bool = True) -> dict[int, str]:
    """Clear every signature on ``device`` and write the layout's GPT; with ``settle``, wait for the
    kernel's partition nodes. Returns partition number -> its device path."""
    tools.run(["wipefs", "--all", "--force", device])
    tools.run(["sfdisk", "--quiet", "--wipe", "always", "--wipe-partitions", "always", device],
              stdin=sfdisk_script(layout).encode())
    paths = {p.number: partition_path(device, p.number) for p in layout.partitions}
    if settle:
        wait_for_partitions(list(paths.values()))
    return paths


def wait_for_partitions(paths: Sequence[str], seconds: float = PARTITION_WAIT) -> None:
    deadline = time.monotonic() + seconds
    missing = list(paths)
    while True:
        missing = [path for path in missing if not os.path.exists(path)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise DiskError(f"the kernel did not make {', '.join(missing)} within {seconds:.0f} s")
        time.sleep(0.1)


def mkfs_argv(path: str, fstype: str, label: str) -> list[str]:
    if fstype == "vfat":
        return ["mkfs.vfat", "-F", "32", "-n", label, path]
    if fstype == "ext4":
        return ["mkfs.ext4", "-q", "-F", "-L", label, path]
    raise DiskError(f"no mkfs for {fstype!r}")


def make_filesystems(paths: Mapping[int, str], layout: Layout, tools: Tools) -> None:
    """Every partition that gets one (``paths``: number -> device), a new filesystem with its label (the
    slots empty)."""
    for part in layout.partitions:
        if part.fstype is not None and part.label is not None:
            tools.run(mkfs_argv(paths[part.number], part.fstype, part.label))


FS_MODULES = {"vfat": ("vfat", "nls_cp437", "nls_utf8")}
"""What a filesystem's mount needs loaded first: vfat's codepage and character set are modules of their own
that the kernel does not load by itself in corral (the mount fails: "missing codepage")."""
FS_OPTIONS = {fstype: "," + options for fstype, options in MOUNT_OPTIONS.items()}  # after ro/rw


def load_modules(names: Sequence[str], tools: Tools) -> None:
    """``modprobe -a`` them; a failure is left to the mount to report (a kernel with them built in)."""
    if names:
        with contextlib.suppress(DiskError):
            tools.run(["modprobe", "-a", *names], timeout=30)


@contextlib.contextmanager
def mounted(path: str, fstype: str, tools: Tools, read_only: bool = False) -> Iterator[Path]:
    """``path`` mounted on a private temporary directory for the block; unmounted after."""
    where = Path(tempfile.mkdtemp(prefix="corral-disk-"))
    options = "ro" if read_only else "rw"
    load_modules(FS_MODULES.get(fstype, ()), tools)
    try:
        tools.run(["mount", "-t", fstype, "-o", f"{options},nodev,nosuid,noexec{FS_OPTIONS.get(fstype, '')}",
                   path, os.fspath(where)])
        try:
            yield where
        finally:
            tools.run(["umount", os.fspath(where)])
    finally:
        with contextlib.suppress(OSError):
            where.rmdir()


def copy_durably(src: Path, dest_dir: Path, name: str) -> None:
    """Copy ``src`` to ``dest_dir/.name.tmp``, fsync it, rename it to ``name`` (the directory is fsynced
    by the caller)."""
    tmp = dest_dir / f".{name}.tmp"
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    os.rename(tmp, dest_dir / name)


def write_slot(partition: str, bundle: Bundle, tools: Tools, label: str) -> None:
    """Write ``bundle`` (already verified) into the slot partition ``partition`` whole: a new ext4
    labelled ``label``, vmlinuz and initrd, then the manifest last, each fsynced and renamed into place,
    the directory fsynced."""
    tools.run(mkfs_argv(partition, "ext4", label))
    with mounted(partition, "ext4", tools) as root:
        for name in SLOT_FILES:
            copy_durably(bundle.path(name), root, name)
        fsync_directory(root)


def write_esp(path: str, files: Mapping[str, bytes], tools: Tools) -> None:
    """Files onto the ESP ``path`` (relative path -> bytes), each written durably."""
    with mounted(path, "vfat", tools) as esp:
        write_files(esp, files)


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    """Files under ``root`` (relative path -> bytes), each written durably."""
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
        fsync_directory(target.parent)
