"""RancherOS's booleans at keys corral types otherwise (supervisor/config/rancheros_values.py):
``rancher.log: true`` and ``rancher.state.wait: true`` are accepted with a warning naming the key and
what corral does, with one verdict for boot, ``config validate``, ``set``, ``merge`` and the kernel
command line; any other wrong value stays an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.errors import ConfigError
from supervisor.config.store import ConfigStore
from supervisor.domain_checks import config_store
from supervisor.paths import Paths

ROS = """#cloud-config
hostname: ros-1
ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop]
rancher:
  log: true
  state:
    dev: LABEL=RANCHER_STATE
    wait: true
"""


def _store(tmp_path: Path, text: str = "", cmdline: str = "") -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    if text:
        (paths.config_dir / "cloud-config.yml").write_text(text)
    return config_store(paths, cmdline)


def _named(warnings: list[ConfigError]) -> list[tuple[str, str]]:
    return [(w.key, w.message) for w in warnings if "RancherOS's boolean" in w.message]


def test_boot_takes_rancheros_booleans_with_a_warning_each_and_corral_defaults(tmp_path: Path) -> None:
    store = _store(tmp_path, ROS)
    result = store.load()
    assert result.ok, result.errors
    warned = _named(result.warnings)
    assert [key for key, _ in warned] == ["rancher.log", "rancher.state.wait"]
    assert "corral always keeps its journal" in warned[0][1]
    assert "corral.state.wait is a number of seconds" in warned[1][1]
    assert store.current["hostname"] == "ros-1"
    assert store.current["corral"]["state"]["dev"] == "LABEL=RANCHER_STATE"
    assert "wait" not in store.current["corral"]["state"]  # corral's default wait holds
    assert store.current["corral"]["log"] == _store(tmp_path / "d").read().config["corral"]["log"]


def test_a_broken_domain_beside_them_keeps_the_warnings_at_boot(tmp_path: Path) -> None:
    store = _store(tmp_path, ROS + "  network:\n    interfaces:\n      eth0: {address: 10.1.2.300/24}\n")
    result = store.load()
    assert [e.key for e in result.errors] == ["corral.network.interfaces.eth0.address"]  # the domain check's
    assert [key for key, _ in _named(result.warnings)] == ["rancher.log", "rancher.state.wait"]
    assert store.current["hostname"] == "ros-1"


def test_config_validate_gives_the_same_verdict(tmp_path: Path) -> None:
    result = _store(tmp_path).verdict(ROS, "ros.yml")
    assert result.ok, result.errors
    assert [(w.file, w.key) for w in result.warnings if "RancherOS's boolean" in w.message] == [
        ("ros.yml", "rancher.log"), ("ros.yml", "rancher.state.wait")]


@pytest.mark.parametrize(("key", "value"), [("rancher.state.wait", "true"), ("corral.log", "false"),
                                            ("rancher.log", "true"), ("corral.state.wait", "false")])
def test_set_and_merge_accept_the_boolean(tmp_path: Path, key: str, value: str) -> None:
    store = _store(tmp_path)
    assert store.load().ok
    assert store.set(key, value) == []
    # said (``config set`` names the key as corral's: ``rancher.`` is its alias)
    assert [k for k, _ in _named(store.last_edit_warnings)] == [key.replace("rancher.", "corral.", 1)]
    root, *rest = key.split(".")
    doc = f"{root}:\n" + "".join(f"{'  ' * (i + 1)}{seg}:\n" for i, seg in enumerate(rest[:-1]))
    doc += f"{'  ' * len(rest)}{rest[-1]}: {value}\n"
    assert store.merge(doc) == []
    assert len(_named(store.last_edit_warnings)) == 1
    assert store.reload().ok
    assert store.set("hostname", "plain") == [] and store.last_edit_warnings == []  # one change's own


def test_a_bare_rancher_state_wait_on_the_kernel_command_line_is_a_warning(tmp_path: Path) -> None:
    store = _store(tmp_path, cmdline="rancher.state.dev=LABEL=RANCHER_STATE rancher.state.wait")
    result = store.load()
    assert result.ok, result.errors
    assert [(w.file, w.key) for w in result.warnings if "RancherOS's boolean" in w.message] == [
        ("cmdline", "corral.state.wait")]
    assert store.current["corral"]["state"] == {"dev": "LABEL=RANCHER_STATE"}


@pytest.mark.parametrize(("text", "key"), [
    ("rancher:\n  state:\n    wait: soon\n", "rancher.state.wait"),
    ("corral:\n  log: loud\n", "corral.log"),
    ("corral:\n  state:\n    wait: -1\n", "corral.state.wait"),
])
def test_other_wrong_values_stay_errors(tmp_path: Path, text: str, key: str) -> None:
    store = _store(tmp_path)
    result = store.verdict(text, "bad.yml")
    assert [e.key for e in result.errors] == [key]
    assert store.merge(text)
