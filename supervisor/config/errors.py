"""Config problems are data: which file, which key, what is wrong (and what was probably meant).

``ConfigError`` is the one diagnostic type: the schema validator, the domain parsers (network, units,
storage) and the control socket's argument checks all report with it. ``Problems`` is the one
collector the parsers report into, with the typed value helpers of ``supervisor.config.check``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from supervisor.config.keypath import KeyPath, format_path

DOCUMENT = "(document)"
"""The key path used for problems with the document as a whole (syntax errors, a non-mapping top level)."""


@dataclass(frozen=True)
class ConfigError:
    """One problem with one key of one config source.

    ``file`` is a path, or a pseudo-source such as ``cmdline`` (for a control command's argument: the
    command); ``key`` is a dotted key path such as ``corral.log.level`` or
    ``write_files[0].permissions``; ``line`` is 1-based when known (the schema validator also writes
    it into ``message``); ``suggestion`` is what was probably meant, when a "did you mean" is part of
    ``message``: a whole key path for a misspelt key, the value for a misspelt value. The string form,
    ``FILE: key.path: message``, is what people read; ``to_dict`` is what programs read."""

    file: str
    key: str
    message: str
    line: int | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Source = str | Callable[[str], str]
"""Which file a problem is in: one name, or a function of the dotted key (the config store's
provenance: each key names the file that gave it)."""


class Problems:
    """Collects a parser's errors and warnings as ``ConfigError``s naming the key path.

    ``source`` names the file. ``base`` is where the parsed value sits in its file: the paths given to
    ``error``/``warn`` are under it (a unit's checks say ``("image",)`` and the error names
    ``corral.services.web.image``). ``line`` finds the line of a (whole) key path, when the parser has
    the YAML's positions."""

    def __init__(
        self,
        source: Source = "config",
        *,
        base: KeyPath = (),
        line: Callable[[KeyPath], int | None] | None = None,
    ) -> None:
        self._source = source
        self._base = base
        self._line = line
        self.errors: list[ConfigError] = []
        self.warnings: list[ConfigError] = []

    def key(self, path: KeyPath) -> str:
        """The dotted key path of ``path`` (under ``base``) as messages and suggestions write it."""
        return format_path((*self._base, *path)) or DOCUMENT

    def _make(self, path: KeyPath, message: str, suggestion: str | None) -> ConfigError:
        key = self.key(path)
        file = self._source if isinstance(self._source, str) else self._source(key)
        line = self._line((*self._base, *path)) if self._line is not None else None
        return ConfigError(file, key, message, line, suggestion)

    def error(self, path: KeyPath, message: str, *, suggestion: str | None = None) -> None:
        self.errors.append(self._make(path, message, suggestion))

    def warn(self, path: KeyPath, message: str, *, suggestion: str | None = None) -> None:
        self.warnings.append(self._make(path, message, suggestion))

    def mark(self) -> tuple[int, int]:
        """Where the problems stand now (for ``rekey``)."""
        return len(self.errors), len(self.warnings)

    def rekey(self, mark: tuple[int, int], prefixes: Mapping[str, str]) -> None:
        """Move the problems reported since ``mark`` from one key to another: a problem whose dotted
        key starts with a key of ``prefixes`` is reported on its value instead, the rest of the key
        leading the message (a translated document's problems named on the original's keys)."""

        def moved(problem: ConfigError) -> ConfigError:
            for old, new in prefixes.items():
                rest = problem.key[len(old) :]
                if problem.key.startswith(old) and (not rest or rest[0] in ".["):
                    message = (
                        f"{rest.lstrip('.')} (in netplan terms): {problem.message}"
                        if rest
                        else problem.message
                    )
                    return replace(problem, key=new, message=message)
            return problem

        self.errors[mark[0] :] = [moved(e) for e in self.errors[mark[0] :]]
        self.warnings[mark[1] :] = [moved(w) for w in self.warnings[mark[1] :]]

    def count(self) -> int:
        """How many errors so far: a parser compares counts to tell whether its part went wrong."""
        return len(self.errors)
