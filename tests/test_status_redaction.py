"""``corral status`` is a plain view: a config error or warning that quotes a user's secret (a URL with
its password, a ``token=...``) shows it redacted, as the journal does."""

from __future__ import annotations

from supervisor.app import config_status


def test_status_redacts_url_passwords_and_tokens_in_config_texts() -> None:
    warning = ("services_include 'https://bob:hunter2@example.test/u.yml': fetch failed; "
               "using the last good copy")
    error = "corral.x: token=s3cr3t is not valid"
    got = config_status(4, [error], [warning], {"corral.network": "the defaults"})
    text = repr(got)
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "https://bob:<redacted>@example.test/u.yml" in got["warnings"][0]
    assert got["generation"] == 4 and got["salvaged"] == {"corral.network": "the defaults"}


def test_status_keeps_plain_texts_as_they_are() -> None:
    warning = "rancher.autoformat: RancherOS's autoformat service is not shipped; ignored"
    assert config_status(1, [], [warning], {})["warnings"] == [warning]
