"""What a ``mounts:`` rule is, and the pieces both of its forms are read with: mount options (mount(8)'s
words into mount(2)'s flags and the filesystem's data), device references (``LABEL=``, ``UUID=``, paths,
globs), mount points and filesystem types. Pure. ``storage.rules`` reads the config with them (and
re-exports them), ``storage.entries`` cloud-config's list entries."""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.check import as_absolute, as_str
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from supervisor.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RELATIME

MS_RDONLY = 1
MS_SYNCHRONOUS = 16
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_SILENT = 32768
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# option -> (flag, set it?)
_FLAG_OPTIONS: dict[str, tuple[int, bool]] = {
    "ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True), "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True), "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "noatime": (MS_NOATIME, True), "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True), "diratime": (MS_NODIRATIME, False),
    "relatime": (MS_RELATIME, True), "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True), "nostrictatime": (MS_STRICTATIME, False),
    "lazytime": (MS_LAZYTIME, True), "nolazytime": (MS_LAZYTIME, False),
    "silent": (MS_SILENT, True), "loud": (MS_SILENT, False),
}
# fstab words that mean something to mount(8) or to boot scripts, not to the kernel
_IGNORED_OPTIONS = {"defaults", "auto", "nofail", "_netdev", "user", "nouser", "users", "owner", "group",
                    "nouser_xattr"}
_REFUSED_OPTIONS = {
    "bind": "a bind mount is a list entry [source, path, \"\", bind]",
    "rbind": "a bind mount is a list entry [source, path, \"\", rbind]",
    "move": "moving mounts is not supported here",
    "remount": "remount is not supported here",
    "loop": "loop devices are not set up by mounts: rules",
}
_FORBIDDEN_PATHS = ("/", "/proc", "/sys", "/dev", "/run")
KINDS = ("device", "bind", "nfs")


# ---- model ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MountOptions:
    """Options split as mount(2) wants them: ``flags`` and the filesystem's own ``data``."""

    flags: int = MS_NODEV | MS_NOSUID
    data: str = ""
    text: str = "defaults"  # as written
    auto: bool = True  # false for ``noauto``: the rule is kept but never acted on

    @property
    def read_only(self) -> bool:
        return bool(self.flags & MS_RDONLY)


@dataclass(frozen=True)
class Match:
    """What a device must have: every criterion given must hold. ``device`` is an exact path (also
    compared with the device's /dev links) or, when it holds ``*?[``, a glob on the device path."""

    device: str | None = None
    label: str | None = None
    uuid: str | None = None
    fstype: str | None = None
    serial: str | None = None

    @property
    def device_is_glob(self) -> bool:
        return self.device is not None and any(c in self.device for c in "*?[")

    def describe(self) -> str:
        parts = []
        if self.device is not None:
            parts.append(self.device)
        for name in ("label", "uuid", "fstype", "serial"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name.upper()}={value}")
        return " ".join(parts) or "(nothing)"

    def empty(self) -> bool:
        return all(getattr(self, n) is None for n in ("device", "label", "uuid", "fstype", "serial"))


@dataclass(frozen=True)
class MountRule:
    key: str  # where it was written: mounts[2]
    match: Match
    path: str
    fstype: str | None = None  # None: what blkid says
    options: MountOptions = field(default_factory=MountOptions)
    fsck: bool = False
    on_remove: str = "stop"
    kind: str = "device"  # device (by match) | bind | nfs (from ``source``)
    source: str = ""  # bind: the path bound; nfs: host:/path

    @property
    def auto(self) -> bool:
        return self.options.auto


def parse_device_ref(text: str, here: KeyPath, problems: Problems, allow_glob: bool) -> Match | None:
    """``LABEL=x``, ``UUID=x``, ``/dev/path`` (or ``sdb1``); a glob too when ``allow_glob``."""
    text = text.strip()
    upper = text.upper()
    for prefix, name in (("LABEL=", "label"), ("UUID=", "uuid")):
        if upper.startswith(prefix):
            value = text[len(prefix):].strip().strip('"')
            if not value:
                problems.error(here, f"{text!r}: empty {name}")
                return None
            return Match(**{name: value})
    if upper.startswith(("PARTUUID=", "PARTLABEL=")):
        problems.error(here, f"{text!r}: PARTUUID= and PARTLABEL= are not supported; "
                             "use LABEL=, UUID= or a path")
        return None
    devpath = _device_path(text, allow_glob=allow_glob)
    if devpath is None:
        what = "LABEL=..., UUID=..., a device path or a glob" if allow_glob else \
            "LABEL=..., UUID=... or a device path"
        problems.error(here, f"{text!r} is not {what}")
        return None
    return Match(device=devpath)


def parse_options(text: str, here: KeyPath, problems: Problems) -> MountOptions | None:
    """mount(8)-style options into flags and data; ``nodev,nosuid`` unless ``dev``/``suid`` say otherwise."""
    flags = MS_NODEV | MS_NOSUID
    data: list[str] = []
    auto = True
    bad = False
    for raw in text.split(","):
        opt = raw.strip()
        if not opt:
            continue
        if opt in _FLAG_OPTIONS:
            flag, on = _FLAG_OPTIONS[opt]
            flags = flags | flag if on else flags & ~flag
        elif opt == "noauto":
            auto = False
        elif opt in _IGNORED_OPTIONS or opt.startswith(("x-", "comment=")):
            continue
        elif opt in _REFUSED_OPTIONS:
            problems.error(here, f"option {opt!r}: {_REFUSED_OPTIONS[opt]}")
            bad = True
        else:
            data.append(opt)
    if bad:
        return None
    return MountOptions(flags=flags, data=",".join(data), text=text.strip() or "defaults", auto=auto)


# ---- helpers ---------------------------------------------------------------------------------------------
def _device_path(text: str, allow_glob: bool = False) -> str | None:
    text = text.strip()
    if not text or "=" in text or " " in text:
        return None
    if not text.startswith("/"):
        text = "/dev/" + text
    if not text.startswith("/dev/") or ".." in text.split("/"):
        return None
    if not allow_glob and any(c in text for c in "*?["):
        return None
    return posixpath.normpath(text)


def _mount_path(value: Any, here: KeyPath, problems: Problems, lenient: bool = False) -> str | None:
    """An absolute mount point outside ``/``, ``/proc``, ``/sys``, ``/dev`` and ``/run``. ``lenient`` (a
    list entry, which cloud-init wrote to fstab whatever it was): such a place is a warning, the entry
    not mounted; None either way."""
    text = as_absolute(value, here, problems)
    if text is None:
        return None
    norm = posixpath.normpath(text)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    for forbidden in _FORBIDDEN_PATHS:
        if norm == forbidden or (forbidden != "/" and norm.startswith(forbidden + "/")):
            why = f"{norm} is {'the root' if forbidden == '/' else 'under ' + forbidden}: " \
                  "not a place for storage mounts"
            if lenient:
                problems.warn(here, f"{why}; this entry is not mounted")
            else:
                problems.error(here, why)
            return None
    return norm


def _fstype(value: Any, here: KeyPath, problems: Problems) -> str | None:
    text = as_str(value, here, problems)
    if text is None:
        return None
    text = text.strip()
    if text in ("", "auto"):
        return None
    if not all(c.isalnum() or c in "._-" for c in text):
        problems.error(here, f"{text!r} is not a filesystem type")
        return None
    return text


def glob_match(pattern: str, name: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern)
