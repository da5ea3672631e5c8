"""Datasources: where a host finds config it was not shipped with.

A datasource is named in ``corral.cloud_init.datasources`` as ``kind`` or ``kind:argument``; kinds are
looked up in a ``DatasourceRegistry`` (``default_registry()`` knows ``file``, ``cmdline``, ``nocloud``
and ``configdrive``; network kinds register later). Fetching returns raw user-data texts (cloud-config,
validated by the loader like any file) and metadata already shaped as config, later datasources
winning, with one journal line each (``Fetched.notes``) saying what was found.

- ``file:/path`` -- a cloud-config file (RancherOS's ``file:``), or a NoCloud-style directory:
  ``user-data``, ``meta-data`` and ``network-config`` (supervisor/config/cloudmeta.py).
- ``cmdline`` -- the kernel command line's ``cloud-config-url=`` (RancherOS): ``file:///path`` or
  ``/path``; network URLs are reported as not supported yet.
- ``nocloud`` -- a block device labelled ``cidata``/``CIDATA`` with the NoCloud files.
- ``configdrive`` (RancherOS also wrote ``configdrive:/media/config-2``) -- a block device labelled
  ``config-2``: ``openstack/latest/{user_data,meta_data.json,network_data.json}``;
  ``configdrive:/dir`` reads those from a directory.

Block devices are found, mounted and read by a ``MediaReader`` the supervisor gives (storage/media.py:
core code cannot probe disks); without one (``corral config validate``) they are skipped with a warning.
A medium that is missing, unreadable or holds broken metadata is a warning, never a lost boot.

Absolute paths are taken inside ``Paths.prefix`` (``Paths.under``), so sandboxes work unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from supervisor.config import cloudmeta
from supervisor.config.cloudmeta import metadata_to_config
from supervisor.config.cmdline import param_value
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.fetched import (
    Datasource,
    DatasourceContext,
    Fetched,
    MediaReader,
    MediumRead,
    add_user_data,
)
from supervisor.config.netsources import Ec2Datasource, UrlDatasource
from supervisor.config.yamlload import read_config_file

__all__ = [  # the shared types are re-exported: their home is fetched.py (metadata_to_config: cloudmeta)
    "Datasource", "DatasourceContext", "Fetched", "MediaReader", "MediumRead", "metadata_to_config",
]

NOCLOUD_LABELS = ("cidata", "CIDATA")
NOCLOUD_FILES = ("user-data", "meta-data", "network-config")
CONFIGDRIVE_LABELS = ("config-2", "CONFIG-2")
OPENSTACK = "openstack/latest/"
CONFIGDRIVE_FILES = (f"{OPENSTACK}user_data", f"{OPENSTACK}meta_data.json", f"{OPENSTACK}network_data.json")
RANCHER_CONFIGDRIVE_MOUNT = "/media/config-2"
"""RancherOS mounted the config-2 device here itself: ``configdrive:/media/config-2`` means the device."""


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
    registry.register("nocloud", NoCloudDatasource)
    registry.register("configdrive", ConfigDriveDatasource)
    registry.register("ec2", Ec2Datasource)
    registry.register("url", UrlDatasource)
    return registry


# -- file: a cloud-config file, or a NoCloud-style directory -------------------------------------------


class FileDatasource:
    def __init__(self, arg: str) -> None:
        if not arg.startswith("/"):
            raise ValueError(f"file datasource needs an absolute path, as in file:/path (got {arg!r})")
        self.spec = f"file:{arg}"
        self.path = arg

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        out = Fetched()
        root = ctx.paths.under(self.path)
        if root.is_dir():
            files: dict[str, str] = {}
            for name in NOCLOUD_FILES:
                text = _read(root / name, out)
                if text is not None:
                    files[name] = text
            nocloud_files(str(root) + "/", files, out)
            out.notes.append(f"{self.spec}: " + (", ".join(files) or "nothing (no user-data, meta-data "
                                                 "or network-config)"))
            return out
        text = _read(root, out)
        if text is None:
            if not out.errors:
                out.warnings.append(ConfigError(self.spec, DOCUMENT, f"{root} not found: skipped"))
            out.notes.append(f"{self.spec}: nothing ({root} not found)")
            return out
        add_user_data(str(root), text, out)
        out.notes.append(f"{self.spec}: a cloud-config file")
        return out


def _read(path: Path, out: Fetched) -> str | None:
    try:
        text, errors = read_config_file(path)
    except FileNotFoundError:
        return None
    out.errors.extend(errors)
    return text


def nocloud_files(prefix: str, files: Mapping[str, str], out: Fetched) -> None:
    """NoCloud's files (name -> text; each named ``prefix + name``) into ``out``: user-data as a layer,
    meta-data and network-config as config-shaped metadata (their problems are warnings)."""
    if "user-data" in files:
        add_user_data(prefix + "user-data", files["user-data"], out)
    for name, translate in (("meta-data", metadata_to_config),
                            ("network-config", cloudmeta.network_config_to_config)):
        if name in files:
            data, problems = translate(files[name], prefix + name)
            out.warnings.extend(problems)
            if data:
                out.metadata.append((prefix + name, data))


# -- nocloud and configdrive: labelled block devices ---------------------------------------------------


class _MediumDatasource:
    labels: tuple[str, ...]
    names: tuple[str, ...]
    spec: str

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        out = Fetched()
        labels = " or ".join(self.labels)
        if ctx.media is None:
            why = "block devices cannot be read here: skipped"
            out.warnings.append(ConfigError(self.spec, DOCUMENT, why))
            return out
        found = ctx.media.read(self.labels, self.names)
        out.warnings.extend(found.errors)  # a broken medium is a warning: the boot goes on without it
        if found.device is None:
            if found.pending:
                out.pending = True
                out.notes.append(f"{self.spec}: no device labelled {labels} yet; looking again once devices "
                                 "are probed")
            else:
                why = found.problem or f"no device labelled {labels}"
                out.warnings.append(ConfigError(self.spec, DOCUMENT, f"{why}: skipped"))
                out.notes.append(f"{self.spec}: nothing found ({why})")
            return out
        where = f"{found.device} (label {found.label})"
        if found.problem is not None:
            out.warnings.append(ConfigError(self.spec, DOCUMENT, f"{where}: {found.problem}: skipped"))
            out.notes.append(f"{self.spec}: {where}: unreadable ({found.problem})")
            return out
        detail = self.add(found, out)
        names = ", ".join(n.removeprefix(OPENSTACK) for n in found.files) or "no files it should hold"
        out.notes.append(f"{self.spec}: {where}: {names}{detail}")
        return out

    def add(self, found: MediumRead, out: Fetched) -> str:
        """Put what ``found`` holds into ``out``; returns more for the journal line ("" or ", ...")."""
        raise NotImplementedError


class NoCloudDatasource(_MediumDatasource):
    labels = NOCLOUD_LABELS
    names = NOCLOUD_FILES

    def __init__(self, arg: str) -> None:
        if arg:
            raise ValueError(f"the nocloud datasource takes no argument (got {arg!r}); a NoCloud "
                             "directory is file:/path")
        self.spec = "nocloud"

    def add(self, found: MediumRead, out: Fetched) -> str:
        nocloud_files(f"{found.device}:", found.files, out)
        iid = cloudmeta.instance_id(found.files.get("meta-data", ""))
        return f" (instance-id {iid})" if iid else ""


class ConfigDriveDatasource(_MediumDatasource):
    labels = CONFIGDRIVE_LABELS
    names = CONFIGDRIVE_FILES

    def __init__(self, arg: str) -> None:
        if arg and not arg.startswith("/"):
            raise ValueError(f"configdrive takes no argument or an absolute directory (got {arg!r})")
        self.directory = None if arg in ("", RANCHER_CONFIGDRIVE_MOUNT) else arg
        self.spec = f"configdrive:{arg}" if arg else "configdrive"

    def fetch(self, ctx: DatasourceContext) -> Fetched:
        if self.directory is None:
            return super().fetch(ctx)
        out = Fetched()
        root = ctx.paths.under(self.directory)
        if not root.is_dir():
            out.warnings.append(ConfigError(self.spec, DOCUMENT, f"directory {root} not found: skipped"))
            out.notes.append(f"{self.spec}: nothing ({root} not found)")
            return out
        files = {}
        for name in self.names:
            text = _read(root / name, out)
            if text is not None:
                files[name] = text
        found = MediumRead(device=str(root), files=files)
        detail = self.add(found, out)
        names = ", ".join(n.removeprefix(OPENSTACK) for n in files) or "nothing"
        out.notes.append(f"{self.spec}: {names}{detail}")
        return out

    def add(self, found: MediumRead, out: Fetched) -> str:
        prefix = f"{found.device}:" if found.label is not None else f"{found.device}/"  # a device, a dir
        files = found.files
        user = files.get(f"{OPENSTACK}user_data")
        if user is not None:
            add_user_data(prefix + f"{OPENSTACK}user_data", user, out)
        uuid = None
        meta = files.get(f"{OPENSTACK}meta_data.json")
        if meta is not None:
            source = prefix + f"{OPENSTACK}meta_data.json"
            (data, problems), uuid = cloudmeta.openstack_meta_to_config(meta, source)
            out.warnings.extend(problems)
            if data:
                out.metadata.append((source, data))
        network = files.get(f"{OPENSTACK}network_data.json")
        if network is not None:
            source = prefix + f"{OPENSTACK}network_data.json"
            data, problems = cloudmeta.network_data_to_config(network, source)
            out.warnings.extend(problems)
            if data:
                out.metadata.append((source, data))
        return f" (uuid {uuid})" if uuid else ""


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
        add_user_data(str(real), text, out)
        return out
