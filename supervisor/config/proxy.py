"""``corral.network.http_proxy``/``https_proxy``/``no_proxy`` (RancherOS's ``rancher.network`` keys) as
environment variables: the one reading of them, for the system dockerd's environment
(``units.system_dockerd``) and the units' (``units.loader``: a unit's bare ``HTTP_PROXY`` entry, as the
shipped ``docker`` unit, the user's dockerd, has, takes it; ``corral.environment`` wins when it sets the
same name), as RancherOS did. Both spellings are set: Go programs read ``HTTP_PROXY``, curl and wget
``http_proxy``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KEYS = {"http_proxy": "HTTP_PROXY", "https_proxy": "HTTPS_PROXY", "no_proxy": "NO_PROXY"}


def proxy_environment(config: Mapping[str, Any]) -> dict[str, str]:
    """``{"HTTP_PROXY": ..., "http_proxy": ...}`` for each proxy key of the config's network section."""
    corral = config.get("corral")
    if not isinstance(corral, Mapping):
        corral = config.get("rancher")
    network = corral.get("network") if isinstance(corral, Mapping) else None
    env: dict[str, str] = {}
    if not isinstance(network, Mapping):
        return env
    for key, name in KEYS.items():
        value = network.get(key)
        if isinstance(value, str) and value.strip():
            env[name] = env[key] = value.strip()
    return env
