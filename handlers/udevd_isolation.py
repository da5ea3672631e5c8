"""Fencing a sandboxed udevd off the host (``corral.udev.rules_dir``; the sandbox only).

The sandbox shares the host's kernel: its udevd receives the uevents of every host device, and /dev is
the host's devtmpfs. So, in the sandbox's own mount namespace (never the host's) and before udevd
starts:

- /dev becomes an overlay whose lower layer is the host's /dev and whose upper layer is a tmpfs: the
  symlinks udevd makes (/dev/block/M:m, /dev/char/M:m, /dev/disk/..., the /dev/core of its start-up)
  and any permission it sets land in the tmpfs, and device nodes the kernel adds later still show
  through. The mounts below /dev (pts, shm...) are moved onto the overlay.
- ``rules_dir`` (holding only the block rules a test needs) is bound read-only over every udev rules
  directory, so no host rule runs (no 80-net-setup-link, no 60-block writing module parameters).
- an empty directory is bound over every ``.link`` directory, so no NIC could be renamed.

Everything here is undone by the namespace ending with the sandbox."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from supervisor.mountinfo import mounted_targets
from supervisor.mounts import MS_BIND, MS_MOVE, MS_NODEV, MS_NOSUID, mount_raw

log = structlog.get_logger("handlers.udevd")

MS_RDONLY = 1
MS_REMOUNT = 32

RULES_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/local/lib/udev/rules.d",
              "/usr/lib/udev/rules.d", "/lib/udev/rules.d")
LINK_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network",
             "/usr/lib/systemd/network", "/lib/systemd/network")
SCRATCH = Path("/run/corral-udevd")
SANDBOX_RUN_SOURCE = "corral-run"  # what supervisor.mounts.isolate_run_and_sys mounts on /run


class IsolationError(RuntimeError):
    """The sandbox cannot be fenced off: udevd must not start."""


# ---- pure parts -------------------------------------------------------------------------------------------
def existing_dirs(candidates: Iterable[str], realpath: Callable[[str], str] = os.path.realpath,
                  is_dir: Callable[[str], bool] = os.path.isdir) -> list[str]:
    """The candidates that are directories, each real directory once (/lib is often /usr/lib)."""
    seen: set[str] = set()
    found = []
    for path in candidates:
        if not is_dir(path):
            continue
        real = realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(real)
    return found


def direct_submounts(mountinfo: str, top: str) -> list[str]:
    """Mount points strictly below ``top`` that are not below another of them (moving one moves its
    subtree), in mountinfo order."""
    below = [t for t in _targets_in_order(mountinfo) if t.startswith(top.rstrip("/") + "/")]
    result: list[str] = []
    for target in below:
        if target in result or any(target.startswith(other + "/") for other in below if other != target):
            continue
        result.append(target)
    return result


def run_is_the_sandboxes(mountinfo: str) -> bool:
    """/run is the sandbox's private tmpfs: we are in the sandbox's mount namespace."""
    source = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/run" and "-" in fields:
            sep = fields.index("-")
            source = fields[sep + 2] if len(fields) > sep + 2 else None  # the last /run mount wins
    return source == SANDBOX_RUN_SOURCE


def _targets_in_order(mountinfo: str) -> list[str]:
    targets = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            targets.append(fields[4].encode().decode("unicode_escape"))
    return targets


# ---- the mounts -------------------------------------------------------------------------------------------
def isolate(rules_dir: Path, scratch: Path = SCRATCH) -> list[str]:
    """Do the fencing described in the module doc; returns what was mounted where. Blocking (a thread).
    Raises IsolationError when this is not the sandbox's mount namespace or ``rules_dir`` is unusable."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    if not run_is_the_sandboxes(mountinfo):
        raise IsolationError("/run is not the sandbox's own tmpfs: refusing to mount over the host's /dev "
                             "and udev rules")
    if not rules_dir.is_absolute() or not rules_dir.is_dir():
        raise IsolationError(f"corral.udev.rules_dir: {rules_dir} is not an existing absolute directory")
    done: list[str] = []
    if str(scratch) not in mounted_targets(mountinfo):
        scratch.mkdir(mode=0o700, exist_ok=True)
        mount_raw("corral-udevd", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700")
    upper, work, dev, empty = (scratch / n for n in ("upper", "work", "dev", "empty"))
    for d in (upper, work, dev, empty):
        d.mkdir(exist_ok=True)
    mount_raw("corral-dev", dev, "overlay", 0, f"lowerdir=/dev,upperdir={upper},workdir={work}")
    for sub in direct_submounts(mountinfo, "/dev"):
        target = dev / os.path.relpath(sub, "/dev")
        if target.is_dir() or target.exists():
            mount_raw(sub, target, None, MS_MOVE)
    mount_raw(dev, "/dev", None, MS_MOVE)
    done.append("/dev: overlay (host /dev below, writes to a tmpfs)")
    for rules in existing_dirs(RULES_DIRS):
        mount_raw(rules_dir, rules, None, MS_BIND)
        mount_raw("none", rules, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        done.append(f"{rules}: {rules_dir} (read-only)")
    for links in existing_dirs(LINK_DIRS):
        mount_raw(empty, links, None, MS_BIND)
        mount_raw("none", links, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        done.append(f"{links}: empty")
    log.info("udevd fenced off the host", mounts=done)
    return done
