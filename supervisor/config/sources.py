"""Where the config store's layers come from: the shipped and the image's defaults, the user's files
(cloud-config.d/*.yml, cloud-config.yml, private.yml), the kernel command line and the datasources it
and the files list. Each layer is checked on its own here (``check_text``/``check_document``); the
store judges the whole (supervisor/config/store.py)."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from supervisor.config.cmdline import parse_cmdline
from supervisor.config.datasources import (
    Datasource,
    DatasourceContext,
    DatasourceRegistry,
    Fetched,
    MediaReader,
)
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.generations import CLOUD_CONFIG, PRIVATE, Generations
from supervisor.config.keypath import KeyPath, format_path, get_path
from supervisor.config.layers import Layer, check_document, check_text
from supervisor.config.merge import merge_layers
from supervisor.config.schema import Schema
from supervisor.config.secrets import secret_paths
from supervisor.config.validate import Validator
from supervisor.config.yamlload import Document, read_config_file
from supervisor.paths import Paths

DROPIN_DIR = "cloud-config.d"
DATASOURCES_KEY: KeyPath = ("corral", "cloud_init", "datasources")


@dataclass
class Read:
    """Every layer read now, in merge order, with the problems of each and which are above the user's."""

    layers: list[Layer]
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    overriding: dict[str, str] = field(default_factory=dict)
    """The sources above the user's config (cmdline, datasource files) -> what that layer is."""
    notes: list[str] = field(default_factory=list)
    """One line per datasource fetched, saying what it found (for the journal)."""


