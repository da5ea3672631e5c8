"""Salvage: a config with errors keeps what is valid. Boot and reload only (``ConfigStore.load``); an
interactive change (``set``, ``unset``, ``merge``) is still rejected whole.

Every error's key path is placed under its *domain root*, the one part of the config it costs. The
roots, the only table of them:

=====================================  =====================================================
an error at                            costs the root
=====================================  =====================================================
``corral.X...`` (``rancher.X...``)     ``corral.X``: ``corral.network``, ``corral.services``,
                                       ``corral.state``, ``corral.modules``, ``corral.log`` ...
``corral`` itself (not a map)          ``corral``
any other top-level key ``K...``       ``K``: ``hostname``, ``ssh_authorized_keys``,
                                       ``write_files``, ``mounts``, ``runcmd``, and ``network``
                                       (the netplan document as a whole)
a key that is not the config's (a      the roots its domain check names (supervisor/
unit file's own error)                 domain_checks.py: a unit file's, ``corral.services``
                                       and ``corral.services_include``, which bring it in)
``(document)`` (a YAML syntax error,   no root: the one file (layer) it is in is not read,
a top level that is not a map ...)     the other layers are; the roots that file gave to
                                       the config in force stay on it
=====================================  =====================================================

A failing root is replaced by its value in the config in force (the last good config) or, when that
root was itself on the defaults there (or nothing was put in force yet), by the defaults' value (or
left out, when the defaults have none). The result is judged again (schema, datasources, every domain
check): an error found then costs its root too, for at most ``MAX_ROUNDS`` rounds; a config that still
fails after that is not put in force at all (the config in force stays, whole). So a domain's typed
config only ever comes from a config that passed every check."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.keypath import KeyPath, format_path, parse_path

CORRAL, ALIAS = "corral", "rancher"
MAX_ROUNDS = 8
"""Rounds of judge-and-replace before giving up (each round adds at least one root; few exist)."""

ON_LAST_GOOD = "the last good config"
ON_DEFAULTS = "defaults"
WHOLE = "(whole config)"
"""The root named when nothing could be salvaged: the whole config stays as it was."""


def domain_root(key: str) -> str | None:
    """The domain root (a formatted key path) an error at ``key`` costs, or None when it cannot be
    placed under one (``(document)``: the error costs its whole file)."""
    if key == DOCUMENT:
        return None
    try:
        path = parse_path(key)
    except ValueError:
        return None
    if not path or not isinstance(path[0], str):
        return None
    head = CORRAL if path[0] == ALIAS else path[0]
    if head == CORRAL and len(path) >= 2 and isinstance(path[1], str):
        return format_path((CORRAL, path[1]))
    return format_path((head,))


def roots_of(errors: Iterable[ConfigError]) -> tuple[set[str], list[ConfigError]]:
    """``(roots, unplaced)``: the roots the errors cost, and the errors that cannot be placed."""
    roots: set[str] = set()
    unplaced: list[ConfigError] = []
    for error in errors:
        root = domain_root(error.key)
        if root is None:
            unplaced.append(error)
        else:
            roots.add(root)
    return roots, unplaced


def without_roots(data: Mapping[str, Any], roots: Iterable[str]) -> dict[str, Any]:
    """A copy of one layer's ``data`` with the given roots removed (what is left of a file whose errors
    all sit under those roots)."""
    out = copy.deepcopy(dict(data))
    for root in roots:
        path = parse_path(root)
        holder: Any = out
        for seg in path[:-1]:
            holder = holder.get(seg) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(path[-1], None)
    if isinstance(out.get(CORRAL), dict) and not out[CORRAL] and CORRAL not in data:
        del out[CORRAL]
    return out


_ABSENT = object()


def _value(config: Mapping[str, Any], path: KeyPath) -> Any:
    node: Any = config
    for seg in path:
        if not isinstance(node, Mapping) or seg not in node:
            return _ABSENT
        node = node[seg]
    return node


def replace_roots(
    config: Mapping[str, Any], roots: Iterable[str], fallback: Mapping[str, Any]
) -> dict[str, Any]:
    """``config`` with each root's value replaced by ``fallback``'s at that root (removed when
    ``fallback`` has none there)."""
    out = copy.deepcopy(dict(config))
    for root in sorted(roots, key=lambda r: len(parse_path(r))):
        path = parse_path(root)
        value = _value(fallback, path)
        holder: Any = out
        for seg in path[:-1]:
            if not isinstance(holder.get(seg), dict):
                if value is _ABSENT:
                    holder = None
                    break
                holder[seg] = {}
            holder = holder[seg]
        if holder is None:
            continue
        if value is _ABSENT:
            holder.pop(path[-1], None)
        else:
            holder[path[-1]] = copy.deepcopy(value)
    return out


def replace_provenance(
    provenance: Mapping[str, str], roots: Iterable[str], fallback: Mapping[str, str]
) -> dict[str, str]:
    """The provenance of a salvaged config: under each replaced root, the fallback's."""
    roots = list(roots)

    def under(leaf: str) -> bool:
        return any(leaf == r or leaf.startswith((r + ".", r + "[")) for r in roots)

    out = {leaf: src for leaf, src in provenance.items() if not under(leaf)}
    out.update({leaf: src for leaf, src in fallback.items() if under(leaf)})
    return out


