"""The config corpus: every invalid file is reported naming file, key path and reason, and the parts
with errors stay on the last good config; every valid file is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config import ConfigStore
from supervisor.config.keypath import get_path, parse_path
from supervisor.config.store import validate_file
from supervisor.paths import Paths

CORPUS = Path(__file__).parent / "config_corpus"
INVALID = sorted((CORPUS / "invalid").glob("*.yml"))
VALID = sorted((CORPUS / "valid").glob("*.yml"))
EXPECTED: dict[str, list[str]] = yaml.safe_load((CORPUS / "expected-invalid.yml").read_text())

GOOD = """#cloud-config
hostname: good-host
corral:
  log:
    level: warning
  environment:
    KEEP: "me"
"""


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text(GOOD)
    store = ConfigStore(paths, cmdline_text="")
    assert store.reload().ok
    assert store.current["hostname"] == "good-host"
    return store


def test_corpus_is_big_enough_and_every_file_has_an_expectation() -> None:
    assert len(INVALID) >= 30
    assert {p.name for p in INVALID} == set(EXPECTED)
    assert len(VALID) >= 3


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_file_costs_only_the_parts_with_errors(store: ConfigStore, case: Path) -> None:
    """At reload each error costs its domain root, which stays on the last good config; a file whose
    error has no root (a syntax error) is not read, and what it gave stays on the last good config."""
    key, fragment = EXPECTED[case.name]
    before = store.current
    target = store.cloud_config_path
    target.write_text(case.read_text())

    errors, _ = store.reload()

    assert errors, f"{case.name} was accepted"
    matching = [e for e in errors if e.file == str(target) and e.key == key]
    assert matching, f"no error on {key!r}: {[str(e) for e in errors]}"
    assert any(fragment in e.message for e in matching), [str(e) for e in matching]
    assert all(str(e).startswith(f"{target}: ") for e in errors)
    assert store.last_errors == errors
    assert store.salvaged, "no part named as kept on the last good config"
    after = store.current
    for root in store.salvaged:
        path = parse_path(root)
        assert _at(after, path) == _at(before, path), root
    assert set(store.salvaged.values()) == {"the last good config"}


def _at(config: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    try:
        return get_path(config, path)
    except KeyError:
        return None


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.name)
def test_valid_file_is_accepted(store: ConfigStore, case: Path) -> None:
    store.cloud_config_path.write_text(case.read_text())
    errors, _ = store.reload()
    assert errors == []
    assert "rancher" not in store.current
    assert validate_file(store, case) == []


def test_rancheros_file_lands_under_corral(store: ConfigStore) -> None:
    store.cloud_config_path.write_text((CORPUS / "valid" / "rancheros-basic.yml").read_text())
    assert store.reload().ok
    assert store.get("corral.sysctl") == {"net.ipv4.ip_forward": 1, "kernel.domainname": "example.com"}
    assert store.get("corral.state.autoformat") == ["/dev/sda", "/dev/vda"]
    assert store.get("write_files[0].permissions") == "0755"
    assert store.get("corral.log.level") == "info"  # defaults still apply under the alias


def test_octal_literal_mode_is_accepted_and_canonical(store: ConfigStore) -> None:
    store.cloud_config_path.write_text((CORPUS / "valid" / "corral-full.yml").read_text())
    assert store.reload().ok
    assert [f["permissions"] for f in store.get("write_files")] == ["0644", "0644"]
    assert store.get("corral.environment.ON") == "on"


def test_merge_keys_are_not_duplicates(store: ConfigStore) -> None:
    store.cloud_config_path.write_text((CORPUS / "valid" / "merge-keys.yml").read_text())
    assert store.reload().ok
    assert store.get("corral.log") == {"level": "error", "keep": 3, "max_bytes": 10485760}
