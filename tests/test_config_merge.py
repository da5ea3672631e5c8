"""Merging: later wins, maps merge, lists and scalars replace; the layer order of the store;
provenance; the rancher: alias; diff (what `set` persists)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ConfigStore
from supervisor.config.merge import changed_keys, diff, merge, merge_layers, same
from supervisor.paths import Paths


def test_maps_merge_recursively() -> None:
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "x": 1}
    over = {"a": {"c": {"d": 20}, "f": 4}}
    assert merge(base, over) == {"a": {"b": 1, "c": {"d": 20, "e": 3}, "f": 4}, "x": 1}


def test_lists_and_scalars_replace() -> None:
    assert merge({"l": [1, 2, 3]}, {"l": [9]}) == {"l": [9]}
    assert merge({"l": [1, 2]}, {"l": []}) == {"l": []}
    assert merge({"s": "a"}, {"s": "b"}) == {"s": "b"}
    assert merge({"m": {"a": 1}}, {"m": "flat"}) == {"m": "flat"}
    assert merge({"m": "flat"}, {"m": {"a": 1}}) == {"m": {"a": 1}}
    assert merge({"m": [{"a": 1}]}, {"m": [{"b": 2}]}) == {"m": [{"b": 2}]}


def test_merge_does_not_touch_its_inputs() -> None:
    base = {"a": {"b": [1]}}
    over = {"a": {"c": {"d": 1}}}
    snapshot = copy.deepcopy((base, over))
    out = merge(base, over)
    out["a"]["b"].append(2)
    out["a"]["c"]["d"] = 5
    assert (base, over) == snapshot


def test_merge_layers_records_which_source_gave_each_leaf() -> None:
    config, provenance = merge_layers(
        [
            (
                "defaults",
                {"hostname": "a", "corral": {"log": {"level": "info", "keep": 5}, "modules": ["x"]}},
            ),
            ("file", {"corral": {"log": {"level": "debug"}, "modules": ["y", "z"]}}),
            ("cmdline", {"corral": {"log": "flat"}}),
        ]
    )
    assert config == {"hostname": "a", "corral": {"log": "flat", "modules": ["y", "z"]}}
    assert provenance == {"hostname": "defaults", "corral.log": "cmdline", "corral.modules": "file"}


def test_same_tells_types_apart() -> None:
    assert not same(True, 1)
    assert not same(1, 1.0)
    assert not same({"a": [True]}, {"a": [1]})
    assert same({"a": [1, {"b": "c"}]}, {"a": [1, {"b": "c"}]})


@pytest.mark.parametrize(
    ("base", "overlay"),
    [
        ({"a": 1, "m": {"x": 1, "y": 2}}, {"m": {"x": 1}}),
        ({"a": 1, "m": {"x": 1, "y": 2}}, {"m": {"x": 5}, "n": [1]}),
        ({"l": [1, 2]}, {"l": [1, 2]}),
        ({"l": [1, 2]}, {"l": [2, 1]}),
        ({"b": 1}, {"b": True}),
        ({"m": {"x": 1}}, {"m": "scalar"}),
    ],
)
def test_diff_is_the_smallest_overlay(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    new = merge(base, overlay)
    d = diff(new, base)
    assert merge(base, d) == new
    for key, value in d.items():  # nothing in the diff is already in the base
        assert key not in base or not same(base[key], value)


def test_changed_keys_go_one_level_down_under_corral() -> None:
    old = {"hostname": "a", "corral": {"log": {"level": "info"}, "debug": False}}
    new = {
        "hostname": "b",
        "corral": {"log": {"level": "debug"}, "debug": False, "modules": []},
        "runcmd": [],
    }
    assert changed_keys(old, new) == ["corral.log", "corral.modules", "hostname", "runcmd"]
    assert changed_keys(old, old) == []


# -- the store's layer order -----------------------------------------------------------------------------


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    paths = Paths.sandbox(tmp_path)
    (paths.config_dir / "cloud-config.d").mkdir(parents=True)
    return paths


LAYERS = [
    "defaults",
    "cloud-config.d/10",
    "cloud-config.d/20",
    "cloud-config.yml",
    "private.yml",
    "cmdline",
    "user-data",
    "meta-data",
]


def _write_layers(paths: Paths, upto: int) -> str:
    """Each layer up to index ``upto`` sets corral.shutdown_grace to its index (and hostname where it
    can). Returns the kernel command line."""
    conf = paths.config_dir
    ds = paths.under("/ds")
    ds.mkdir()
    cmdline = "corral.cloud_init.datasources=[file:/ds]" if upto >= 6 else ""
    files = {
        1: conf / "cloud-config.d" / "10-first.yml",
        2: conf / "cloud-config.d" / "20-second.yml",
        3: conf / "cloud-config.yml",
        4: conf / "private.yml",
        6: ds / "user-data",
    }
    for index, path in files.items():
        if index <= upto:
            path.write_text(f"#cloud-config\nhostname: layer-{index}\ncorral:\n  shutdown_grace: {index}\n")
    if upto >= 5:
        cmdline += " corral.shutdown_grace=5"
    if upto >= 7:
        (ds / "meta-data").write_text("instance-id: i-1\nlocal-hostname: layer-7\n")
    return cmdline


@pytest.mark.parametrize("upto", range(len(LAYERS)), ids=LAYERS)
def test_each_layer_overrides_the_previous(paths: Paths, upto: int) -> None:
    cmdline = _write_layers(paths, upto)
    store = ConfigStore(paths, cmdline_text=cmdline)
    result = store.load()
    assert result.errors == []
    expected_grace = {0: 10, 7: 6}.get(upto, upto)  # meta-data has no shutdown_grace: user-data's stays
    assert result.config["corral"]["shutdown_grace"] == expected_grace
    expected_host = {0: "corral", 5: "layer-4"}.get(upto, f"layer-{upto}")  # no hostname on the cmdline
    assert result.config["hostname"] == expected_host


def test_dropins_are_read_in_name_order_and_maps_merge_lists_replace(paths: Paths) -> None:
    d = paths.config_dir / "cloud-config.d"
    (d / "b.yml").write_text("corral:\n  modules: [b]\n  environment: {B: b, SHARED: b}\n")
    (d / "a.yml").write_text("corral:\n  modules: [a1, a2]\n  environment: {A: a, SHARED: a}\n")
    (d / "c.yaml").write_text("corral: {debug: true}\n")  # not *.yml: ignored
    (paths.config_dir / "cloud-config.yml").write_text("corral:\n  environment: {C: c}\n")
    store = ConfigStore(paths, cmdline_text="")
    assert store.reload().ok
    assert store.get("corral.modules") == ["b"]
    assert store.get("corral.environment") == {"A": "a", "B": "b", "SHARED": "b", "C": "c"}
    assert store.get("corral.debug") is False
    assert store.provenance["corral.environment.SHARED"] == str(d / "b.yml")
    assert store.provenance["corral.log.level"].endswith("defaults/00-base.yml")


def test_rancher_alias_in_a_file_merges_with_corral_in_another(paths: Paths) -> None:
    (paths.config_dir / "cloud-config.d" / "10.yml").write_text("rancher:\n  log: {level: error}\n")
    (paths.config_dir / "cloud-config.yml").write_text("corral:\n  log: {keep: 1}\n")
    store = ConfigStore(paths, cmdline_text="rancher.debug")
    assert store.reload().ok
    assert "rancher" not in store.current
    assert store.get("corral.log") == {"level": "error", "keep": 1, "max_bytes": 10485760}
    assert store.get("rancher.debug") is True  # get accepts the alias too


def test_rancher_and_corral_in_one_file_is_an_error(paths: Paths) -> None:
    (paths.config_dir / "cloud-config.yml").write_text("rancher: {debug: true}\ncorral: {debug: false}\n")
    errors = ConfigStore(paths, cmdline_text="").reload().errors
    assert [(e.key, e.line) for e in errors] == [("rancher", 1)]


def test_one_invalid_layer_costs_only_the_key_it_breaks(paths: Paths) -> None:
    (paths.config_dir / "cloud-config.yml").write_text("hostname: new-name\n")
    (paths.config_dir / "cloud-config.d" / "broken.yml").write_text("corral: {debug: maybe}\n")
    store = ConfigStore(paths, cmdline_text="")
    errors, changed = store.reload()
    assert [e.file for e in errors] == [str(paths.config_dir / "cloud-config.d" / "broken.yml")]
    assert changed == ["hostname"]
    assert store.current["hostname"] == "new-name"
    assert store.current["corral"]["debug"] is False  # on the defaults
    assert store.salvaged == {"corral.debug": "defaults"}
