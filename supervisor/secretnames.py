"""Which names hold secrets: the one rule, for config keys (``supervisor.config.secrets``: what goes to the
0600 file and is hidden from views and exports) and for log fields and text (``supervisor.journal.redact``).

A name is read as its words, lower-cased (``db-password``, ``dbPassword``, ``DB_PASSWORD``: ``db``,
``password``). It is secret when

- its words joined contain one of :data:`SECRET_WORDS` (``password``, ``client_secret``, ``apiToken``,
  ``TLS_KEY``, ``wireguard.private_key``, ``hashed-passwd``);
- one of its words is one of :data:`SECRET_PARTS` (``wpa_psk``, ``Authorization``);
- its last word, after another, is ``private`` (``ssh_keys.rsa_private``);

unless it ends in one of :data:`HARMLESS_SUFFIXES`: it then says where a secret lives, or describes it
(``password_file``, ``token_path``). In a key path (or nested log fields), ``key`` directly under a map
named ``tls`` is secret too (``services.x.tls.key``). Public keys (``ssh_authorized_keys``) are not."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

REDACTED = "<redacted>"

SECRET_WORDS = (
    "password", "passwd", "passphrase", "secret", "token", "private_key", "api_key", "tls_key", "credential",
)
SECRET_PARTS = frozenset({"psk", "pwd", "authorization", "cookie"})
PRIVATE_WORD = "private"
HARMLESS_SUFFIXES = ("_file", "_path", "_dir", "_len", "_length", "_count")

_COMPACT_WORDS = tuple(word.replace("_", "") for word in SECRET_WORDS)
_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(name: str) -> list[str]:
    """The lower-case words of a name: ``apiToken`` and ``API-token`` are ``api``, ``token``."""
    return [part for part in _SPLIT.split(_CAMEL.sub("_", name).lower()) if part]


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a key or field called ``name`` holds a secret (see the module's rule)."""
    parts = words(name)
    if not parts:
        return False
    if ("_" + "_".join(parts)).endswith(HARMLESS_SUFFIXES):
        return False
    compact = "".join(parts)
    if any(word in compact for word in _COMPACT_WORDS) or any(part in SECRET_PARTS for part in parts):
        return True
    return len(parts) > 1 and parts[-1] == PRIVATE_WORD


def is_secret_path(names: Sequence[str]) -> bool:
    """Whether the value at a path of names (outermost first) is a secret: a secret name anywhere along
    it (everything under a secret is secret), or ``key`` right under ``tls``."""
    for i, name in enumerate(names):
        if is_secret_name(name):
            return True
        if i > 0 and words(name) == ["key"] and words(names[i - 1]) == ["tls"]:
            return True
    return False


def text_pattern() -> str:
    """A regular expression (to compile with IGNORECASE) for a secret name's words inside free text:
    ``TLS_KEY=...``, ``"api-key": ...``, ``password: ...``. The separators between a word's parts may be
    ``_``, ``-``, ``.`` or none."""
    alternatives = [word.replace("_", "[_.-]?") for word in SECRET_WORDS]
    alternatives += sorted(SECRET_PARTS)
    return "|".join(alternatives)
