"""Datasources: where a host finds config it was not shipped with.

A datasource is named in ``corral.cloud_init.datasources`` as ``kind`` or ``kind:argument``; kinds are
looked up in a ``DatasourceRegistry`` (``default_registry()`` knows ``file`` and ``cmdline``; network
kinds register later). Fetching returns raw user-data texts (cloud-config, validated by the loader like
any file) and metadata already shaped as config, later datasources winning.

- ``file:/dir`` -- a NoCloud-style directory: ``user-data`` (cloud-config) and ``meta-data`` (YAML:
  ``local-hostname`` -> ``hostname``, ``public-keys`` -> ``ssh_authorized_keys``).
- ``cmdline`` -- the kernel command line's ``cloud-config-url=`` (RancherOS): ``file:///path`` or
  ``/path``; network URLs are reported as not supported yet.

Absolute paths are taken inside ``Paths.prefix`` (``Paths.under``), so sandboxes work unchanged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from supervisor.config.cmdline import param_value
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.yamlload import load_document, read_config_file
from supervisor.paths import Paths


@dataclass(frozen=True)
class DatasourceContext:
    paths: Paths
    cmdline_text: str


@dataclass
class Fetched:
    """What one datasource gave: cloud-config texts and config-shaped metadata, each with its source."""

    user_data: list[tuple[str, str]] = field(default_factory=list)
    metadata: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)


class Datasource(Protocol):
    spec: str

    def fetch(self, ctx: DatasourceContext) -> Fetched: ...


DatasourceFactory = Callable[[str], Datasource]
"""Builds a datasource from the text after ``kind:`` ("" when absent); ValueError when it is bad."""


class DatasourceRegistry:
    """Datasource kinds by name."""

    def __init__(self) -> None:
        self._kinds: dict[str, DatasourceFactory] = {}

    def register(self, kind: str, factory: DatasourceFactory) -> None:
        self._kinds[kind] = factory

    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    def create(self, spec: str) -> Datasource:
        kind, _, arg = spec.partition(":")
        factory = self._kinds.get(kind)
        if factory is None:
            raise ValueError(f"unknown datasource kind {kind!r} (known: {', '.join(self.kinds())})")
        return factory(arg)


def default_registry() -> DatasourceRegistry:
    registry = DatasourceRegistry()
    registry.register("file", FileDatasource)
    registry.register("cmdline", CmdlineDatasource)
    return registry


# -- file: a NoCloud-style directory ------------------------------------------------------------------


class FileDatasource:
    def __init__(self, arg: str) -> None:
        if not arg.startswith("/"):
            raise ValueError(f"file datasource needs an absolute directory, as in file:/path (got {arg!r})")
        self.spec = f"file:{arg}"
        self.directory = arg

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        out = Fetched()
        root = ctx.paths.under(self.directory)
        if not root.is_dir():
            out.warnings.append(ConfigError(self.spec, DOCUMENT, f"directory {root} not found: skipped"))
            return out
        user = _read(root / "user-data", out)
        if user is not None:
            _add_user_data(str(root / "user-data"), user, out)
        meta = _read(root / "meta-data", out)
        if meta is not None:
            source = str(root / "meta-data")
            data, errors = metadata_to_config(meta, source)
            out.errors.extend(errors)
            if data:
                out.metadata.append((source, data))
        return out


def _read(path: Path, out: Fetched) -> str | None:
    try:
        text, errors = read_config_file(path)
    except FileNotFoundError:
        return None
    out.errors.extend(errors)
    return text


def _add_user_data(source: str, text: str, out: Fetched) -> None:
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith("#!"):
        out.warnings.append(
            ConfigError(source, DOCUMENT, "user-data is a script: not supported yet, ignored")
        )
    elif first.startswith("#include") or first.lower().startswith("content-type:"):
        out.warnings.append(
            ConfigError(source, DOCUMENT, f"user-data format {first!r} is not supported, ignored")
        )
    else:
        out.user_data.append((source, text))


def metadata_to_config(text: str, source: str) -> tuple[dict[str, Any], list[ConfigError]]:
    """NoCloud/EC2-style meta-data -> config: ``local-hostname`` -> ``hostname``, ``public-keys``
    (a string, a list, or a map of name -> key or -> {openssh-key: key}) -> ``ssh_authorized_keys``."""
    doc, errors = load_document(text, source)
    if doc is None:
        return {}, errors
    config: dict[str, Any] = {}
    hostname = doc.data.get("local-hostname")
    if hostname is not None:
        if isinstance(hostname, str | int) and not isinstance(hostname, bool):
            config["hostname"] = str(hostname)
        else:
            errors.append(
                ConfigError(source, "local-hostname", "expected a string", doc.line(("local-hostname",)))
            )
    keys = doc.data.get("public-keys")
    if keys is not None:
        found = _public_keys(keys)
        if found is None:
            errors.append(
                ConfigError(
                    source,
                    "public-keys",
                    "expected a key, a list of keys or a map of keys",
                    doc.line(("public-keys",)),
                )
            )
        else:
            config["ssh_authorized_keys"] = found
    return config, errors


def _public_keys(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    if isinstance(value, dict):
        found: list[str] = []
        for item in value.values():
            if isinstance(item, dict):
                item = item.get("openssh-key")
            sub = _public_keys(item)
            if sub is None:
                return None
            found.extend(sub)
        return found
    return None


# -- cmdline: cloud-config-url= on the kernel command line ---------------------------------------------


class CmdlineDatasource:
    PARAM = "cloud-config-url"

    def __init__(self, arg: str) -> None:
        if arg:
            raise ValueError(f"the cmdline datasource takes no argument (got {arg!r})")
        self.spec = "cmdline"

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        out = Fetched()
        url = param_value(ctx.cmdline_text, self.PARAM)
        if not url:
            return out
        path = url.removeprefix("file://") if url.startswith("file://") else url
        if not path.startswith("/"):
            out.warnings.append(
                ConfigError(self.spec, self.PARAM, f"{url}: only file:// URLs are supported yet, skipped")
            )
            return out
        real = ctx.paths.under(path)
        text = _read(real, out)
        if text is None:
            if not out.errors:
                out.warnings.append(ConfigError(self.spec, self.PARAM, f"{real} not found: skipped"))
            return out
        _add_user_data(str(real), text, out)
        return out
