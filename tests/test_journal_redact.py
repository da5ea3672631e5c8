"""Secrets never reach the journal: not in fields, nested values, messages, tracebacks or stdlib lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from supervisor.journal import (
    CURRENT,
    REDACTED,
    Journal,
    is_secret_key,
    redact_text,
    redact_value,
    reset,
    setup,
)

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
SECRET = "hunter2-Sekr1t"


@pytest.fixture
def journal() -> Iterator[Journal]:
    yield setup(console=io.StringIO())
    reset()


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_password", "passwd", "secret", "client-secret", "apiToken", "token",
     "private_key", "privateKey", "api_key", "wpa_psk", "passphrase", "authorization", "credentials",
     "tls_key", "TLS_KEY", "tlsKey", "docker-tls-key", "rsa_private"],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["key", "unit", "iface", "ssh_authorized_keys", "public_key", "password_file", "token_path", "dev"]
)
def test_harmless_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_a_unit_printing_its_tls_key_is_redacted() -> None:
    """The config's rule had tls_key, the journal's did not: a unit printing TLS_KEY=... was logged in
    clear. One rule now (supervisor.secretnames) for both."""
    assert redact_text(f"TLS_KEY={SECRET} port=443") == f"TLS_KEY={REDACTED} port=443"
    assert redact_text(f'{{"tls_key": "{SECRET}"}}') == f'{{"tls_key": "{REDACTED}"}}'
    assert redact_value({"tls": {"key": SECRET, "cert": "c"}}) == {"tls": {"key": REDACTED, "cert": "c"}}
    assert redact_value({"key": "k"}) == {"key": "k"}  # "key" alone is secret only under tls


def test_redact_value_nested() -> None:
    value = {
        "user": "root",
        "password": SECRET,
        "wifi": {"ssid": "home", "psk": SECRET},
        "users": [{"name": "a", "passwd": SECRET}, ("x", {"token": SECRET})],
        "key": PEM,
        "public_key": "ssh-ed25519 AAAAC3Nza me@host",
        "has_password": True,
        "secret": None,
    }
    out = redact_value(value)
    assert SECRET not in repr(out) and "b3BlbnNz" not in repr(out)
    assert out["user"] == "root"
    assert out["wifi"] == {"ssid": "home", "psk": REDACTED}
    assert out["users"][1] == ("x", {"token": REDACTED})
    assert out["key"].strip() == REDACTED
    assert out["public_key"] == "ssh-ed25519 AAAAC3Nza me@host"
    assert out["has_password"] is True and out["secret"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"login password={SECRET} ok", "login password=<redacted> ok"),
        (f"login PASSWORD: {SECRET}", "login PASSWORD: <redacted>"),
        (f"{{'token': '{SECRET}', 'unit': 'x'}}", "{'token': '<redacted>', 'unit': 'x'}"),
        (f'{{"db_password": "{SECRET}"}}', '{"db_password": "<redacted>"}'),
        (f"pull https://bob:{SECRET}@registry.example/v2", "pull https://bob:<redacted>@registry.example/v2"),
        (f"Authorization: Bearer {SECRET}abc", "Authorization: Bearer <redacted>"),
        (f"here:\n{PEM}and after", "here:\n<redacted>\nand after"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEtruncated", "<redacted>"),
        ("nothing to see iface=eth0", "nothing to see iface=eth0"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_structlog_fields_message_and_disk_redacted(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path)
    log = structlog.get_logger("supervisor.config").bind(unit="config")
    log.info("applying", password=SECRET, cfg={"users": [{"name": "a", "password": SECRET}]})
    log.info(f"user key is\n{PEM}")
    log.warning(f"bad line password={SECRET}")
    log.info("object", obj=type("Cfg", (), {"__str__": lambda self: f"Cfg(token={SECRET})"})())
    try:
        raise RuntimeError(f"could not log in with password={SECRET}")
    except RuntimeError:
        log.exception("failed")
    data = (tmp_path / CURRENT).read_text()
    assert SECRET not in data
    assert "b3BlbnNz" not in data
    assert data.count(REDACTED) >= 6
    records = journal.query()
    assert records[0]["password"] == REDACTED
    assert "password=<redacted>" in records[-1]["traceback"]
    assert journal.console is not None
    console = journal.console.getvalue()  # type: ignore[attr-defined]
    assert SECRET not in console and "b3BlbnNz" not in console


def test_stdlib_logging_redacted_and_routed(journal: Journal, tmp_path: Path) -> None:
    journal.attach_storage(tmp_path)
    logging.getLogger("aiodocker").warning("auth failed for password=%s", SECRET)
    logging.getLogger("pyroute2").info("below warning: not routed")
    try:
        raise ValueError(f"token={SECRET}")
    except ValueError:
        logging.getLogger("pyroute2").exception("netlink trouble")
    records = journal.query()
    assert [r["logger"] for r in records] == ["aiodocker", "pyroute2"]
    assert records[0]["event"] == "auth failed for password=<redacted>"
    assert records[0]["level"] == "warning"
    assert records[1]["level"] == "error"
    assert "token=<redacted>" in records[1]["traceback"]
    assert SECRET not in (tmp_path / CURRENT).read_text()
