"""Config problems are data: which file, which key, what is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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
