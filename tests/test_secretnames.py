"""One rule of secret names for the config's views and the journal's redaction (issue 14)."""

from __future__ import annotations

import pytest

from supervisor.config import is_secret
from supervisor.journal import is_secret_key
from supervisor.secretnames import SECRET_PARTS, SECRET_WORDS, is_secret_name, is_secret_path, words

NAMES = [
    "password", "POSTGRES_PASSWORD", "hashed-passwd", "client_secret", "tls_key", "TLS_KEY", "tlsKey",
    "private_key", "rsa_private", "api_key", "apiToken", "GITHUB_TOKEN", "wpa_psk", "passphrase",
    "credentials", "cookie", "Authorization", "key", "tls", "private", "hostname", "ssh_authorized_keys",
    "rsa_public", "password_file", "token_path", "secrets_dir", "public_key", "unit",
]


@pytest.mark.parametrize("name", NAMES)
def test_config_and_journal_share_the_rule(name: str) -> None:
    assert is_secret((name,)) is is_secret_key(name) is is_secret_name(name)


@pytest.mark.parametrize("word", [*SECRET_WORDS, *SECRET_PARTS])
def test_every_listed_word_is_secret_in_both(word: str) -> None:
    assert is_secret(("corral", word)) and is_secret_key(word) and is_secret_key(word.upper())


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        (("services", "x", "tls", "key"), True),
        (("services", "x", "TLS", "Key"), True),
        (("corral", "key"), False),
        (("tls", "cert"), False),
        (("corral", "password", "nested"), True),
        ((), False),
    ],
)
def test_paths(path: tuple[str, ...], secret: bool) -> None:
    assert is_secret_path(path) is secret
    assert is_secret(path) is secret


def test_words() -> None:
    assert words("apiToken") == ["api", "token"]
    assert words("DB-Password_x") == ["db", "password", "x"]
    assert words("--") == []
