"""Unit files: finding the ones ``corral.services_include`` turns on, and reading their services.

A unit file is a compose file: either a map of unit name to service (compose v1, as RancherOS's
service files) or ``{version: ..., services: {...}}``. Top-level ``x-*`` keys are ignored. An included
``NAME.yml`` is looked up in the directories given, in order (the shipped ``units/defaults/`` last).

What comes out is each service as written (``RawService``), with where it came from; turning a service
into a ``Unit`` is ``units.compose``'s job, and the whole set's is ``units.loader``'s."""

from __future__ import annotations

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


def parse_unit_text(text: str, file: str) -> tuple[list[RawService], list[ConfigError]]:
    """Parse one unit file's text (pure). An empty file holds no units."""
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
        raw = RawService(str(name), body, file, (*prefix, str(name)), nodes)
        if not isinstance(name, str) or not UNIT_NAME.fullmatch(name):
            errs.append(raw.error((), f"bad unit name {name!r}: use letters, digits, '_', '.', '-'"))
            continue
        raws.append(raw)
    return raws, errs


def read_unit_file(path: Path) -> tuple[list[RawService], list[ConfigError]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ConfigError(str(path), DOCUMENT, f"cannot read: {exc}")]
    return parse_unit_text(text, str(path))


def find_included(
    includes: Mapping[str, Any],
    dirs: Sequence[Path],
    source: str = "config",
    warnings: list[ConfigError] | None = None,
) -> tuple[list[Path], list[ConfigError]]:
    """The unit files ``services_include`` turns on, in name order (looked up in ``dirs`` in order).
    A URL (RancherOS fetched ``https://.../x.yml: true``) is not fetched: a warning, added to
    ``warnings``, says so."""
    files: list[Path] = []
    problems = Problems(source, base=("corral", "services_include"))
    for name in sorted(includes, key=str):
        if not as_bool(includes[name], (str(name),), problems):
            continue
        if isinstance(name, str) and _URL.match(name):
            problems.warn((name,), "not fetched: corral fetches no unit files from URLs yet; put the file "
                                   "in /var/lib/corral/units/ and include it by name")
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
            files.append(found)
    if warnings is not None:
        warnings += problems.warnings
    return files, problems.errors
