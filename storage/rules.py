"""Storage rules from the config: ``corral.state`` (``rancher.state``) and ``mounts:``.

Pure: config data in, frozen rules and named problems (``ConfigError``: key path + reason) out.

``mounts:`` entries come in two forms:

- cloud-config's list ``[device, path, fstype, options, dump, passno]``; ``device`` is ``LABEL=x``,
  ``UUID=x``, a path (``/dev/sdb1``) or a bare name (``sdb1`` means ``/dev/sdb1``), ``fstype``
  defaults to ``auto``, ``options`` to ``defaults``; a ``passno`` other than 0 asks for fsck;
- a map: ``match`` (any of ``label``, ``uuid``, ``fstype``, ``serial``, ``device``: a path or a glob
  such as ``/dev/sd?1``; all given must hold), ``path``, ``fstype``, ``options`` (a string or a list),
  ``fsck`` (default false) and ``on_remove`` (``stop``, the default, or ``ignore``).

Mounts get ``nodev,nosuid`` unless the options say ``dev`` or ``suid``.

A list entry is read as cloud-init and RancherOS read it: a block device, a bind mount or an NFS
mount, or a warning (``storage.entries``)."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.check import (
    Keys,
    SchemaNode,
    as_absolute,
    as_bool,
    as_enum,
    as_number,
    as_str,
    check_keys,
    describe,
)
from supervisor.config.errors import ConfigError, Source
from supervisor.config.errors import Problems as Problems  # re-exported: the state tests use it
from supervisor.config.keypath import KeyPath, format_path
from supervisor.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RELATIME

MS_RDONLY = 1
MS_SYNCHRONOUS = 16
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_SILENT = 32768
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

STATE_LABEL = "CORRAL_STATE"
RANCHER_STATE_LABEL = "RANCHER_STATE"
DEFAULT_STATE_DEV = f"LABEL={STATE_LABEL}"
DEFAULT_WAIT = 0
DEFAULT_WAIT_REQUIRED = 10
ON_REMOVE = ("stop", "ignore")

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

# The keys of each map, declared once: the parser checks against these tables, and schema.json's
# definitions of `corral.state` and of a `mounts:` map entry are generated from them (python -m
# supervisor.gen_schema). The schema says structure; the parser checks the values.
_STR: SchemaNode = {"type": "string"}
STATE = Keys(
    "storage_state",
    {
        "dev": {"type": "string", "description": "Device, or LABEL=... / UUID=..."},
        "fstype": _STR,
        "required": {"type": "boolean", "description": "Drop to an emergency shell if it is missing."},
        "autoformat": {
            "type": "array", "items": _STR, "description": "Devices that may be formatted when blank."
        },
        "wait": {"type": "integer", "minimum": 0, "description": "Seconds to wait for the device."},
    },
    description="The persistent state partition.",
)
MATCH = Keys(
    "storage_mount_match",
    {name: _STR for name in ("label", "uuid", "fstype", "serial", "device")},
    extra={"minProperties": 1},
)
MOUNT = Keys(
    "storage_mount",
    {
        "match": MATCH.schema(),
        "path": _STR,
        "fstype": _STR,
        "options": {"anyOf": [_STR, {"type": "array", "items": _STR}]},
        "fsck": {"type": "boolean"},
        "on_remove": {"enum": list(ON_REMOVE)},
    },
    hints={k: f"put it under 'match:' ({k}: ...)" for k in ("label", "uuid", "serial", "device")},
    extra={"required": ["match", "path"]},
)
SCHEMA_DEFS: dict[str, SchemaNode] = {STATE.name: STATE.schema(), MOUNT.name: MOUNT.schema()}
"""schema.json's definitions of ``corral.state`` and of a ``mounts:`` map entry (generated from the
tables above by ``python -m supervisor.gen_schema``)."""


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


@dataclass(frozen=True)
class StateRule:
    """``corral.state``. ``dev`` lists what is accepted, first preferred: the default accepts
    ``LABEL=CORRAL_STATE`` and RancherOS's ``LABEL=RANCHER_STATE``. ``label`` is what mkfs writes."""

    dev: tuple[Match, ...] = (Match(label=STATE_LABEL), Match(label=RANCHER_STATE_LABEL))
    dev_text: str = DEFAULT_STATE_DEV
    fstype: str | None = None
    required: bool = False
    autoformat: tuple[str, ...] = ()
    wait: float = DEFAULT_WAIT
    label: str = STATE_LABEL