@dataclass(frozen=True)
class Judged:
    """What judging one whole config found (the store's schema, datasource and domain checks)."""

    errors: Sequence[ConfigError] = ()
    warnings: Sequence[ConfigError] = ()
    parsed: Mapping[str, object] = field(default_factory=dict)
    placed: Mapping[ConfigError, tuple[str, ...]] = field(default_factory=dict)
    """Errors whose key is not a key of the config (a unit file's own), placed by the judge under the
    roots that bring them in (``corral.services``, ``corral.services_include``)."""
    file_roots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The domains whose check reads files besides the config (the units': unit files, the fetched
    copies of ``services_include`` URLs) -> the roots that bring those files in."""

    def files_changed(self, before: Mapping[str, object]) -> list[str]:
        """The roots of the domains whose files gave another result than ``before`` (the parsed configs
        in force) under the same config: a reload then takes them (a unit file edited, a URL fetched)."""
        return sorted({root for domain, roots in self.file_roots.items()
                       if self.parsed.get(domain) != before.get(domain) for root in roots})

    def roots(self, error: ConfigError) -> tuple[str, ...]:
        """The roots ``error`` costs; () when it cannot be placed."""
        if error in self.placed:
            return self.placed[error]
        root = domain_root(error.key)
        return () if root is None else (root,)


@dataclass(frozen=True)
class Salvaged:
    """A salvaged config and what it cost. ``config`` is None when no config could be salvaged (still
    failing after ``MAX_ROUNDS``): the config in force stays whole. ``roots``: each failing root ->
    the errors it had; ``dropped``: each file that was not read at all -> its errors."""

    config: dict[str, Any] | None
    provenance: dict[str, str]
    errors: list[ConfigError]
    judged: Judged
    roots: dict[str, list[ConfigError]] = field(default_factory=dict)
    dropped: dict[str, list[ConfigError]] = field(default_factory=dict)

    def kept_dropped(self) -> dict[str, Any]:
        """What a boot keeps and drops, as data (``config validate``'s JSON)."""
        return {
            "salvaged": self.config is not None,
            "dropped_roots": sorted(self.roots),
            "dropped_files": sorted(self.dropped),
        }


def salvage(
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    errors: Sequence[ConfigError],
    fallback: Mapping[str, Any],
    fallback_provenance: Mapping[str, str],
    judge: Callable[[dict[str, Any], dict[str, str]], Judged],
    merge_layers: Callable[[Iterable[tuple[str, Mapping[str, Any]]]], tuple[dict[str, Any], dict[str, str]]],
) -> Salvaged:
    """Merge ``layers`` (what is left of each file read: see ``without_roots``; ``errors`` are every
    file's own errors), replace the roots those errors cost by ``fallback``'s, judge, and repeat with
    the roots the judge's errors cost, until the judge is satisfied or ``MAX_ROUNDS`` have passed.
    Pure: the judge and the merge are given."""
    roots, _ = roots_of(errors)
    by_root: dict[str, list[ConfigError]] = {}
    dropped: dict[str, list[ConfigError]] = {}
    all_errors = list(errors)
    for error in errors:
        root = domain_root(error.key)
        if root is None:
            dropped.setdefault(error.file, []).append(error)
        else:
            by_root.setdefault(root, []).append(error)
    for file, errs in dropped.items():  # what a file not read gave to the config in force stays
        for root in {r for leaf, source in fallback_provenance.items()
                     if source == file and (r := domain_root(leaf)) is not None}:
            roots.add(root)
            by_root.setdefault(root, []).extend(errs)
    merged, provenance = merge_layers(layers)
    for _ in range(MAX_ROUNDS):
        config = replace_roots(merged, roots, fallback)
        prov = replace_provenance(provenance, roots, fallback_provenance)
        judged = judge(config, prov)
        if not judged.errors:
            return Salvaged(config, prov, all_errors, judged, by_root, dropped)
        all_errors.extend(judged.errors)
        new: set[str] = set()
        unplaced = False
        for error in judged.errors:
            placed = judged.roots(error)
            new.update(placed)
            unplaced = unplaced or not placed
            for root in placed or (DOCUMENT,):
                by_root.setdefault(root, []).append(error)
        if unplaced or new <= roots:  # nothing more to give up: the config in force stays whole
            break
        roots |= new
    return Salvaged(None, dict(provenance), all_errors, Judged(), by_root, dropped)


def on_now(root: str, generation: int, before: Mapping[str, str]) -> str:
    """What a failing root is on now: the defaults while nothing but them was ever in force
    (``generation`` 0), or when the root was on them already (``before``: the last load's); else the
    last good config."""
    if generation == 0 or ON_DEFAULTS in (before.get(root), before.get(WHOLE)):
        return ON_DEFAULTS
    return ON_LAST_GOOD


def summary(counts: Mapping[str, int], on: Mapping[str, str]) -> list[str]:
    """One line per failing root (root -> how many errors): ``corral.network: 2 error(s); on the last
    good config``."""
    return [f"{root}: {n} error(s); on {on.get(root, ON_DEFAULTS)}" for root, n in sorted(counts.items())]


def describe_verdict(salvaged: Salvaged) -> str:
    """What a boot would keep and drop, in one line (``config validate``)."""
    if salvaged.config is None:
        return "a boot would apply none of it: the config in force (or the defaults) would stay whole"
    parts = []
    if salvaged.roots:
        parts.append(", ".join(sorted(salvaged.roots)) + " would stay on the defaults (on a running host: "
                     "on the last good config)")
    if salvaged.dropped:
        parts.append("not read: " + ", ".join(sorted(salvaged.dropped)))
    if not parts:
        return "a boot would apply all of it"
    return "a boot would apply the rest; " + "; ".join(parts)
