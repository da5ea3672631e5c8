"""Unit files: finding the ones ``corral.services_include`` turns on, and reading their services.

A unit file is a compose file: either a map of unit name to service (compose v1, as RancherOS's
service files) or ``{version: ..., services: {...}}``. Top-level ``x-*`` keys are ignored. An included
``NAME.yml`` is looked up in the directories given, in order (the shipped ``units/defaults/`` last).

What comes out is each service as written (``RawService``), with where it came from; turning a service
into a ``Unit`` is ``units.compose``'s job, and the whole set's is ``units.loader``'s."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.config.check import as_bool
from supervisor.config.errors import DOCUMENT, ConfigError, Problems
from supervisor.config.keypath import KeyPath
from supervisor.config.yamlload import NodeInfo, parse_yaml
from units.model import UNIT_NAME
from units.rancheros import os_service

SHIPPED_DIR = Path(__file__).parent / "defaults"

_INCLUDE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_URL = re.compile(r"https?://", re.IGNORECASE)


@dataclass(frozen=True)
class RawService:
    """One service as written, before checking: where it came from and its body."""

    name: str
    body: Any
    file: str
    path: KeyPath  # key path of the unit in its file (its name is the last segment)
    nodes: Mapping[KeyPath, NodeInfo] = field(default_factory=dict, compare=False)
    rancheros: bool = False  # from a file RancherOS would have run (a services_include URL, os-services)

    def line(self, full: KeyPath) -> int | None:
        """The line of a key path of this unit's file (of the nearest key written there), when known."""
        for end in range(len(full), -1, -1):
            info = self.nodes.get(full[:end])
            if info is not None:
                return info.line
        return None

    def problems(self) -> Problems:
        """A collector for this unit's checks: key paths under the unit, lines from its file."""
        return Problems(self.file, base=self.path, line=self.line)

    def error(self, sub: KeyPath, message: str) -> ConfigError:
        problems = self.problems()
        problems.error(sub, message)
        return problems.errors[0]


def parse_unit_text(
    text: str, file: str, rancheros: bool = False
) -> tuple[list[RawService], list[ConfigError]]:
    """Parse one unit file's text (pure). An empty file holds no units. ``rancheros``: a file RancherOS
    would have run (its services run where RancherOS ran them, see units.compose)."""
    data, nodes, errors = parse_yaml(text, file)
    if errors:
        return [], errors
    if data is None:
        return [], []
    if not isinstance(data, dict):
        return [], [ConfigError(file, DOCUMENT, "a unit file is a map of unit name to service", 1)]
    services: dict[Any, Any] = data
    prefix: KeyPath = ()
    inner = data.get("services")
    compose_keys = all(k in ("version", "services") or str(k).startswith("x-") for k in data)
    if isinstance(inner, dict) and compose_keys and (
        "version" in data or all(isinstance(v, dict) for v in inner.values())
    ):
        services, prefix = inner, ("services",)
    raws: list[RawService] = []
    errs: list[ConfigError] = []
    for name, body in services.items():
        if isinstance(name, str) and name.startswith("x-"):
            continue
        raw = RawService(str(name), body, file, (*prefix, str(name)), nodes, rancheros)
        if not isinstance(name, str) or not UNIT_NAME.fullmatch(name):
            errs.append(raw.error((), f"bad unit name {name!r}: use letters, digits, '_', '.', '-'"))
            continue
        raws.append(raw)
    return raws, errs


def read_unit_file(
    path: Path, name: str | None = None, rancheros: bool = False
) -> tuple[list[RawService], list[ConfigError]]:
    """The services of the unit file at ``path``; problems name ``name`` (default: the path; a fetched
    file's cached copy: its URL)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ConfigError(name or str(path), DOCUMENT, f"cannot read: {exc}")]
    return parse_unit_text(text, name or str(path), rancheros)


def is_url(name: object) -> bool:
    """Whether a ``services_include`` name is a URL (RancherOS fetched ``https://.../x.yml: true``)."""
    return isinstance(name, str) and _URL.match(name) is not None


def included_urls(includes: object) -> list[str]:
    """The URLs ``services_include`` turns on, in order."""
    if not isinstance(includes, Mapping):
        return []
    return sorted(k for k, v in includes.items() if is_url(k) and as_bool(v, (k,), Problems()) is True)


def cached_copy(fetched_dir: Path, url: str) -> Path:
    """Where the last good copy of the unit file at ``url`` is kept (units.fetch writes it)."""
    return fetched_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.yml"


@dataclass(frozen=True)
class Included:
    """A unit file ``services_include`` turns on: where it is read, and the name its problems give."""

    path: Path
    name: str
    rancheros: bool = False  # a file RancherOS would have run: a URL, one of its os-services


def find_included(
    includes: Mapping[str, Any],
    dirs: Sequence[Path],
    source: str = "config",
    warnings: list[ConfigError] | None = None,
    fetched_dir: Path | None = None,
) -> tuple[list[Included], list[ConfigError]]:
    """The unit files ``services_include`` turns on, in name order (looked up in ``dirs`` in order).
    A URL (RancherOS fetched ``https://.../x.yml: true``) is read from the last good copy boot fetched
    into ``fetched_dir`` (units.fetch), its problems naming the URL; with no copy yet (or no
    ``fetched_dir``), a warning, added to ``warnings``, says nothing runs from it."""
    files: list[Included] = []
    problems = Problems(source, base=("corral", "services_include"))
    for name in sorted(includes, key=str):
        if not as_bool(includes[name], (str(name),), problems):
            continue
        if is_url(name):
            copy = cached_copy(fetched_dir, name) if fetched_dir is not None else None
            if copy is not None and copy.is_file():
                files.append(Included(copy, name, rancheros=True))
            else:
                problems.warn((name,), "not fetched yet: nothing runs from it until boot fetches it (once "
                                       "the network is up; the journal says how that went), or put the "
                                       "file in /var/lib/corral/units/ and include it by name")
            continue
        if not isinstance(name, str) or not _INCLUDE_NAME.fullmatch(name):
            problems.error((str(name),), f"bad unit file name {name!r}")
            continue
        found = next((d / f"{name}.yml" for d in dirs if (d / f"{name}.yml").is_file()), None)
        if found is None and os_service(name):
            problems.warn((name,), f"RancherOS's service {name!r} (rancher/os-services) is not shipped with "
                                   f"corral and nothing runs: put a unit file {name}.yml in "
                                   "/var/lib/corral/units/ to run one")
        elif found is None:
            where = ", ".join(str(d) for d in dirs)
            problems.error((name,), f"no unit file {name}.yml in {where}")
        else:
            files.append(Included(found, str(found), rancheros=os_service(name)))
    if warnings is not None:
        warnings += problems.warnings
    return files, problems.errors
