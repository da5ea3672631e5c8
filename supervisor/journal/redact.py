"""Secrets never reach the journal: field values under secret-looking keys and secret-looking text
(PEM private keys, ``password=...``, URL passwords, bearer tokens) become ``"<redacted>"``.

``is_secret_key`` and ``redact_value`` are about log fields and free text; the config subsystem has its
own ``is_secret(key_path)`` for config paths, and may use ``redact_value`` for anything it logs."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

REDACTED = "<redacted>"

# Matched against the key with separators removed, so "api-key", "apiKey" and "api_key" all match.
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "privatekey", "apikey", "credential")
# Matched against whole words of the key: "wpa_psk", "psk".
_SECRET_PARTS = frozenset({"psk", "pwd", "authorization", "cookie"})
# A key naming where a secret lives, or describing it, is not itself secret.
_HARMLESS_SUFFIXES = ("_file", "_path", "_dir", "_len", "_length", "_count")

_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.DOTALL,
)
_KEY_WORDS = r"password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|credentials?|psk"
_KEY_VALUE = re.compile(
    rf"""(?P<key>[\w.-]*(?:{_KEY_WORDS})[\w.-]*)   # a key containing a secret word
         (?P<sep>["']?\s*[:=]\s*)                   # = or :, perhaps after a closing quote
         (?P<val>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s"',;&}})\]]+)""",
    re.IGNORECASE | re.VERBOSE,
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# Every pattern above needs one of these: one search spares the substitutions on ordinary text.
_TRIGGER = re.compile(rf"{_KEY_WORDS}|PRIVATE KEY|://|bearer|basic", re.IGNORECASE)


@lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (``password``, ``db_password``, ``apiToken``...)."""
    low = _CAMEL.sub("_", name).lower()
    parts = [p for p in _SPLIT.split(low) if p]
    if not parts:
        return False
    if any(("_" + "_".join(parts)).endswith(suffix) for suffix in _HARMLESS_SUFFIXES):
        return False
    compact = "".join(parts)
    return any(word in compact for word in _SECRET_WORDS) or any(p in _SECRET_PARTS for p in parts)


def _redact_kv(match: re.Match[str]) -> str:
    value = match.group("val")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact_text(text: str) -> str:
    """Free text with PEM private keys, ``password=...``/``"token": "..."``, URL passwords and bearer
    tokens replaced."""
    if not _TRIGGER.search(text):
        return text
    if "PRIVATE KEY" in text:
        text = _PEM.sub(REDACTED, text)
    text = _KEY_VALUE.sub(_redact_kv, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    return _BEARER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)


def redact_value(value: Any, key: str | None = None) -> Any:
    """``value`` with secrets replaced, recursing into dicts, lists and tuples.

    ``key`` is the name the value is stored under: if it looks secret the whole value is replaced
    (``None`` and booleans are kept: they say whether a secret is set, not what it is)."""
    if key is not None and is_secret_key(key) and value is not None and not isinstance(value, bool):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    return value
