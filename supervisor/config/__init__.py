"""corral's config: cloud-config YAML layers merged, validated against one JSON Schema, kept by a store.

The supervisor and the control socket use ``ConfigStore``; everything else here is its parts."""

from supervisor.atomic import write_atomic
from supervisor.config.errors import ConfigError
from supervisor.config.secrets import is_secret, redact
from supervisor.config.store import ConfigStore, LoadResult, ReloadResult

__all__ = ["ConfigError", "ConfigStore", "LoadResult", "ReloadResult", "is_secret", "redact", "write_atomic"]
