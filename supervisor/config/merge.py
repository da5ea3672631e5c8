"""Merging config layers: later wins; maps merge recursively; lists and scalars replace whole.

Pure functions on plain data: ``merge``, ``merge_layers`` (with per-leaf provenance), ``diff`` (the
smallest overlay that turns one config into another) and ``changed_keys``."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from supervisor.config.keypath import KeyPath, format_path


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` on top of ``base``; neither is modified."""
    if isinstance(base, Mapping) and isinstance(overlay, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in overlay.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    return copy.deepcopy(overlay)


def merge_layers(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge ``(source, data)`` layers in order. Returns the config and, for each leaf (a scalar or a
    whole list), the source that gave it, keyed by formatted key path."""
    config: dict[str, Any] = {}
    origin: dict[str, Any] = {}
    for source, data in layers:
        config = merge(config, data)
        origin = merge(origin, _stamp(data, source))
    provenance: dict[str, str] = {}
    _flatten(origin, (), provenance)
    return config, provenance


def _stamp(data: Any, source: str) -> Any:
    """The same shape as ``data`` with every leaf replaced by ``source``."""
    if isinstance(data, Mapping):
        return {k: _stamp(v, source) for k, v in data.items()}
    return source


def _flatten(tree: Any, path: KeyPath, out: dict[str, str]) -> None:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            _flatten(value, (*path, key), out)
    else:
        out[format_path(path)] = tree


def same(a: Any, b: Any) -> bool:
    """Equality that tells ``True`` from ``1`` and ``1`` from ``1.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(new: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest overlay ``d`` with ``merge(base, d) == new`` (for ``new`` built by merging onto
    ``base``; merging cannot delete keys, so keys of ``base`` missing from ``new`` are ignored)."""
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in base:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(base[key], Mapping):
            sub = diff(value, base[key])
            if sub:
                out[key] = sub
        elif not same(value, base[key]):
            out[key] = copy.deepcopy(value)
    return out


def changed_keys(
    old: Mapping[str, Any], new: Mapping[str, Any], deep: frozenset[str] = frozenset({"corral"})
) -> list[str]:
    """Top-level key paths whose value differs; under the maps named in ``deep`` (``corral``), one
    level further down: ``["hostname", "corral.log"]``."""
    changed: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if same(a, b):
            continue
        if key in deep and isinstance(a, Mapping) and isinstance(b, Mapping):
            changed.extend(
                format_path((key, sub)) for sub in sorted(set(a) | set(b)) if not same(a.get(sub), b.get(sub))
            )
        else:
            changed.append(format_path((key,)))
    return changed
