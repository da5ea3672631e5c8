"""The domains' own checks of a whole config, run by the config store after the schema passes, and the
typed domain configs they parse, kept with each generation.

A bad unit, a bad address or a ``corral.modules`` entry that would pass modprobe an option is an error
like any schema error: at boot and reload it costs its domain root (``corral.services``,
``corral.network``...), which stays on the last good config (supervisor/config/salvage.py); an
interactive change with it is rejected whole. No handler ever sees a config it cannot apply.
``config_store`` builds the store with them: the supervisor's, and the one `corral config validate`
uses without a supervisor, are the same. A generation is parsed once, by these checks (in the store's
thread, off the loop); ``Domains`` gives the reconcilers what they parsed, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from handlers.cloudconfig.commands import BOOTCMD, RUNCMD, Command, parse_commands
from handlers.cloudconfig.sysctl import parse_sysctl
from handlers.cloudconfig.write_files import FileSpec, parse_write_files
from handlers.devices import check_modules
from netconf.model import NetworkConfig
from netconf.parse import parse_config
from storage.rules import StorageRules, parse_storage
from supervisor.compat import ignored
from supervisor.config.datasources import MediaReader
from supervisor.config.errors import ConfigError
from supervisor.config.judge import Checked, DomainCheck, Source
from supervisor.config.store import ConfigStore
from supervisor.paths import Paths
from swarm.config import SwarmConfig, parse_swarm_config
from units.loader import Loaded, load_units

FROM_CONFIG = "<config>"  # the units loader's name for the config, replaced by the file that gave each key
NETWORK, STORAGE, UNITS, MODULES = "network", "storage", "units", "modules"
WRITE_FILES, SYSCTL = "write_files", "sysctl"  # (BOOTCMD, RUNCMD: the cloud-config modules' own names)
SWARM = "swarm"
T = TypeVar("T")


def domain_checks(paths: Paths) -> dict[str, DomainCheck]:
    def units(config: Mapping[str, Any], source: Source) -> Checked:
        loaded = load_units(config, unit_dirs=[paths.units_dir], source=FROM_CONFIG,
                            fetched_dir=paths.fetched_units_dir)
        # each error on a key of the config names the file that gave that key (a unit file's own
        # errors name the unit file)
        errors = [replace(e, file=source(e.key)) if e.file == FROM_CONFIG else e for e in loaded.errors]
        warnings = [replace(e, file=source(e.key)) if e.file == FROM_CONFIG else e for e in loaded.warnings]
        # a unit file's own error costs, at boot, the keys that bring unit files in
        return Checked(errors, warnings, loaded, roots=("corral.services", "corral.services_include"))

    def network(config: Mapping[str, Any], source: Source) -> Checked:
        parsed = parse_config(config, source)
        return Checked(parsed.errors, parsed.warnings, parsed.config)

    def storage(config: Mapping[str, Any], source: Source) -> Checked:
        parsed = parse_storage(config, source)
        return Checked(parsed.errors, parsed.warnings, parsed.rules)

    def modules(config: Mapping[str, Any], source: Source) -> Checked:
        corral = config.get("corral")
        specs, problems = check_modules(corral.get("modules") if isinstance(corral, Mapping) else None)
        errors = [ConfigError(source("corral.modules"), key, reason) for key, reason in problems]
        return Checked(errors, (), specs)

    def write_files(config: Mapping[str, Any], source: Source) -> Checked:
        parsed = parse_write_files(config, source)
        return Checked(parsed.errors, parsed.warnings, parsed.files)

    def sysctl(config: Mapping[str, Any], source: Source) -> Checked:
        parsed = parse_sysctl(config, source)
        return Checked(parsed.errors, parsed.warnings, parsed.settings)

    def swarm(config: Mapping[str, Any], source: Source) -> Checked:
        parsed = parse_swarm_config(config, source)
        return Checked(parsed.errors, parsed.warnings, parsed.swarm)

    def commands(key: str) -> DomainCheck:
        def check(config: Mapping[str, Any], source: Source) -> Checked:
            parsed = parse_commands(config, key, source)
            return Checked(parsed.errors, parsed.warnings, parsed.commands)

        return check

    return {UNITS: units, NETWORK: network, STORAGE: storage, MODULES: modules, WRITE_FILES: write_files,
            SYSCTL: sysctl, BOOTCMD: commands(BOOTCMD), RUNCMD: commands(RUNCMD), SWARM: swarm}


def config_store(paths: Paths, cmdline_text: str | None = None, media: MediaReader | None = None,
                 *, check_schema: bool = True) -> ConfigStore:
    """The config store with every domain check and the keys corral knows but ignores, each a warning
    (supervisor/compat.py) (``cmdline_text`` None: read ``paths.cmdline_file``); ``media`` reads the disk
    datasources' block devices (PID 1 gives one: storage/media.py). ``check_schema=False``: the schema's
    own check is left to the caller (PID 1 runs it after the spawn: supervisor/boot/schema.py)."""
    return ConfigStore(paths, cmdline_text=cmdline_text, checks=domain_checks(paths), ignored=ignored(),
                       media=media, check_schema=check_schema)


@dataclass(frozen=True)
class Domains:
    """The typed domain configs of the config in force, as the store's checks parsed them (once per
    generation). A config in force passed its checks, so each is there."""

    store: ConfigStore

    def network(self) -> NetworkConfig:
        return _typed(self.store.parsed(NETWORK), NetworkConfig)

    def storage(self) -> StorageRules:
        return _typed(self.store.parsed(STORAGE), StorageRules)

    def units(self) -> Loaded:
        return _typed(self.store.parsed(UNITS), Loaded)

    def write_files(self) -> tuple[FileSpec, ...]:
        return _typed(self.store.parsed(WRITE_FILES), tuple)

    def sysctl(self) -> tuple[tuple[str, str], ...]:
        return _typed(self.store.parsed(SYSCTL), tuple)

    def swarm(self) -> SwarmConfig | None:
        """``corral.swarm`` (None: the key is not there)."""
        value = self.store.parsed(SWARM)
        return value if isinstance(value, SwarmConfig) else None

    def commands(self, key: str) -> tuple[Command, ...]:
        """``bootcmd`` or ``runcmd``."""
        return _typed(self.store.parsed(key), tuple)


def _typed(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise TypeError(f"the config in force has no {kind.__name__} (got {type(value).__name__})")
    return value
