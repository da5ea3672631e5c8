"""Which config keys are secret, and keeping them out of cloud-config.yml, exports and logs.

The rule is ``supervisor.secretnames`` (one place, shared with the journal's redaction), applied to the
names along a key path: ``is_secret``. Secret are, for example, ``corral.password``, ``users[0].passwd``,
``ssh_keys.rsa_private``, ``wireguard.private_key``, ``client_secret``, ``docker.tls_key``, ``...tls.key``,
``environment.GITHUB_TOKEN`` and ``wpa_psk``; public keys (``ssh_authorized_keys``) and names that only
say where a secret lives (``password_file``) are not.

A secret inside a list makes the whole list secret when splitting (lists are replaced whole by later
layers, so they cannot be split between two files)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.config.keypath import KeyPath, Segment, get_path
from supervisor.secretnames import REDACTED, is_secret_path

__all__ = ["REDACTED", "contains_secret", "is_secret", "keep_stored", "redact", "secret_paths",
           "split_secrets"]


def is_secret(path: Sequence[Segment]) -> bool:
    """True when the value at ``path`` is a secret (list indexes do not count as names)."""
    return is_secret_path([s for s in path if isinstance(s, str)])


def contains_secret(value: Any, path: KeyPath = ()) -> bool:
    if is_secret(path):
        return True
    if isinstance(value, Mapping):
        return any(contains_secret(v, (*path, k)) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_secret(v, (*path, i)) for i, v in enumerate(value))
    return False


def redact(config: Any, path: KeyPath = ()) -> Any:
    """A copy of ``config`` with every secret value replaced by ``"<redacted>"`` (safe to log)."""
    if is_secret(path) and path:
        return REDACTED
    if isinstance(config, Mapping):
        return {k: redact(v, (*path, k)) for k, v in config.items()}
    if isinstance(config, list):
        return [redact(v, (*path, i)) for i, v in enumerate(config)]
    return copy.deepcopy(config)


def split_secrets(doc: Mapping[str, Any], path: KeyPath = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(public, private)``: every secret (and every list holding one) goes to ``private``."""
    public: dict[str, Any] = {}
    private: dict[str, Any] = {}
    for key, value in doc.items():
        sub = (*path, key)
        if is_secret(sub):
            private[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping):
            pub, priv = split_secrets(value, sub)
            if pub or not priv:
                public[key] = pub
            if priv:
                private[key] = priv
        elif isinstance(value, list) and contains_secret(value, sub):
            private[key] = copy.deepcopy(value)
        else:
            public[key] = copy.deepcopy(value)
    return public, private


def secret_paths(config: Any, path: KeyPath = ()) -> list[KeyPath]:
    """Key paths of the secrets present in ``config`` (outermost only)."""
    if path and is_secret(path):
        return [path]
    found: list[KeyPath] = []
    if isinstance(config, Mapping):
        for k, v in config.items():
            found.extend(secret_paths(v, (*path, k)))
    elif isinstance(config, list):
        for i, v in enumerate(config):
            found.extend(secret_paths(v, (*path, i)))
    return found


def keep_stored(overlay: Any, stored: Any, path: KeyPath = ()) -> tuple[Any, list[KeyPath]]:
    """``overlay`` (a document to merge) with each ``"<redacted>"`` placeholder of a secret replaced by
    the secret ``stored`` holds at that key path: merging a redacted export back keeps the secrets.
    Also returns the key paths of placeholders that have no stored secret to keep."""
    if path and overlay == REDACTED and is_secret(path):
        try:
            return copy.deepcopy(get_path(stored, path)), []
        except KeyError:
            return overlay, [path]
    missing: list[KeyPath] = []
    if isinstance(overlay, Mapping):
        kept: dict[str, Any] = {}
        for key, value in overlay.items():
            kept[key], lost = keep_stored(value, stored, (*path, key))
            missing.extend(lost)
        return kept, missing
    if isinstance(overlay, list):
        items = []
        for i, value in enumerate(overlay):
            item, lost = keep_stored(value, stored, (*path, i))
            items.append(item)
            missing.extend(lost)
        return items, missing
    return overlay, []
