"""PID 1's early mounts: /proc, /sys, /dev, /dev/pts, /dev/shm, /run and the cgroup hierarchy.

Each is mounted only when its target is not a mount point yet, and we remember what we mounted so
shutdown unmounts exactly that, in reverse. Mounting goes through mount(2) (Python has no binding);
the mount(8) binary may not exist yet this early."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from pathlib import Path

import structlog

from supervisor import clib
from supervisor.mountinfo import mounted_targets

log = structlog.get_logger("supervisor.mounts")

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_RELATIME = 1 << 21
MNT_DETACH = 2

_libc = clib.libc()


@dataclass(frozen=True)
class MountSpec:
    source: str
    target: str  # absolute, inside the mount root
    fstype: str
    flags: int = 0
    data: str = ""
    mode: int = 0o755


BASE_MOUNTS: tuple[MountSpec, ...] = (
    MountSpec("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC),
    MountSpec("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC),
    MountSpec("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"),
    MountSpec("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"),
    MountSpec("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 0o1777),
    MountSpec("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
)


def cgroup_mounts(filesystems: str, cgroups: str) -> tuple[MountSpec, ...]:
    """cgroup2 when the kernel has it; otherwise a tmpfs with one v1 hierarchy per enabled controller.

    ``filesystems`` is /proc/filesystems, ``cgroups`` is /proc/cgroups (pure, for testing)."""
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME
    if any(line.split()[-1:] == ["cgroup2"] for line in filesystems.splitlines()):
        return (MountSpec("cgroup2", "/sys/fs/cgroup", "cgroup2", flags, "nsdelegate"),)
    specs = [MountSpec("tmpfs", "/sys/fs/cgroup", "tmpfs", flags, "mode=0755")]
    for line in cgroups.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "1":
            specs.append(MountSpec("cgroup", f"/sys/fs/cgroup/{fields[0]}", "cgroup", flags, fields[0]))
    return tuple(specs)


def mount(spec: MountSpec, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True, mode=spec.mode)
    rc = _libc.mount(spec.source.encode(), str(target).encode(), spec.fstype.encode(),
                     ctypes.c_ulong(spec.flags), spec.data.encode() if spec.data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {spec.fstype} on {target}: {os.strerror(err)}")


def mount_raw(source: str | Path, target: str | Path, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2) as it is: binds and moves too (``fstype`` None)."""
    rc = _libc.mount(str(source).encode(), str(target).encode(), fstype.encode() if fstype else None,
                     ctypes.c_ulong(flags), data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind/move'} {source} on {target}: {os.strerror(err)}")


def umount(target: Path, lazy_fallback: bool = True) -> None:
    if _libc.umount2(str(target).encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and lazy_fallback and _libc.umount2(str(target).encode(), MNT_DETACH) == 0:
        log.warning("target busy; detached lazily", target=str(target))
        return
    raise OSError(err, f"umount {target}: {os.strerror(err)}")


def detach(path: str) -> None:
    """umount2(path, MNT_DETACH): the mount disappears now, the filesystem when its last user goes."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount -l {path}: {os.strerror(err)}")


class MountTable:
    """Mounts what is missing under ``root`` and unmounts, in reverse, only what it mounted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def _path(self, target: str) -> Path:
        return self.root / target.lstrip("/")

    def ensure(self, specs: tuple[MountSpec, ...]) -> list[str]:
        existing = mounted_targets(Path("/proc/self/mountinfo").read_text())
        done = []
        for spec in specs:
            path = self._path(spec.target)
            if str(path) in existing:
                log.debug("already mounted", target=str(path))
                continue
            mount(spec, path)
            self.mounted.append(path)
            existing.add(str(path))
            done.append(str(path))
            log.info("mounted", target=str(path), fstype=spec.fstype)
        return done

    def ensure_base(self) -> list[str]:
        done = self.ensure(BASE_MOUNTS)
        proc = self._path("/proc")
        cgroups = cgroup_mounts((proc / "filesystems").read_text(), (proc / "cgroups").read_text()
                                if (proc / "cgroups").exists() else "")
        return done + self.ensure(cgroups)

    def isolate_run_and_sys(self, keep: Path) -> list[str]:
        """The sandbox's own ``/run`` and ``/sys``, mounted over the host's in its private mount namespace
        (they never propagate back). A dockerd run by the sandbox needs both, as the integration tests'
        dockerd fixture found: a private tmpfs on ``/run`` (containerd's shim sockets, the xtables lock,
        ``/run/docker``; it also hides a host containerd's socket, which dockerd would otherwise use) and
        a fresh sysfs on ``/sys`` that shows the sandbox's network namespace, with the cgroup mounts
        carried over. ``keep`` (the sandbox's directory) must not lie below either."""
        run, sys_, cgroup = Path("/run"), Path("/sys"), Path("/sys/fs/cgroup")
        for top in (run, sys_):
            if keep == top or top in keep.parents:
                raise OSError(errno.EINVAL, f"the sandbox directory {keep} is below {top}, which it replaces")
        mount_raw("corral-run", run, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        self.mounted.append(run)
        log.info("mounted", target=str(run), fstype="tmpfs")
        hold = run / ".corral-cgroup-hold"
        hold.mkdir(mode=0o700)
        has_cgroups = str(cgroup) in mounted_targets(Path("/proc/self/mountinfo").read_text())
        if has_cgroups:
            mount_raw(cgroup, hold, None, MS_BIND | MS_REC)
        if _libc.umount2(str(sys_).encode(), MNT_DETACH) != 0:
            log.debug("old /sys not detached", error=os.strerror(ctypes.get_errno()))
        mount_raw("sysfs", sys_, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        self.mounted.append(sys_)
        log.info("mounted", target=str(sys_), fstype="sysfs")
        if has_cgroups:
            mount_raw(hold, cgroup, None, MS_MOVE)
            self.mounted.append(cgroup)
            log.info("mounted", target=str(cgroup), fstype="bind", source="the host's cgroup mounts")
        hold.rmdir()
        return [str(p) for p in (run, sys_, cgroup) if p in self.mounted]

    def unmount_all(self) -> list[str]:
        errors = []
        for path in reversed(self.mounted):
            try:
                umount(path)
                log.info("unmounted", target=str(path))
            except OSError as exc:
                errors.append(str(exc))
                log.error("unmount failed", target=str(path), error=str(exc))
        self.mounted.clear()
        return errors
