"""The domains' own checks of a whole config, run by the config store after the schema passes.

A bad unit or a bad address then rejects the config whole, like any schema error, and the last good
config stays in force: no handler ever sees a config it cannot apply. ``config_store`` builds the store
with them: the supervisor's, and the one `corral config validate` uses without a supervisor, are the
same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from netconf.parse import parse_config
from storage.rules import parse_storage
from supervisor.config.errors import ConfigError
from supervisor.config.store import ConfigStore, DomainCheck, Source
from supervisor.paths import Paths
from units.loader import load_units

Found = tuple[Sequence[ConfigError], Sequence[ConfigError]]
FROM_CONFIG = "<config>"  # the units loader's name for the config, replaced by the file that gave each key


def domain_checks(paths: Paths) -> list[DomainCheck]:
    def units(config: Mapping[str, Any], source: Source) -> Found:
        loaded = load_units(config, unit_dirs=[paths.units_dir], source=FROM_CONFIG)
        # each error on a key of the config names the file that gave that key (a unit file's own
        # errors name the unit file)
        return [replace(e, file=source(e.key)) if e.file == FROM_CONFIG else e for e in loaded.errors], ()

    def network(config: Mapping[str, Any], source: Source) -> Found:
        parsed = parse_config(config, source)
        return parsed.errors, parsed.warnings

    def storage(config: Mapping[str, Any], source: Source) -> Found:
        parsed = parse_storage(config, source)
        return parsed.errors, parsed.warnings

    return [units, network, storage]


def config_store(paths: Paths, cmdline_text: str | None = None) -> ConfigStore:
    """The config store with every domain check (``cmdline_text`` None: read ``paths.cmdline_file``)."""
    return ConfigStore(paths, cmdline_text=cmdline_text, checks=domain_checks(paths))
