"""Judging a whole merged config: the schema (cross-layer problems), the datasources it lists, and each
domain's own check; the keys corral knows but ignores are warnings, hidden from the domain checks.
The config store (supervisor/config/store.py) judges every config it puts in force, and every candidate
of ``set``/``merge`` and ``verdict``, here; ``salvage`` keeps what is valid of a config with errors
(supervisor/config/salvage.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor.config.errors import ConfigError
from supervisor.config.keypath import KeyPath, format_path, get_path, parse_path, without
from supervisor.config.layers import Layer
from supervisor.config.merge import merge_layers
from supervisor.config.salvage import Judged, Salvaged, domain_root, salvage
from supervisor.config.sources import LayerSources
from supervisor.config.validate import Validator
from supervisor.config.yamlload import Document

Source = Callable[[str], str]
"""Maps a key path to the file (or layer) that most likely gave it, for naming errors."""

@dataclass(frozen=True)
class Checked:
    """What a domain's check of a whole config found, and the domain's typed config it parsed (kept with
    the generation it was made for: the domain's reconciler reads it instead of parsing again)."""

    errors: Sequence[ConfigError] = ()
    warnings: Sequence[ConfigError] = ()
    parsed: object = None
    roots: tuple[str, ...] = ()
    """The domain roots an error costs when its key is not a key of the config (a unit file's own
    errors: the keys that bring the file in), for boot's salvage (supervisor/config/salvage.py)."""


DomainCheck = Callable[[Mapping[str, Any], Source], Checked]
"""A domain's own check of the whole merged config (units, network, storage). It runs only once the
schema is satisfied; an error rejects the config like any schema error."""

Ignored = Mapping[KeyPath, tuple[str, str]]
"""Keys corral knows but does not implement: key path (``("corral", "docker", "engine")``) -> (the key
as people write it, what corral does instead). The schema accepts them; each one present is a warning
on every load, and the domain checks do not see them."""


class Judge:
    """The checks of a whole config, with the domain checks and the ignored keys given to the store."""

    def __init__(self, validator: Validator, sources: LayerSources, checks: Mapping[str, DomainCheck],
                 ignored: Ignored) -> None:
        self._validator = validator
        self._sources = sources
        self._checks = checks
        self._ignored = dict(ignored)

    def whole(self, config: dict[str, Any], provenance: Mapping[str, str]) -> Judged:
        """The checks of a whole merged config: the schema (cross-layer problems), the datasources
        listed (also one a datasource lists: read, but not followed), then each domain check, which
        does not see the keys corral ignores (each one present is a warning instead)."""
        errors = [ConfigError(attribute(err.key, provenance), err.key, err.message)
                  for err in self._validator.validate(Document("merged", config))]
        if errors:
            return Judged(errors)
        listed = self._sources.datasources(config, provenance)
        errors = [e for e in listed if isinstance(e, ConfigError)]
        if errors:
            return Judged(errors)
        warnings = self.ignored_warnings(config, provenance)
        visible = self.visible(config)
        parsed: dict[str, object] = {}
        placed: dict[ConfigError, tuple[str, ...]] = {}
        file_roots: dict[str, tuple[str, ...]] = {}
        for domain, check in self._checks.items():
            checked = check(visible, lambda key: attribute(key, provenance))
            errors.extend(checked.errors)
            warnings.extend(checked.warnings)
            parsed[domain] = checked.parsed
            if checked.roots:
                file_roots[domain] = checked.roots
            for error in checked.errors if checked.roots else ():
                root = domain_root(error.key)
                if root is None or _value_at(config, parse_path(root)) is _ABSENT:
                    placed[error] = checked.roots
        return Judged(errors, warnings, parsed, placed, file_roots)

    def visible(self, config: Mapping[str, Any]) -> Mapping[str, Any]:
        """``config`` without the keys corral ignores (what the domain checks see)."""
        out: Mapping[str, Any] = config
        for path in self._ignored:
            if _value_at(out, path) is not _ABSENT:
                out = without(out, path)
        return out

    def ignored_warnings(self, config: Mapping[str, Any], provenance: Mapping[str, str]) -> list[ConfigError]:
        """A warning for each ignored key present; a key whose every sub-key has its own entry is
        named by those entries only."""
        warnings: list[ConfigError] = []
        for path, (shown, what) in sorted(self._ignored.items(), key=lambda item: item[1][0]):
            value = _value_at(config, path)
            if value is _ABSENT:
                continue
            own = {p[len(path)] for p in self._ignored if len(p) == len(path) + 1 and p[: len(path)] == path}
            if isinstance(value, Mapping) and value and set(value) <= own:
                continue
            warnings.append(ConfigError(attribute(format_path(path), provenance), shown,
                                        f"not implemented: {what}; the key is ignored"))
        return warnings

    def salvage(
        self, layers: Sequence[Layer], errors: Sequence[ConfigError], fallback: Mapping[str, Any],
        fallback_provenance: Mapping[str, str],
    ) -> Salvaged:
        def judge(config: dict[str, Any], provenance: dict[str, str]) -> Judged:
            return self.whole(config, provenance)

        return salvage([(lay.source, lay.data) for lay in layers], errors, fallback, fallback_provenance,
                       judge, merge_layers)


_ABSENT = object()


def _value_at(config: Mapping[str, Any], path: KeyPath) -> Any:
    try:
        return get_path(config, path)
    except KeyError:
        return _ABSENT


def attribute(key: str, provenance: Mapping[str, str]) -> str:
    """The source most likely responsible for a problem at ``key``."""
    if key in provenance:
        return provenance[key]
    for leaf, source in provenance.items():
        if leaf.startswith((key + ".", key + "[")):
            return source
    best = ""
    for leaf in provenance:
        if key.startswith((leaf + ".", leaf + "[")) and len(leaf) > len(best):
            best = leaf
    if best:
        return provenance[best]
    # a key nothing gave (a required key that is missing): the one source of its nearest map
    try:
        path = parse_path(key)
    except ValueError:
        return "merged"
    for end in range(len(path) - 1, 0, -1):
        outer = format_path(path[:end])
        sources = {src for leaf, src in provenance.items() if leaf.startswith((outer + ".", outer + "["))}
        if sources:
            return sources.pop() if len(sources) == 1 else "merged"
    return "merged"
