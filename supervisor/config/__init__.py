"""corral's config: cloud-config YAML layers merged, validated against one JSON Schema, kept by a store.

The supervisor and the control socket use ``ConfigStore``; everything else here is its parts.

The names below load when first used (PEP 562), not with the package: a process that needs only a light
part (``errors``, ``keypath``, ``yamlload``: the ``corral`` CLI, which forwards config requests to PID 1
and leaves the validation to it) does not pay for the store and jsonschema (~0.1 s and 10 MiB)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.atomic import write_atomic
    from supervisor.config.errors import ConfigError
    from supervisor.config.secrets import is_secret, redact
    from supervisor.config.store import ConfigStore, LoadResult, ReloadResult

_HOMES = {
    "write_atomic": "supervisor.atomic",
    "ConfigError": "supervisor.config.errors",
    "is_secret": "supervisor.config.secrets",
    "redact": "supervisor.config.secrets",
    "ConfigStore": "supervisor.config.store",
    "LoadResult": "supervisor.config.store",
    "ReloadResult": "supervisor.config.store",
}

__all__ = ["ConfigError", "ConfigStore", "LoadResult", "ReloadResult", "is_secret", "redact", "write_atomic"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
