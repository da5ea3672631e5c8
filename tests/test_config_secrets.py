"""The one rule for secrets, redaction for logs and exports, splitting for the 0600 file."""

from __future__ import annotations

import pytest

from supervisor.config import is_secret, redact
from supervisor.config.keypath import Segment
from supervisor.config.secrets import REDACTED, split_secrets


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        (("corral", "password"), True),
        (("corral", "services", "db", "environment", "POSTGRES_PASSWORD"), True),
        (("users", 0, "passwd"), True),
        (("users", 0, "hashed-passwd"), True),
        (("ssh_keys", "rsa_private"), True),
        (("corral", "network", "wireguard", "private_key"), True),
        (("corral", "services", "x", "tls", "key"), True),
        (("corral", "docker", "tls_key"), True),
        (("corral", "registry", "client_secret"), True),
        (("corral", "password", "nested"), True),  # anything under a secret
        (("ssh_authorized_keys",), False),  # public keys are not secret
        (("ssh_authorized_keys", 0), False),
        (("ssh_keys", "rsa_public"), False),
        (("corral", "services", "x", "tls", "cert"), False),
        (("corral", "key"), False),  # "key" alone is only secret under a tls map
        (("hostname",), False),
        ((), False),
    ],
)
def test_is_secret(path: tuple[Segment, ...], secret: bool) -> None:
    assert is_secret(path) is secret


def test_redact_replaces_secret_values_and_copies() -> None:
    config = {
        "hostname": "h",
        "corral": {"password": "pw", "tls": {"key": {"pem": "x"}, "cert": "c"}},
        "users": [{"name": "a", "passwd": "p"}],
        "ssh_authorized_keys": ["ssh-rsa A"],
    }
    out = redact(config)
    assert out == {
        "hostname": "h",
        "corral": {"password": REDACTED, "tls": {"key": REDACTED, "cert": "c"}},
        "users": [{"name": "a", "passwd": REDACTED}],
        "ssh_authorized_keys": ["ssh-rsa A"],
    }
    assert config["corral"]["password"] == "pw"  # type: ignore[index]


def test_split_secrets() -> None:
    public, private = split_secrets(
        {
            "hostname": "h",
            "corral": {"password": "pw", "log": {"level": "info"}, "environment": {}},
            "users": [{"passwd": "p"}],
            "runcmd": ["x"],
        }
    )
    assert public == {
        "hostname": "h",
        "corral": {"log": {"level": "info"}, "environment": {}},
        "runcmd": ["x"],
    }
    assert private == {"corral": {"password": "pw"}, "users": [{"passwd": "p"}]}