@dataclass(frozen=True)
class StorageRules:
    state: StateRule = field(default_factory=StateRule)
    mounts: tuple[MountRule, ...] = ()


@dataclass(frozen=True)
class Parsed:
    rules: StorageRules | None  # None when there are errors
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[ConfigError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


# ---- parsing -------------------------------------------------------------------------------------------
def parse_storage(config: Mapping[str, Any], source: Source = "config") -> Parsed:
    """The storage part of a whole (merged) config: ``corral.state`` (or ``rancher.state``, which the
    config loader normally folds into ``corral``) and the top-level ``mounts``."""
    problems = Problems(source)
    top = "corral"
    corral = config.get("corral")
    if corral is None and isinstance(config.get("rancher"), Mapping):
        top, corral = "rancher", config["rancher"]
    state = StateRule()
    if isinstance(corral, Mapping) and corral.get("state") is not None:
        state = parse_state(corral["state"], (top, "state"), problems) or state
    mounts = parse_mounts(config.get("mounts"), ("mounts",), problems)
    if problems.errors:
        return Parsed(None, tuple(problems.errors), tuple(problems.warnings))
    return Parsed(StorageRules(state, mounts), (), tuple(problems.warnings))


def parse_state(value: Any, path: KeyPath, problems: Problems) -> StateRule | None:
    if not isinstance(value, Mapping):
        problems.error(path, f"expected a map, got {describe(value)}")
        return None
    before = len(problems.errors)
    check_keys(value, path, problems, STATE)
    dev_text = DEFAULT_STATE_DEV
    dev: tuple[Match, ...] = StateRule().dev
    label = STATE_LABEL
    if value.get("dev") is not None:
        text = as_str(value["dev"], (*path, "dev"), problems)
        if text is not None:
            ref = parse_device_ref(text, (*path, "dev"), problems, allow_glob=False)
            if ref is not None:
                dev_text = text
                dev = (ref, Match(label=RANCHER_STATE_LABEL)) if ref.label == STATE_LABEL else (ref,)
                if ref.label is not None:
                    label = ref.label
    fstype = None
    if value.get("fstype") is not None:
        fstype = _fstype(value["fstype"], (*path, "fstype"), problems)
    required = False
    if value.get("required") is not None:
        required = bool(as_bool(value["required"], (*path, "required"), problems))
    autoformat: list[str] = []
    raw_af = value.get("autoformat")
    if raw_af is not None:
        if isinstance(raw_af, str):
            raw_af = [raw_af]
        if not isinstance(raw_af, list):
            problems.error((*path, "autoformat"), f"expected a list of device paths, got {describe(raw_af)}")
        else:
            for i, item in enumerate(raw_af):
                text = as_str(item, (*path, "autoformat", i), problems)
                if text is None:
                    continue
                devpath = _device_path(text)
                if devpath is None:
                    problems.error((*path, "autoformat", i),
                                   f"{text!r} is not a device path: autoformat names devices (/dev/vdb)")
                elif devpath in autoformat:
                    problems.error((*path, "autoformat", i), f"{devpath} is listed twice")
                else:
                    autoformat.append(devpath)
    wait: float = DEFAULT_WAIT_REQUIRED if required else DEFAULT_WAIT
    if value.get("wait") is not None:
        seconds = as_number(value["wait"], (*path, "wait"), problems, 0, what="a number of seconds")
        if seconds is not None:
            wait = seconds
    if len(problems.errors) > before:
        return None
    return StateRule(dev=dev, dev_text=dev_text, fstype=fstype, required=required,
                     autoformat=tuple(autoformat), wait=wait, label=label)


def parse_mounts(value: Any, path: KeyPath, problems: Problems) -> tuple[MountRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.error(path, f"expected a list, got {describe(value)}")
        return ()
    rules: list[MountRule] = []
    seen: dict[str, tuple[str, bool]] = {}  # path -> (the first rule's key, written as a list)
    for i, entry in enumerate(value):
        here = (*path, i)
        rule: MountRule | None
        if isinstance(entry, list):
            from storage.entries import parse_list_entry  # it builds on this module's helpers

            rule = parse_list_entry(entry, here, problems)
        elif isinstance(entry, Mapping):
            rule = _parse_map_entry(entry, here, problems)
        else:
            problems.error(here, "expected a list [device, path, fstype, options] or a map, "
                                 f"got {describe(entry)}")
            rule = None
        if rule is None:
            continue
        listed = isinstance(entry, list)
        if rule.path in seen and not (listed and seen[rule.path][1]):
            # list entries may share a path (fstab lines: whichever device is there); a map rule may not
            problems.error((*here, "path") if isinstance(entry, Mapping) else (*here, 1),
                           f"{rule.path} is also the path of {seen[rule.path][0]}")
            continue
        seen.setdefault(rule.path, (rule.key, listed))
        rules.append(rule)
    return tuple(rules)


def _parse_map_entry(entry: Mapping[Any, Any], here: KeyPath, problems: Problems) -> MountRule | None:
    before = len(problems.errors)
    check_keys(entry, here, problems, MOUNT)
    match: Match | None = None
    raw_match = entry.get("match")
    if raw_match is None:
        problems.error((*here, "match"), "required: what the device must have (label, uuid, fstype, "
                                         "serial or device)")
    elif not isinstance(raw_match, Mapping):
        problems.error((*here, "match"), f"expected a map, got {describe(raw_match)}")
    else:
        match = _parse_match(raw_match, (*here, "match"), problems)
    target = None
    if entry.get("path") is None:
        problems.error((*here, "path"), "required: where to mount")
    else:
        target = _mount_path(entry["path"], (*here, "path"), problems)
    fstype = None
    if entry.get("fstype") is not None:
        fstype = _fstype(entry["fstype"], (*here, "fstype"), problems)
    elif match is not None and match.fstype is not None:
        fstype = match.fstype
    options: MountOptions | None = MountOptions()
    raw_opts = entry.get("options")
    if raw_opts is not None:
        if isinstance(raw_opts, list):
            bad = [o for o in raw_opts if not isinstance(o, str)]
            if bad:
                problems.error((*here, "options"), f"options must be strings, got {describe(bad[0])}")
                options = None
            else:
                options = parse_options(",".join(raw_opts), (*here, "options"), problems)
        elif isinstance(raw_opts, str):
            options = parse_options(raw_opts, (*here, "options"), problems)
        else:
            problems.error((*here, "options"), f"expected a string or a list, got {describe(raw_opts)}")
            options = None
    fsck = False
    if entry.get("fsck") is not None:
        fsck = bool(as_bool(entry["fsck"], (*here, "fsck"), problems))
    on_remove = "stop"
    if entry.get("on_remove") is not None:
        on_remove = as_enum(entry["on_remove"], (*here, "on_remove"), problems, ON_REMOVE) or on_remove
    if len(problems.errors) > before or match is None or target is None or options is None:
        return None
    return MountRule(key=format_path(here), match=match, path=target, fstype=fstype, options=options,
                     fsck=fsck, on_remove=on_remove)


def _parse_match(raw: Mapping[Any, Any], here: KeyPath, problems: Problems) -> Match | None:
    before = len(problems.errors)
    check_keys(raw, here, problems, MATCH)
    values: dict[str, str] = {}
    for name in MATCH.known:
        if raw.get(name) is None:
            continue
        text = as_str(raw[name], (*here, name), problems)
        if text is None:
            continue
        if not text:
            problems.error((*here, name), "must not be empty")
            continue
        values[name] = text
    if "device" in values:
        devpath = _device_path(values["device"], allow_glob=True)
        if devpath is None:
            problems.error((*here, "device"),
                           f"{values['device']!r} is not a device path or glob (/dev/sd?1)")
        else:
            values["device"] = devpath
    if len(problems.errors) > before:
        return None
    if not values:
        problems.error(here, "give at least one of: label, uuid, fstype, serial, device")
        return None
    return Match(**values)


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
