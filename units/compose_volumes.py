"""What a unit's container mounts, checked: ``volumes`` (short and long syntax), ``volumes_from`` and
``tmpfs`` (pure). Problems go to the unit's ``Problems``, under its key paths (``("volumes", 0)``)."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from supervisor.config.check import as_absolute, as_bool, as_str, as_strings, check_keys, describe
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from units.model import UNIT_NAME, Volume, VolumesFrom
from units.rancheros import BUILTINS

VOLUME_OPTIONS = frozenset((
    "ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy",
    "consistent", "cached", "delegated",
))  # fmt: skip
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_volumes(p: Problems, value: Any) -> tuple[tuple[Volume, ...], tuple[tuple[str, str], ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, list):
        p.error(("volumes",), f"expected a list, got {describe(value)}")
        return (), ()
    out: list[Volume] = []
    tmpfs: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        path: KeyPath = ("volumes", i)
        if isinstance(item, dict):
            parsed = _long_volume(p, item, path)
            if isinstance(parsed, Volume):
                out.append(parsed)
            elif parsed is not None:
                tmpfs.append(parsed)
            continue
        text = as_str(item, path, p)
        if text is None:
            continue
        parts = text.split(":")
        if len(parts) == 1:
            source, target, mode = None, parts[0], ""
        elif len(parts) == 2 and parts[1].startswith("/"):
            source, target, mode = parts[0], parts[1], ""
        elif len(parts) == 3:
            source, target, mode = parts
        else:
            p.error(path, f"bad volume {text!r}: expected [SOURCE:]TARGET[:MODE]")
            continue
        vol = _volume(p, path, source, target, [m for m in mode.split(",") if m] if mode else [])
        if vol is not None:
            out.append(vol)
    return tuple(out), tuple(tmpfs)


def _volume(p: Problems, path: KeyPath, source: str | None, target: str, options: list[str]) -> Volume | None:
    ok = True
    if not target.startswith("/"):
        p.error(path, f"volume target {target!r} must be an absolute path")
        ok = False
    if source is not None and not source.startswith("/") and not _VOLUME_NAME.fullmatch(source):
        p.error(path, f"volume source {source!r} must be an absolute host path or a volume name")
        ok = False
    unknown = [o for o in options if o not in VOLUME_OPTIONS]
    if unknown:
        choices = ", ".join(sorted(VOLUME_OPTIONS))
        p.error(path, f"unknown volume option {unknown[0]!r}: expected some of {choices}")
        ok = False
    if "ro" in options and "rw" in options:
        p.error(path, "a volume is ro or rw, not both")
        ok = False
    if source is None and options:
        p.error(path, "an anonymous volume takes no options: give SOURCE:TARGET:MODE")
        ok = False
    return Volume(target, source, tuple(options)) if ok else None


def _long_volume(p: Problems, item: dict[Any, Any], path: KeyPath) -> Volume | tuple[str, str] | None:
    """Compose's long volume syntax: {type: bind|volume|tmpfs, source, target, read_only, bind:
    {propagation}, volume: {nocopy}, tmpfs: {size}}. A tmpfs entry becomes a (path, options) pair."""
    before = p.count()
    check_keys(item, path, p, ("type", "source", "target", "read_only", "bind", "volume", "tmpfs"))
    if p.count() > before:
        return None
    kind = item.get("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        p.error((*path, "type"), f"volume type must be bind, volume or tmpfs, got {kind!r}")
        return None
    target = as_absolute(item.get("target"), (*path, "target"), p)
    extra = {k: item[k] for k in ("bind", "volume", "tmpfs") if k in item}
    allowed = {"bind": ("propagation",), "volume": ("nocopy",), "tmpfs": ("size",)}
    for k, sub in extra.items():
        if k != kind:
            p.error((*path, k), f"{k} options do not apply to a {kind} volume")
            return None
        if not isinstance(sub, dict) or set(sub) - set(allowed[k]):
            p.error((*path, k), f"expected a map with {', '.join(allowed[k])}")
            return None
    if target is None:
        return None
    sub = extra.get(kind) or {}
    if kind == "tmpfs":
        size = sub.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int | str)):
            p.error((*path, "tmpfs", "size"), f"expected bytes or a size such as '64m', got {describe(size)}")
            return None
        return (target, f"size={size}" if size is not None else "")
    source = item.get("source")
    if source is not None:
        source = as_str(source, (*path, "source"), p)
        if source is None:
            return None
    if kind == "bind" and (source is None or not source.startswith("/")):
        p.error((*path, "source"), "a bind volume needs an absolute source path")
        return None
    options: list[str] = []
    if "read_only" in item and as_bool(item["read_only"], (*path, "read_only"), p):
        options.append("ro")
    propagation = sub.get("propagation") if kind == "bind" else None
    if propagation is not None:
        if propagation not in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            p.error((*path, "bind", "propagation"), f"bad propagation {propagation!r}")
            return None
        options.append(propagation)
    if kind == "volume" and "nocopy" in sub and as_bool(sub["nocopy"], (*path, "volume", "nocopy"), p):
        options.append("nocopy")
    return _volume(p, path, source, target, options)


def parse_volumes_from(
    p: Problems,
    name: str,
    value: Any,
    requires: set[str],
    known: Collection[str] | None = None,
    binds: list[Volume] | None = None,
) -> tuple[VolumesFrom, ...]:
    """``volumes_from`` entries. With ``known`` (the names of the units configured), an entry naming a
    RancherOS built-in unit that is not configured is resolved by ``units.rancheros``: a volume container
    adds its binds to ``binds``, anything else is ignored with a warning."""
    if value is None:
        return ()
    items = as_strings(value, ("volumes_from",), p)
    if items is None:
        return ()
    out: list[VolumesFrom] = []
    for i, text in enumerate(items):
        path: KeyPath = ("volumes_from", i)
        parts = text.split(":")
        is_container = parts[0] == "container"
        if is_container:
            parts = parts[1:]
        mode = parts[1] if len(parts) == 2 else None
        ref = parts[0] if parts else ""
        if len(parts) not in (1, 2) or mode not in (None, "ro", "rw") or not UNIT_NAME.fullmatch(ref):
            p.error(path, f"bad volumes_from {text!r}: expected UNIT[:ro|rw] or container:NAME[:ro|rw]")
            continue
        if ref == name:
            p.error(path, f"unit {name!r} cannot take volumes from itself")
            continue
        if not is_container and known is not None and ref not in known and ref in BUILTINS:
            _builtin_volumes(p, path, ref, mode, binds)
            continue
        if not is_container:
            requires.add(ref)
        out.append(VolumesFrom(ref, None if is_container else ref, mode))
    return tuple(out)


def _builtin_volumes(
    p: Problems, path: KeyPath, ref: str, mode: str | None, binds: list[Volume] | None
) -> None:
    """A RancherOS built-in named in volumes_from: its binds, or a warning that it is ignored."""
    builtin = BUILTINS[ref]
    if not builtin.binds and not builtin.skipped:
        p.warn(path, f"{ref!r} is RancherOS's built-in unit, not a volume container here "
                     f"({builtin.instead}): ignored")
        return
    if binds is not None:
        options = ("ro",) if mode == "ro" else ()
        binds.extend(Volume(v.target, v.source, options) for v in builtin.binds)
    if builtin.skipped or builtin.propagation:
        given = f"the {len(builtin.binds)} of its host paths that corral has" if builtin.binds else "nothing"
        skipped = f"; left out: {', '.join(builtin.skipped)}" if builtin.skipped else ""
        shared = "; /media and /mnt not shared (corral's mounts are private)" if builtin.propagation else ""
        p.warn(path, f"{ref!r} is RancherOS's volume container: corral binds {given} "
                     f"(docs/units.md){skipped}{shared}")


def parse_tmpfs(p: Problems, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    items = as_strings(value, ("tmpfs",), p, single=True)
    if items is None:
        return ()
    out: list[tuple[str, str]] = []
    for i, text in enumerate(items):
        target, _, options = text.partition(":")
        where: KeyPath = ("tmpfs",) if isinstance(value, str) else ("tmpfs", i)
        if not target.startswith("/"):
            p.error(where, f"tmpfs path {target!r} must be absolute")
        else:
            out.append((target, options))
    return tuple(out)
