"""Config problems are data: which file, which key, what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from supervisor.config.keypath import KeyPath, format_path

DOCUMENT = "(document)"
"""The key path used for problems with the document as a whole (syntax errors, a non-mapping top level)."""


@dataclass(frozen=True)
class ConfigError:
    """One problem with one key of one config source.

    ``file`` is a path, or a pseudo-source such as ``cmdline``; ``key`` is a dotted key path such as
    ``corral.log.level`` or ``write_files[0].permissions``; ``line`` is 1-based when known (it is also
    written into ``message`` by the loaders that know it)."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Problems:
    """Collects a domain parser's errors and warnings as ``ConfigError``s naming the key path.

    ``source`` names the file: a string, or a function of the dotted key (the store's provenance)."""

    def __init__(self, source: str | Callable[[str], str] = "config") -> None:
        self._source = source
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []

    def _make(self, path: KeyPath, message: str) -> ConfigError:
        key = format_path(path) or "(document)"
        file = self._source if isinstance(self._source, str) else self._source(key)
        return ConfigError(file, key, message)

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(self._make(path, message))

    def warn(self, path: KeyPath, message: str) -> None:
        self.warnings.append(self._make(path, message))

    def count(self) -> int:
        return len(self.errors)
