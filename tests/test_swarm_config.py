"""corral.swarm: parsed into a SwarmConfig, every bad value named by its key path, the join token a secret."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.config.secrets import REDACTED, redact, split_secrets
from supervisor.config.store import ConfigStore
from supervisor.domain_checks import Domains, domain_checks
from supervisor.paths import Paths
from swarm.config import DEFAULT_LISTEN, TOKEN, InitSpec, JoinSpec, parse_swarm_config, token_problem

TOKEN_OK = "SWMTKN-1-" + "3" * 50 + "-" + "a" * 25


def parse(swarm: Any) -> Any:
    return parse_swarm_config({"corral": {"swarm": swarm}}, "cloud-config.yml")


def errors(swarm: Any) -> dict[str, str]:
    result = parse(swarm)
    assert result.swarm is None
    return {e.key: e.message for e in result.errors}


def test_no_swarm_key_is_no_swarm() -> None:
    assert parse_swarm_config({"corral": {}}).swarm is None
    assert parse_swarm_config({}).errors == ()


def test_init_parses_with_its_defaults() -> None:
    swarm = parse({"init": {"advertise_addr": "10.0.0.1", "default_addr_pool": ["10.20.0.0/16"],
                            "data_path_port": 4790},
                   "node_labels": {"zone": "a", "gpu": True, "rack": 3}, "availability": "drain"}).swarm
    assert swarm.role == "manager"
    assert swarm.init == InitSpec(advertise_addr="10.0.0.1", listen_addr=DEFAULT_LISTEN,
                                  default_addr_pool=("10.20.0.0/16",), data_path_port=4790)
    assert swarm.join is None
    assert swarm.label_map == {"zone": "a", "gpu": "true", "rack": "3"}
    assert swarm.availability == "drain"


def test_an_empty_init_is_a_first_manager_on_dockerds_defaults() -> None:
    swarm = parse({"init": None}).swarm
    assert swarm.role == "manager" and swarm.init == InitSpec() and swarm.labels is None
    assert swarm.availability is None


def test_join_parses_as_a_worker_by_default() -> None:
    swarm = parse({"join": {"remote_addrs": ["10.0.0.1:2377", "manager1", "[fd00::1]:2377"],
                            "token": TOKEN_OK}}).swarm
    assert swarm.role == "worker"
    remotes = ("10.0.0.1:2377", "manager1", "[fd00::1]:2377")
    assert swarm.join == JoinSpec(remote_addrs=remotes, token=TOKEN_OK)
    assert TOKEN_OK not in repr(swarm)  # a repr in a log line never shows the token
    manager = parse({"role": "manager", "join": {"remote_addrs": ["m"], "token_file": "/run/swarm-token"}})
    assert manager.swarm.role == "manager" and manager.swarm.join.token_file == "/run/swarm-token"


@pytest.mark.parametrize(("swarm", "key", "words"), [
    ({"init": {"advertise_addr": "10.0.0.300"}}, "corral.swarm.init.advertise_addr",
     "not an address of this node"),
    ({"init": {"listen_addr": "0.0.0.0:99999"}}, "corral.swarm.init.listen_addr",
     "not an address of this node"),
    ({"init": {"default_addr_pool": ["10.20.0.1/16"]}}, "corral.swarm.init.default_addr_pool[0]",
     "not a network"),
    ({"init": {"data_path_port": 80}}, "corral.swarm.init.data_path_port", "out of range (1024 to 49151)"),
    ({"init": {"advertise": "eth0"}}, "corral.swarm.init.advertise", "did you mean"),
    ({"join": {"remote_addrs": ["10.0.0.1:2377"], "token": "SWMTKN-1-abc"}}, "corral.swarm.join.token",
     "not a swarm join token"),
    ({"join": {"remote_addrs": ["10.0.0.1"], "token": "hunter2"}}, "corral.swarm.join.token",
     "does not start with SWMTKN-1-"),
    ({"join": {"remote_addrs": ["10.0.0.256:2377"], "token": TOKEN_OK}}, "corral.swarm.join.remote_addrs[0]",
     "not a manager's address"),
    ({"join": {"remote_addrs": ["-bad-:2377"], "token": TOKEN_OK}}, "corral.swarm.join.remote_addrs[0]",
     "not a manager's address"),
    ({"join": {"remote_addrs": [], "token": TOKEN_OK}}, "corral.swarm.join.remote_addrs", "at least one"),
    ({"join": {"remote_addrs": ["m"]}}, "corral.swarm.join", "token"),
    ({"join": {"remote_addrs": ["m"], "token": TOKEN_OK, "token_file": "/x"}}, "corral.swarm.join.token_file",
     "not both"),
    ({"join": {"remote_addrs": ["m"], "token_file": "relative"}}, "corral.swarm.join.token_file",
     "not an absolute path"),
    ({"role": "manger", "init": {}}, "corral.swarm.role", "did you mean 'manager'"),
    ({"role": "worker", "init": {}}, "corral.swarm.role", "role must be manager"),
    ({"init": {}, "join": {"remote_addrs": ["m"], "token": TOKEN_OK}}, "corral.swarm.join", "not both"),
    ({"node_labels": {"a": "b"}}, "corral.swarm", "give init"),
    ({"init": {}, "availability": "paused"}, "corral.swarm.availability", "did you mean 'pause'"),
    ({"init": {}, "node_labels": {"a b": "c"}}, 'corral.swarm.node_labels["a b"]', "not a label name"),
    ({"init": {}, "node_labels": ["a"]}, "corral.swarm.node_labels", "expected a map"),
])
def test_a_bad_value_is_named_by_its_key(swarm: Any, key: str, words: str) -> None:
    found = errors(swarm)
    assert key in found, found
    assert words in found[key]
    assert TOKEN_OK not in found[key] and "hunter2" not in found[key]  # a token is never quoted


def test_a_worker_with_labels_is_warned_that_a_manager_sets_them() -> None:
    result = parse({"join": {"remote_addrs": ["m"], "token": TOKEN_OK}, "node_labels": {"a": "b"}})
    assert result.swarm is not None
    assert [w.key for w in result.warnings] == ["corral.swarm.node_labels"]
    assert "from a manager" in result.warnings[0].message


BASE36 = string.digits + string.ascii_lowercase


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=BASE36 + "-_ABCZ", max_size=90))
def test_the_token_check_agrees_with_dockers_shape(tail: str) -> None:
    text = "SWMTKN-1-" + tail
    parts = tail.split("-")
    shaped = (len(parts) == 2 and len(parts[0]) == 50 and len(parts[1]) == 25
              and all(c in BASE36 for c in parts[0] + parts[1]))
    assert (token_problem(text) is None) == shaped
    assert (TOKEN.fullmatch(text) is not None) == shaped


@settings(max_examples=100, deadline=None)
@given(st.ip_addresses(), st.one_of(st.none(), st.integers(min_value=1, max_value=65535)))
def test_every_ip_address_with_or_without_a_port_is_a_node_address(address: Any, port: int | None) -> None:
    text = str(address)
    if port is not None:
        text = f"[{text}]:{port}" if address.version == 6 else f"{text}:{port}"
    swarm = parse({"init": {"advertise_addr": text}}).swarm
    assert swarm is not None and swarm.init.advertise_addr == text


# ---- through the store: schema, domain check, secrets ------------------------------------------------
def store(tmp_path: Path, doc: dict[str, Any]) -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (paths.config_dir / "cloud-config.yml").write_text("#cloud-config\n" + yaml.safe_dump(doc))
    return ConfigStore(paths, cmdline_text="", checks=domain_checks(paths))


def test_the_store_gives_the_reconciler_its_typed_swarm(tmp_path: Path) -> None:
    s = store(tmp_path, {"hostname": "h", "corral": {"swarm": {"init": {"advertise_addr": "eth1"}}}})
    assert s.load().errors == []
    swarm = Domains(s).swarm()
    assert swarm is not None and swarm.init == InitSpec(advertise_addr="eth1")
    assert Domains(store(tmp_path / "none", {"hostname": "h"})).swarm() is None


def test_a_bad_swarm_costs_only_corral_swarm_at_boot(tmp_path: Path) -> None:
    s = store(tmp_path, {"hostname": "h", "corral": {"swarm": {"init": {"data_path_port": 5}}}})
    result = s.load()
    assert [e.key for e in result.errors] == ["corral.swarm.init.data_path_port"]
    assert result.errors[0].file.endswith("cloud-config.yml")
    assert s.current["hostname"] == "h" and "swarm" not in s.current.get("corral", {})
    assert s.salvaged == {"corral.swarm": "defaults"}


def test_an_interactive_change_with_a_bad_token_is_rejected_whole(tmp_path: Path) -> None:
    s = store(tmp_path, {"hostname": "h"})
    s.load()
    problems = s.set("corral.swarm", '{join: {remote_addrs: ["10.0.0.1"], token: "SWMTKN-1-nope"}}')
    assert [p.key for p in problems] == ["corral.swarm.join.token"]
    assert "swarm" not in s.current.get("corral", {})


def test_the_join_token_is_a_secret() -> None:
    doc = {"corral": {"swarm": {"join": {"remote_addrs": ["m"], "token": TOKEN_OK, "token_file": "/x"}}}}
    public, private = split_secrets(doc)
    assert private == {"corral": {"swarm": {"join": {"token": TOKEN_OK}}}}
    assert public["corral"]["swarm"]["join"] == {"remote_addrs": ["m"], "token_file": "/x"}
    assert redact(doc)["corral"]["swarm"]["join"]["token"] == REDACTED


def test_config_set_keeps_the_token_in_the_private_file(tmp_path: Path) -> None:
    s = store(tmp_path, {"hostname": "h"})
    s.load()
    value = f'{{role: manager, join: {{remote_addrs: ["10.0.0.1"], token: "{TOKEN_OK}"}}}}'
    assert s.set("corral.swarm", value) == []
    conf = Paths.sandbox(tmp_path).config_dir
    assert TOKEN_OK not in (conf / "cloud-config.yml").read_text()
    assert TOKEN_OK in (conf / "private.yml").read_text()
    assert s.export(user_only=True)["corral"]["swarm"]["join"]["token"] == REDACTED
