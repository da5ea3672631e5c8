"""The image definition (``image/definition.yml``) as typed data; bad input names the file and key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent / "definition.yml"


class DefinitionError(ValueError):
    """The definition file is malformed: the message names the file, key and reason."""


@dataclass(frozen=True)
class Definition:
    path: Path
    kernel_package: str
    packages: list[str]
    exclude: list[str]
    requirements: list[str]
    corral: bool
    modules: list[str]
    images: list[str]
    user_images: list[str]
    config_dir: Path
    strip: list[str]
    links: dict[str, str] = field(default_factory=dict)
    components: dict[str, list[str]] = field(default_factory=dict)
    # Python sources kept next to the .pyc: "all", or "corral" (only corral's: the stdlib and the wheels
    # ship sourceless .pyc; their tracebacks show file and line but not the line's text).
    python_sources: str = "all"

    @property
    def all_packages(self) -> list[str]:
        """What is resolved together: the root's packages and the kernel package."""
        return [*self.packages, self.kernel_package]


def _strings(data: Mapping[str, Any], key: str, path: Path, where: str = "") -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise DefinitionError(f"{path}: {where}{key}: expected a list of strings")
    return [str(v) for v in value]


def _mapping(data: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise DefinitionError(f"{path}: {key}: expected a mapping")
    return value


def parse(data: Any, path: Path) -> Definition:
    if not isinstance(data, dict):
        raise DefinitionError(f"{path}: expected a mapping at the top")
    kernel = _mapping(data, "kernel", path)
    package = kernel.get("package")
    if not isinstance(package, str) or not package:
        raise DefinitionError(f"{path}: kernel.package: expected a Debian package name")
    python = _mapping(data, "python", path)
    links = _mapping(data, "links", path)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in links.items()):
        raise DefinitionError(f"{path}: links: expected path: target strings")
    components = _mapping(data, "components", path)
    for name, value in components.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DefinitionError(f"{path}: components.{name}: expected a list of package names or paths")
    images = _strings(data, "images", path)
    user_images = _strings(data, "user_images", path)
    if set(user_images) - {"busybox"}:
        raise DefinitionError(f"{path}: user_images: unknown image(s) "
                              f"{', '.join(sorted(set(user_images) - {'busybox'}))} (known: busybox)")
    unknown = sorted(set(images) - {"docker", "console"})
    if unknown:
        raise DefinitionError(f"{path}: images: unknown image(s) {', '.join(unknown)} "
                              "(known: docker, console)")
    sources = python.get("sources", "all")
    if sources not in ("all", "corral"):
        raise DefinitionError(f"{path}: python.sources: expected 'all' or 'corral', not {sources!r}")
    config = data.get("config", "config")
    if not isinstance(config, str):
        raise DefinitionError(f"{path}: config: expected a directory name relative to the definition")
    return Definition(
        path=path, kernel_package=package, packages=_strings(data, "packages", path),
        exclude=_strings(data, "exclude", path),
        requirements=_strings(python, "requirements", path, "python."),
        corral=bool(python.get("corral", True)), modules=_strings(data, "modules", path), images=images,
        user_images=user_images,
        config_dir=(path.parent / config), strip=_strings(data, "strip", path), links=dict(links),
        components={k: list(v) for k, v in components.items()}, python_sources=sources)


def load(path: Path = DEFAULT_PATH) -> Definition:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML: {exc}") from exc
    return parse(data, path)
