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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# re-exported: what a rule is, for the plan, the handlers and the tests (storage.mountspec)
from storage.mountspec import KINDS as KINDS
from storage.mountspec import MS_RDONLY as MS_RDONLY
from storage.mountspec import Match as Match
from storage.mountspec import MountOptions as MountOptions
from storage.mountspec import MountRule as MountRule
from storage.mountspec import _device_path, _fstype, _mount_path
from storage.mountspec import glob_match as glob_match
from storage.mountspec import parse_device_ref as parse_device_ref
from storage.mountspec import parse_options as parse_options
from supervisor.config.check import (
    Keys,
    SchemaNode,
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

STATE_LABEL = "CORRAL_STATE"
RANCHER_STATE_LABEL = "RANCHER_STATE"
DEFAULT_STATE_DEV = f"LABEL={STATE_LABEL}"
DEFAULT_WAIT = 0
DEFAULT_WAIT_REQUIRED = 10
ON_REMOVE = ("stop", "ignore")


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

