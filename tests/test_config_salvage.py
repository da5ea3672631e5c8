"""Salvage (supervisor/config/salvage.py), pure: layers + errors -> the salvaged config; and the store's
boot load with it: every domain that is valid is applied, each failing one is on the last good config
or the defaults, and a domain's typed config only ever comes from a config that passed every check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.merge import merge_layers
from supervisor.config.salvage import (
    MAX_ROUNDS,
    ON_DEFAULTS,
    ON_LAST_GOOD,
    Judged,
    describe_verdict,
    domain_root,
    replace_roots,
    salvage,
    summary,
    without_roots,
)
from supervisor.config.store import ConfigStore
from supervisor.domain_checks import NETWORK, Domains, config_store
from supervisor.paths import Paths


@pytest.mark.parametrize(
    ("key", "root"),
    [
        ("corral.network.interfaces.eth0.address", "corral.network"),
        ("rancher.network.interfaces.eth0", "corral.network"),  # the alias, as errors name it
        ('corral.services.web.labels["io.corral.after"]', "corral.services"),
        ("corral.state.dev", "corral.state"),
        ("corral.modules[0]", "corral.modules"),
        ("corral", "corral"),
        ("hostname", "hostname"),
        ("ssh_authorized_keys[2]", "ssh_authorized_keys"),
        ("network.ethernets.eth0.dhcp4", "network"),  # the netplan document as a whole
        ("write_files[0].permissions", "write_files"),
        (DOCUMENT, None),
        ("[0]", None),
    ],
)
def test_each_error_is_placed_under_its_domain_root(key: str, root: str | None) -> None:
    assert domain_root(key) == root


def err(key: str, file: str = "user.yml") -> ConfigError:
    return ConfigError(file, key, "bad")


def judge_ok(config: dict[str, Any], provenance: dict[str, str]) -> Judged:
    return Judged(parsed={"config": config})


DEFAULTS = {
    "hostname": "corral",
    "corral": {"log": {"level": "info"}, "network": {"dns": {"nameservers": ["1.1.1.1"]}}},
}
DEFAULTS_PROVENANCE = {
    "hostname": "defaults",
    "corral.log.level": "defaults",
    "corral.network.dns.nameservers": "defaults",
}


def test_a_failing_root_takes_the_fallback_and_the_rest_is_kept() -> None:
    user = {
        "hostname": "web-1",
        "ssh_authorized_keys": ["ssh-ed25519 AAAA"],
        "corral": {
            "network": {"interfaces": {"eth0": {"address": "10.1.2.300/24"}}},
            "log": {"level": "debug"},
        },
    }
    layers = [("defaults", DEFAULTS), ("user.yml", without_roots(user, ["corral.network"]))]
    got = salvage(
        layers,
        [err("corral.network.interfaces.eth0.address")],
        DEFAULTS,
        DEFAULTS_PROVENANCE,
        judge_ok,
        merge_layers,
    )
    assert got.config == {
        "hostname": "web-1",
        "ssh_authorized_keys": ["ssh-ed25519 AAAA"],
        "corral": {"log": {"level": "debug"}, "network": {"dns": {"nameservers": ["1.1.1.1"]}}},
    }
    assert list(got.roots) == ["corral.network"]
    assert got.provenance["corral.network.dns.nameservers"] == "defaults"
    assert got.provenance["hostname"] == "user.yml"
    assert got.dropped == {}
    assert got.judged.parsed == {"config": got.config}


def test_a_root_the_fallback_lacks_is_left_out() -> None:
    layers = [("defaults", DEFAULTS), ("user.yml", {"hostname": "x"})]
    got = salvage(layers, [err("mounts[0]")], DEFAULTS, DEFAULTS_PROVENANCE, judge_ok, merge_layers)
    assert got.config is not None and "mounts" not in got.config and got.config["hostname"] == "x"


def test_an_error_the_judge_finds_costs_its_root_in_a_further_round() -> None:
    seen: list[dict[str, Any]] = []

    def judge(config: dict[str, Any], provenance: dict[str, str]) -> Judged:
        seen.append(config)
        if config["corral"].get("services") == {"web": {"image": ""}}:
            return Judged([err("corral.services.web.image")])
        return Judged(warnings=[err("hostname")])

    layers = [
        ("defaults", DEFAULTS),
        ("user.yml", {"hostname": "h", "corral": {"services": {"web": {"image": ""}}}}),
    ]
    got = salvage(layers, [], DEFAULTS, DEFAULTS_PROVENANCE, judge, merge_layers)
    assert len(seen) == 2
    assert got.config is not None and "services" not in got.config["corral"] and got.config["hostname"] == "h"
    assert [e.key for e in got.errors] == ["corral.services.web.image"]
    assert got.judged.warnings == [err("hostname")]


def test_a_config_that_never_passes_is_not_salvaged_and_the_rounds_are_bounded() -> None:
    calls: list[int] = []

    def judge(config: dict[str, Any], provenance: dict[str, str]) -> Judged:
        calls.append(1)
        return Judged([err(f"key{len(calls)}")])  # a new root every round

    got = salvage([("defaults", DEFAULTS)], [], DEFAULTS, DEFAULTS_PROVENANCE, judge, merge_layers)
    assert got.config is None
    assert len(calls) == MAX_ROUNDS
    assert describe_verdict(got).startswith("a boot would apply none of it")


def test_an_error_that_no_root_holds_stops_the_salvage() -> None:
    got = salvage(
        [("defaults", DEFAULTS)],
        [],
        DEFAULTS,
        DEFAULTS_PROVENANCE,
        lambda c, p: Judged([err(DOCUMENT, "merged")]),
        merge_layers,
    )
    assert got.config is None


def test_a_file_not_read_costs_that_file_and_what_it_gave_stays_as_it_was() -> None:
    last_good = {"hostname": "good", "corral": {"log": {"level": "debug"}}}
    last_provenance = {"hostname": "broken.yml", "corral.log.level": "other.yml"}
    layers = [("defaults", DEFAULTS), ("other.yml", {"corral": {"log": {"level": "error"}}})]
    syntax = ConfigError("broken.yml", DOCUMENT, "YAML syntax error at line 1")
    got = salvage(layers, [syntax], last_good, last_provenance, judge_ok, merge_layers)
    assert got.config is not None
    assert got.config["hostname"] == "good"  # broken.yml gave it: on the last good config
    assert got.config["corral"]["log"]["level"] == "error"  # other.yml is read
    assert got.dropped == {"broken.yml": [syntax]}
    assert got.roots == {"hostname": [syntax]}


def test_without_roots_and_replace_roots() -> None:
    data = {
        "hostname": "h",
        "corral": {"network": {"a": 1}, "log": {"level": "x"}},
        "network": {"version": 2},
    }
    assert without_roots(data, ["corral.network", "network"]) == {
        "hostname": "h",
        "corral": {"log": {"level": "x"}},
    }
    assert without_roots({"corral": {"network": {}}}, ["corral.network"]) == {"corral": {}}
    fallback = {"corral": {"network": {"b": 2}}}
    assert replace_roots(data, ["corral.network", "hostname", "corral"], fallback) == {
        "corral": {"network": {"b": 2}},
        "network": {"version": 2},
    }
    assert replace_roots({"hostname": "h"}, ["corral.network"], fallback) == {
        "hostname": "h",
        "corral": {"network": {"b": 2}},
    }


def test_summary_names_each_root_and_what_it_is_on() -> None:
    assert summary(
        {"corral.network": 2, "hostname": 1}, {"corral.network": ON_LAST_GOOD, "hostname": ON_DEFAULTS}
    ) == ["corral.network: 2 error(s); on the last good config", "hostname: 1 error(s); on defaults"]


# -- the store: boot, reload ----------------------------------------------------------------------------

GOOD = """#cloud-config
hostname: good
corral:
  network:
    interfaces:
      eth0: {address: 10.1.2.3/24}
