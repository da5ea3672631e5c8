"""Secrets never reach the journal: field values under secret names and secret-looking text (PEM private
keys, ``password=...``, ``TLS_KEY=...``, URL passwords, bearer tokens) become ``"<redacted>"``.

Which names are secret is one rule, shared with the config (``supervisor.secretnames``); ``redact_value``
is about log fields and free text, and the config may use it for anything it logs."""

from __future__ import annotations

import re
from typing import Any

from supervisor.secretnames import REDACTED, is_secret_name, is_secret_path, text_pattern

__all__ = ["REDACTED", "is_secret_key", "redact_text", "redact_value"]

_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.DOTALL,
)
_KEY_WORDS = text_pattern()
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


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` holds a secret (``password``, ``db_password``, ``apiToken``,
    ``TLS_KEY``...): ``supervisor.secretnames.is_secret_name``."""
    return is_secret_name(name)


def _redact_kv(match: re.Match[str]) -> str:
    value = match.group("val")
    if value.lower() in ("bearer", "basic") and match.string.startswith(" " + REDACTED, match.end()):
        return match.group(0)  # "Authorization: Bearer <redacted>": its credentials are gone already
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


def redact_text(text: str) -> str:
    """Free text with PEM private keys, ``password=...``/``"token": "..."``, URL passwords and bearer
    tokens replaced."""
    if not _TRIGGER.search(text):
        return text
    if "PRIVATE KEY" in text:
        text = _PEM.sub(REDACTED, text)
    # credentials first: "Authorization: Bearer abc" must not become "Authorization: <redacted> abc"
    text = _BEARER.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
    text = _KEY_VALUE.sub(_redact_kv, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text)
    return text


def redact_value(value: Any, key: str | None = None, parent: str | None = None) -> Any:
    """``value`` with secrets replaced, recursing into dicts, lists and tuples.

    ``key`` is the name the value is stored under, ``parent`` the name of the map holding it: if they
    make a secret (``password``, ``tls`` then ``key``) the whole value is replaced (``None`` and booleans
    are kept: they say whether a secret is set, not what it is)."""
    kept = value is None or isinstance(value, bool)
    if key is not None and not kept and is_secret_path((key,) if parent is None else (parent, key)):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k), key) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    return value