class LayerSources:
    def __init__(self, paths: Paths, validator: Validator, schema: Schema, cmdline_text: str | None,
                 registry: DatasourceRegistry, media: MediaReader | None = None) -> None:
        self.paths = paths
        self.media = media
        self.network_ready = True  # boot sets it False until its network phase is done
        self.pending: list[str] = []  # the datasources that found nothing yet at the last read, to retry
        self._cache: dict[str, Fetched] = {}  # what the network datasources gave, kept for the boot
        self._validator = validator
        self._schema = schema
        self._cmdline_text = cmdline_text
        self._registry = registry
        self.generations = Generations(paths.config_dir)

    @property
    def cloud_config_path(self) -> Path:
        return self.paths.config_dir / CLOUD_CONFIG

    @property
    def private_path(self) -> Path:
        return self.paths.config_dir / PRIVATE

    @property
    def dropin_dir(self) -> Path:
        return self.paths.config_dir / DROPIN_DIR

    def read(self, defaults: list[Layer], overrides: Mapping[Path, str | None], *, partial: bool = False
             ) -> Read:
        """``defaults``, then the user's files (``overrides``: a file's text as it would be after an
        edit; None: the file gone), the kernel command line, then what the datasources listed so far
        give (fetched now). ``partial`` (boot, reload): a layer with errors that all sit under domain
        roots is kept without those roots (supervisor/config/salvage.py), its errors reported."""
        out = Read(list(defaults))
        for path, layer, errs in self.files(overrides, partial=partial):
            out.errors.extend(errs)
            if layer is not None:
                out.layers.append(layer)
                out.warnings.extend(self._file_warnings(path, layer, overrides))
        cmdline_text = self.cmdline()
        cmd_doc, errs = parse_cmdline(cmdline_text, self._schema)
        out.errors.extend(errs)
        cmd_layer, errs = check_document(cmd_doc, self._validator, partial=partial)
        out.errors.extend(errs)
        if cmd_layer is not None:
            out.layers.append(cmd_layer)
            out.overriding[cmd_layer.source] = "the kernel command line"
        so_far, provenance = merge_layers((lay.source, lay.data) for lay in out.layers)
        ds_layers, errs, warns = self._datasource_layers(so_far, provenance, cmdline_text, out.notes, partial)
        out.errors.extend(errs)
        out.warnings.extend(warns)
        for spec, layer in ds_layers:
            out.layers.append(layer)
            out.overriding[layer.source] = f"datasource {spec}"
        return out

    def files(self, overrides: Mapping[Path, str | None] | None = None, *, partial: bool = False
              ) -> list[tuple[Path, Layer | None, list[ConfigError]]]:
        """The user's files in merge order (cloud-config.d/*.yml, cloud-config.yml, private.yml), each
        read and checked on its own: (path, layer or None, errors)."""
        return [(path, *self._file_layer(path, where, overrides or {}, partial))
                for path, where in self._file_paths()]

    def cmdline(self) -> str:
        """The kernel command line's text (given, or read from ``paths.cmdline_file``)."""
        if self._cmdline_text is not None:
            return self._cmdline_text
        try:
            return self.paths.cmdline_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def defaults(self) -> list[Layer]:
        layers: list[Layer] = []
        directory = resources.files("supervisor.config").joinpath("defaults")
        for entry in sorted(directory.iterdir(), key=lambda e: e.name):
            if not entry.name.endswith(".yml"):
                continue
            layer, errors = check_text(entry.read_text(encoding="utf-8"), str(entry), self._validator)
            if layer is None:
                raise ValueError("shipped config defaults are invalid: " + "; ".join(map(str, errors)))
            layers.append(layer)
        image_dir = self.paths.image_config_dir
        for path in sorted(image_dir.glob("*.yml")) if image_dir.is_dir() else ():
            layer, errors = check_text(path.read_text(encoding="utf-8"), str(path), self._validator)
            if layer is None:
                raise ValueError("the image's config defaults are invalid: " + "; ".join(map(str, errors)))
            layers.append(layer)
        return layers

    def datasources(
        self, so_far: Mapping[str, Any], provenance: Mapping[str, str]
    ) -> list[Datasource | ConfigError]:
        """The datasources ``so_far`` lists, or for a spec that no datasource kind takes, an error."""
        try:
            specs = get_path(so_far, DATASOURCES_KEY)
        except KeyError:
            return []
        found: list[Datasource | ConfigError] = []
        for i, spec in enumerate(specs):
            try:
                found.append(self._registry.create(spec))
            except ValueError as exc:
                source = provenance.get(format_path(DATASOURCES_KEY), "config")
                found.append(ConfigError(source, format_path((*DATASOURCES_KEY, i)), str(exc)))
        return found

    def _file_paths(self) -> list[tuple[Path, Path]]:
        """``(name, where to read it)`` of each user file: the user's config is read from the generation
        in force (resolved once, so both files are of one generation) but named by its stable path."""
        dropins = sorted(self.dropin_dir.glob("*.yml")) if self.dropin_dir.is_dir() else []
        generation = self.generations.read_dir()
        return [*((d, d) for d in dropins), (self.cloud_config_path, generation / CLOUD_CONFIG),
                (self.private_path, generation / PRIVATE)]

    def _file_layer(
        self, path: Path, where: Path, overrides: Mapping[Path, str | None], partial: bool
    ) -> tuple[Layer | None, list[ConfigError]]:
        if path in overrides:
            text = overrides[path]
        else:
            try:
                text, errors = read_config_file(where, str(path))
            except FileNotFoundError:
                return None, []
            if text is None:
                return None, errors
        if text is None:
            return None, []
        return check_text(text, str(path), self._validator, partial=partial)

    def _file_warnings(
        self, path: Path, layer: Layer, overrides: Mapping[Path, str | None]
    ) -> list[ConfigError]:
        if path in (self.private_path, self.cloud_config_path):  # the user's config: 0600 as a whole
            if path in overrides:
                return []
            mode = stat.S_IMODE((self.generations.read_dir() / path.name).stat().st_mode)
            if mode & 0o077 and (path == self.private_path or secret_paths(layer.data)):
                return [
                    ConfigError(str(path), DOCUMENT, f"holds secrets but has mode {mode:04o}: chmod 0600 it")
                ]
            return []
        return [
            ConfigError(
                str(path),
                format_path(p),
                "a secret in a readable file: `corral config set` keeps secrets in private.yml (mode 0600)",
            )
            for p in secret_paths(layer.data)
        ]

    def _datasource_layers(
        self, so_far: dict[str, Any], provenance: dict[str, str], cmdline_text: str, notes: list[str],
        partial: bool,
    ) -> tuple[list[tuple[str, Layer]], list[ConfigError], list[ConfigError]]:
        """``([(spec, layer)], errors, warnings)``: what the listed datasources give, fetched now (what
        each found goes to ``notes``)."""
        layers: list[tuple[str, Layer]] = []
        errors: list[ConfigError] = []
        warnings: list[ConfigError] = []
        ctx = DatasourceContext(self.paths, cmdline_text, self.media, self.network_ready, self._cache)
        pending: list[str] = []
        for source in self.datasources(so_far, provenance):
            if isinstance(source, ConfigError):
                continue  # _judge reports it, once the layers are all read
            fetched = source.fetch(ctx)
            errors.extend(fetched.errors)
            warnings.extend(fetched.warnings)
            notes.extend(fetched.notes)
            if fetched.pending:
                pending.append(source.spec)
            for name, text in fetched.user_data:
                layer, errs = check_text(text, name, self._validator, partial=partial)
                errors.extend(errs)
                if layer is not None:
                    layers.append((source.spec, layer))
            for name, data in fetched.metadata:
                data = _with_keys_below(data, so_far, [lay for _, lay in layers])
                layer, errs = check_document(Document(name, data), self._validator, partial=partial)
                errors.extend(errs)
                if layer is not None:
                    layers.append((source.spec, layer))
        self.pending = pending
        return layers, errors, warnings


KEYS = "ssh_authorized_keys"


def _with_keys_below(data: dict[str, Any], so_far: Mapping[str, Any], layers: list[Layer]) -> dict[str, Any]:
    """Metadata's SSH keys are added to those the layers under it give (as cloud-init authorizes both the
    user-data's and the metadata's keys), not put in their place as a list in a later layer would be."""
    if not isinstance(data.get(KEYS), list):
        return data
    below: list[Any] = list(so_far.get(KEYS) or [])
    for layer in layers:
        if isinstance(layer.data.get(KEYS), list):
            below = list(layer.data[KEYS])
    keys = [*below, *(k for k in data[KEYS] if k not in below)]
    return {**data, KEYS: keys}