"""

BROKEN = """#cloud-config
hostname: web-1
ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop]
rancher:
  docker:
    engine: docker-17.03.2-ce
  network:
    interfaces:
      eth0: {address: 10.1.2.300/24}
"""


def _store(tmp_path: Path, text: str, cmdline: str = "") -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text(text)
    return config_store(paths, cmdline)


def test_boot_applies_every_valid_domain_and_puts_the_broken_one_on_defaults(tmp_path: Path) -> None:
    store = _store(tmp_path, BROKEN, "corral.system_docker.enabled=false")
    result = store.load()
    assert [e.key for e in result.errors] == ["corral.network.interfaces.eth0.address"]
    assert store.current["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop"]
    assert store.current["hostname"] == "web-1"
    assert store.current["corral"]["system_docker"]["enabled"] is False  # the kernel command line's
    assert "network" not in store.current["corral"]  # on the defaults, which have none
    assert store.salvaged == {"corral.network": ON_DEFAULTS}
    assert [(w.key, w.message.split(":")[0]) for w in result.warnings] == [
        ("rancher.docker.engine", "not implemented")
    ]
    assert store.generation == 1
    network = Domains(store).network()  # parsed from the salvaged config, which passed every check
    assert network is store.parsed(NETWORK)


def test_reload_keeps_the_broken_domain_on_the_last_good_config(tmp_path: Path) -> None:
    store = _store(tmp_path, GOOD)
    assert store.load().ok
    good_network = Domains(store).network()
    dropin = store.dropin_dir
    dropin.mkdir()
    # cloud-config.yml (GOOD) comes after the drop-ins: the drop-in breaks eth1 and sets the host name
    store.cloud_config_path.write_text(GOOD.replace("hostname: good\n", ""))
    (dropin / "50-more.yml").write_text(
        "hostname: changed\ncorral:\n  network:\n    interfaces:\n      eth1: {address: 10.1.2.300/24}\n"
    )
    errors, changed = store.reload()
    assert [e.key for e in errors] == ["corral.network.interfaces.eth1.address"]
    assert changed == ["hostname"]
    assert store.current["hostname"] == "changed"
    assert store.current["corral"]["network"] == {"interfaces": {"eth0": {"address": "10.1.2.3/24"}}}
    assert store.salvaged == {"corral.network": ON_LAST_GOOD}
    assert Domains(store).network() == good_network
    (dropin / "50-more.yml").write_text("hostname: fixed\n")
    assert store.reload().ok and store.salvaged == {}


def test_a_root_on_the_defaults_stays_named_on_the_defaults_at_the_next_load(tmp_path: Path) -> None:
    store = _store(tmp_path, BROKEN)
    store.load()
    store.load()  # the state phase's load, with the same file
    assert store.salvaged == {"corral.network": ON_DEFAULTS}


def test_interactive_changes_are_still_rejected_whole(tmp_path: Path) -> None:
    store = _store(tmp_path, GOOD)
    store.load()
    errors = store.merge(
        "hostname: other\ncorral:\n  network:\n    interfaces:\n      eth0: {address: 300.1.1.1/24}\n"
    )
    assert errors and "300.1.1.1" in str(errors[0])
    assert "other" not in store.cloud_config_path.read_text()
    assert store.set("corral.log.level", "loud")


def test_verdict_reports_the_errors_and_what_a_boot_keeps(tmp_path: Path) -> None:
    store = _store(tmp_path, GOOD)
    result = store.verdict(BROKEN, "user.yml")
    assert [e.key for e in result.errors] == ["corral.network.interfaces.eth0.address"]
    assert result.salvage is not None and list(result.salvage.roots) == ["corral.network"]
    assert describe_verdict(result.salvage) == (
        "a boot would apply the rest; corral.network would stay on the "
        "defaults (on a running host: on the last good config)"
    )
    assert [w.key for w in result.warnings] == ["rancher.docker.engine"]
    assert store.verdict(GOOD, "good.yml").salvage is None


def test_a_broken_unit_file_costs_the_keys_that_bring_it_in_not_the_whole_config(tmp_path: Path) -> None:
    store = _store(
        tmp_path,
        "hostname: x\nssh_authorized_keys: [ssh-ed25519 AAAA]\ncorral:\n  services_include: {web: true}\n",
    )
    store.paths.units_dir.mkdir(parents=True)
    (store.paths.units_dir / "web.yml").write_text("web:\n  image: busybox\n  colour: blue\n")
    result = store.load()
    assert [(e.file, e.key) for e in result.errors] == [
        (str(store.paths.units_dir / "web.yml"), "web.colour")
    ]
    assert store.salvaged == {"corral.services": ON_DEFAULTS, "corral.services_include": ON_DEFAULTS}
    assert store.current["hostname"] == "x" and store.current["ssh_authorized_keys"] == ["ssh-ed25519 AAAA"]
    assert "web" not in store.current["corral"]["services_include"]


def test_an_error_the_judge_places_itself_costs_those_roots() -> None:
    unit_file = ConfigError("/units/web.yml", "web.colour", "unknown key")

    def judge(config: dict[str, Any], provenance: dict[str, str]) -> Judged:
        if config["corral"].get("services_include"):
            return Judged([unit_file], placed={unit_file: ("corral.services_include",)})
        return Judged()

    layers = [("defaults", DEFAULTS), ("user.yml", {"corral": {"services_include": {"web": True}}})]
    got = salvage(layers, [], DEFAULTS, DEFAULTS_PROVENANCE, judge, merge_layers)
    assert got.config is not None and "services_include" not in got.config["corral"]
    assert got.roots == {"corral.services_include": [unit_file]}
