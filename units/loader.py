"""Loading units: the set of units the config asks for, from the config and from unit files.

Where units come from, later wins:

1. unit files selected by ``corral.services_include`` (``NAME: true``): ``NAME.yml`` looked up in the
   directories given to the loader, then in the shipped ``units/defaults/`` (``units.unitfiles``); a
   URL (``https://.../x.yml: true``) from the copy boot fetched (``units.fetch``);
2. ``corral.services`` (``rancher.services`` is merged into it by the config loader). A unit named
   here replaces a unit of the same name from a file, whole.

Each service is checked key by key by ``units.compose``, then the set's ordering by ``units.graph``.
Every problem is a ``ConfigError`` naming the file, the key path of the unit's key (for example
``corral.services.ntp.restart`` or ``ntp.labels["io.corral.after"]``) and what is wrong. A set with any
problem is rejected whole: ``load_units`` then returns no units, and the caller keeps the last good set.
Warnings (a ``$VAR`` not set, a RancherOS built-in unit referred to, a ``services_include`` URL not
fetched yet) do not reject anything: they are in ``Loaded.warnings``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.config.errors import ConfigError
from supervisor.config.keypath import format_path, parse_path
from supervisor.config.proxy import proxy_environment
from units.compose import parse_service
from units.graph import UnitGraph
from units.interpolate import rancher_defaults
from units.model import UNIT_NAME, Unit
from units.unitfiles import SHIPPED_DIR, RawService, find_included, read_unit_file


@dataclass
class Loaded:
    """What ``load_units`` found. ``units`` is empty when there is any error (rejected whole)."""

    units: dict[str, Unit]
    errors: list[ConfigError]
    graph: UnitGraph | None = None
    files: list[Path] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def load_units(
    config: Mapping[str, Any],
    *,
    unit_dirs: Sequence[Path] = (),
    shipped_dir: Path = SHIPPED_DIR,
    source: str = "config",
    defaults: Mapping[str, str] | None = None,
    fetched_dir: Path | None = None,
) -> Loaded:
    """All units the (merged, validated) config asks for. ``config`` is the whole document; this reads
    ``corral.services``, ``corral.services_include`` and ``corral.environment``. ``unit_dirs`` are
    searched for included unit files before ``shipped_dir``; ``fetched_dir`` holds the copies of the
    ``services_include`` URLs boot fetched (units.fetch). Reads the selected files (small; call it
    from a thread if the loop must not block)."""
    corral = config.get("corral") or {}
    environment = corral.get("environment") or {}
    includes = corral.get("services_include") or {}
    services = corral.get("services") or {}
    errors: list[ConfigError] = []
    if not isinstance(includes, dict):
        errors.append(ConfigError(source, "corral.services_include", "expected a map of name to boolean"))
        includes = {}
    if not isinstance(services, dict):
        errors.append(ConfigError(source, "corral.services", "expected a map of unit name to service"))
        services = {}
    if not isinstance(environment, dict):
        errors.append(ConfigError(source, "corral.environment", "expected a map of NAME to string"))
        environment = {}
    # NAME: with no value is the empty string, as RancherOS read it (its own SUFFIX: on amd64)
    environment = {name: "" if value is None else value for name, value in environment.items()}
    environment = {**proxy_environment(config), **environment}  # corral.network's proxies, as RancherOS
    warnings: list[ConfigError] = []
    included, errs = find_included(includes, [*unit_dirs, shipped_dir], source, warnings, fetched_dir)
    errors += errs
    files = [i.path for i in included]
    from_files: list[RawService] = []
    for file in included:
        raws, errs = read_unit_file(file.path, file.name, file.rancheros)
        from_files += raws
        errors += errs
    from_config: list[RawService] = []
    for name, body in services.items():
        raw = RawService(str(name), body, source, ("corral", "services", str(name)))
        if not isinstance(name, str) or not UNIT_NAME.fullmatch(name):
            errors.append(raw.error((), f"bad unit name {name!r}: use letters, digits, '_', '.', '-'"))
        else:
            from_config.append(raw)
    units, graph, errs = build_units(
        [*from_files, *from_config], environment, overrides=len(from_files), defaults=defaults,
        warnings=warnings,
    )
    errors += errs
    if errors:
        return Loaded({}, errors, None, files, warnings)
    return Loaded(units, [], graph, files, warnings)


def build_units(
    raws: Sequence[RawService],
    environment: Mapping[str, str],
    overrides: int | None = None,
    *,
    defaults: Mapping[str, str] | None = None,
    warnings: list[ConfigError] | None = None,
) -> tuple[dict[str, Unit], UnitGraph | None, list[ConfigError]]:
    """Check services and their ordering (pure). ``raws[overrides:]`` may replace earlier units of the
    same name (the config over files); any other duplicate name is an error naming both places.
    ``defaults``: the variables a unit's ``$VAR`` falls back on (None: RancherOS's,
    ``units.interpolate.rancher_defaults``). The warnings (an unset variable, a RancherOS built-in unit
    referred to) are added to ``warnings``."""
    if defaults is None:
        defaults = rancher_defaults()
    split = len(raws) if overrides is None else overrides
    chosen: dict[str, tuple[int, RawService]] = {}
    errors: list[ConfigError] = []
    for i, raw in enumerate(raws):
        previous = chosen.get(raw.name)
        if previous is not None and not i >= split > previous[0]:
            errors.append(raw.error((), f"unit {raw.name!r} is also defined in {previous[1].file}"))
            continue
        chosen[raw.name] = (i, raw)
    units: dict[str, Unit] = {}
    known = frozenset(chosen)
    for name, (_, raw) in chosen.items():
        problems = raw.problems()
        key = format_path(raw.path)
        unit = parse_service(
            raw.name, raw.body, environment, problems, source=raw.file, key=key, known=known,
            defaults=defaults, rancheros=raw.rancheros,
        )
        errors += problems.errors
        if warnings is not None:
            warnings += problems.warnings
        if unit is not None:
            units[name] = unit
    if errors:
        return {}, None, errors
    graph, graph_errors = UnitGraph.build(units)
    if graph_errors:
        return {}, None, [_located(e, [raw for _, raw in chosen.values()]) for e in graph_errors]
    return units, graph, []


def _located(error: ConfigError, raws: Sequence[RawService]) -> ConfigError:
    """The error with the line of its key, when the unit came from a file."""
    try:
        path = parse_path(error.key)
    except ValueError:
        return error
    for raw in raws:
        if raw.file == error.file and path[: len(raw.path)] == raw.path:
            return raw.error(path[len(raw.path) :], error.message)
    return error
