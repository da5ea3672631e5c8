"""corral.network's http_proxy/https_proxy/no_proxy (RancherOS's rancher.network keys): accepted, and the
environment of the system dockerd, of the units that name them (the shipped `docker` unit, the user's
dockerd) and of bootcmd/runcmd, as RancherOS set them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from netconf.parse import parse_config
from supervisor.config.proxy import proxy_environment
from supervisor.domain_checks import config_store
from supervisor.paths import Paths
from units.loader import load_units
from units.system_dockerd import DockerdLayout

PROXIES = {"http_proxy": "http://proxy:3128", "https_proxy": " http://proxy:3129 ", "no_proxy": "localhost"}


def test_both_spellings_of_each_proxy() -> None:
    assert proxy_environment({"corral": {"network": PROXIES}}) == {
        "HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128",
        "HTTPS_PROXY": "http://proxy:3129", "https_proxy": "http://proxy:3129",
        "NO_PROXY": "localhost", "no_proxy": "localhost"}
    rancher = {"rancher": {"network": {"no_proxy": "a"}}}
    assert proxy_environment(rancher) == {"NO_PROXY": "a", "no_proxy": "a"}
    assert proxy_environment({"corral": {"network": {"http_proxy": ""}}}) == {}
    assert proxy_environment({}) == {}


def test_rancheros_proxy_keys_are_valid_config(tmp_path: Path) -> None:
    text = "rancher:\n  network:\n" + "".join(f"    {k}: {v.strip()}\n" for k, v in PROXIES.items())
    result = config_store(Paths.sandbox(tmp_path), "").verdict(text, "f.yml")
    assert result.errors == [] and result.warnings == []
    assert parse_config({"corral": {"network": PROXIES}}, "f.yml").errors == ()


def test_units_that_name_the_proxies_get_them_and_corral_environment_wins() -> None:
    loaded = load_units({"corral": {"network": PROXIES, "services_include": {"docker": True}}})
    assert loaded.errors == []
    env = loaded.units["docker"].env  # the user's dockerd lists HTTP_PROXY, HTTPS_PROXY, NO_PROXY
    assert (env["HTTP_PROXY"], env["HTTPS_PROXY"], env["NO_PROXY"]) == (
        "http://proxy:3128", "http://proxy:3129", "localhost")
    mine = load_units({"corral": {"network": PROXIES, "environment": {"HTTP_PROXY": "http://mine"},
                                  "services_include": {"docker": True}}})
    assert mine.units["docker"].env["HTTP_PROXY"] == "http://mine"
    none = load_units({"corral": {"services_include": {"docker": True}}})
    assert "HTTP_PROXY" not in none.units["docker"].env


def test_the_system_dockerd_gets_them() -> None:
    layout = DockerdLayout.system(Paths(), sandbox=False)
    assert "HTTP_PROXY" not in layout.env(root_fstype="ext4")
    proxies = tuple(proxy_environment({"corral": {"network": PROXIES}}).items())
    env = replace(layout, environment=proxies).env(root_fstype="ext4")
    assert env["HTTPS_PROXY"] == "http://proxy:3129" and env["no_proxy"] == "localhost"
    assert env["PATH"]
