"""Datasources: the nocloud-style file: directory, the cmdline datasource, the registry of kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import ConfigStore
from supervisor.config.datasources import (
    DatasourceContext,
    DatasourceRegistry,
    Fetched,
    default_registry,
    metadata_to_config,
)
from supervisor.paths import Paths

USER_DATA = """#cloud-config
hostname: from-user-data
ssh_authorized_keys: [ssh-ed25519 AAAAuser]
corral:
  log: {level: debug}
"""


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.sandbox(tmp_path)


def _seed(paths: Paths, user_data: str | None = USER_DATA, meta_data: str | None = None) -> Path:
    seed = paths.under("/var/lib/cloud/seed/nocloud")
    seed.mkdir(parents=True)
    if user_data is not None:
        (seed / "user-data").write_text(user_data)
    if meta_data is not None:
        (seed / "meta-data").write_text(meta_data)
    return seed


def _store(paths: Paths, extra: str = "") -> ConfigStore:
    return ConfigStore(
        paths, cmdline_text=f"corral.cloud_init.datasources=[file:/var/lib/cloud/seed/nocloud]{extra}"
    )


def test_file_datasource_user_data_and_meta_data(paths: Paths) -> None:
    seed = _seed(
        paths, meta_data="instance-id: iid-1\nlocal-hostname: from-meta\npublic-keys:\n  - ssh-rsa AAAAmeta\n"
    )
    store = _store(paths)
    assert store.reload().ok
    assert store.get("hostname") == "from-meta"  # meta-data comes after user-data
    assert store.get("ssh_authorized_keys") == ["ssh-rsa AAAAmeta"]
    assert store.get("corral.log.level") == "debug"
    assert store.provenance["hostname"] == str(seed / "meta-data")
    assert store.provenance["corral.log.level"] == str(seed / "user-data")


def test_datasource_beats_cmdline_and_files(paths: Paths) -> None:
    _seed(paths)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text("hostname: from-file\ncorral: {log: {level: error}}\n")
    store = _store(paths, " corral.log.level=warning")
    assert store.reload().ok
    assert store.get("hostname") == "from-user-data"
    assert store.get("corral.log.level") == "debug"


def test_datasources_can_be_picked_in_a_file(paths: Paths) -> None:
    _seed(paths)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text(
        "corral:\n  cloud_init:\n    datasources: ['file:/var/lib/cloud/seed/nocloud']\n"
    )
    store = ConfigStore(paths, cmdline_text="")
    assert store.reload().ok
    assert store.get("hostname") == "from-user-data"


@pytest.mark.parametrize(
    ("meta", "keys"),
    [
        ("public-keys: ssh-rsa A1\n", ["ssh-rsa A1"]),
        ("public-keys: |\n  ssh-rsa A1\n  ssh-rsa A2\n", ["ssh-rsa A1", "ssh-rsa A2"]),
        ("public-keys: [ssh-rsa A1, ssh-rsa A2]\n", ["ssh-rsa A1", "ssh-rsa A2"]),
        (
            "public-keys:\n  0=me: {openssh-key: ssh-rsa A1}\n  1=you: ssh-rsa A2\n",
            ["ssh-rsa A1", "ssh-rsa A2"],
        ),
    ],
)
def test_meta_data_public_key_shapes(meta: str, keys: list[str]) -> None:
    config, errors = metadata_to_config(meta, "meta-data")
    assert errors == []
    assert config == {"ssh_authorized_keys": keys}


def test_meta_data_errors_name_the_meta_data_key() -> None:
    _, errors = metadata_to_config("local-hostname: [a]\npublic-keys: 5\n", "md")
    assert [(e.file, e.key) for e in errors] == [("md", "local-hostname"), ("md", "public-keys")]


def test_invalid_user_data_costs_its_key_only(paths: Paths) -> None:
    seed = _seed(paths, user_data="#cloud-config\ncorral:\n  debug: yes please\n")
    store = _store(paths)
    errors, _ = store.reload()
    assert [(e.file, e.key) for e in errors] == [(str(seed / "user-data"), "corral.debug")]
    assert store.current["corral"]["debug"] is False  # on the defaults; the command line is applied
    assert store.current["corral"]["cloud_init"]["datasources"] == ["file:/var/lib/cloud/seed/nocloud"]
    assert store.salvaged == {"corral.debug": "defaults"}


def test_missing_directory_is_a_warning_not_an_error(paths: Paths) -> None:
    store = _store(paths)
    result = store.load()
    assert result.errors == []
    assert any("not found" in w.message for w in result.warnings)


def test_script_user_data_is_skipped_with_a_warning(paths: Paths) -> None:
    _seed(paths, user_data="#!/bin/sh\necho hi\n")
    result = _store(paths).load()
    assert result.errors == []
    assert [w.message for w in result.warnings] == ["user-data is a script: not supported yet, ignored"]


def test_unknown_kind_is_an_error_on_the_datasources_key(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    cc = paths.config_dir / "cloud-config.yml"
    cc.write_text("corral:\n  cloud_init:\n    datasources: [cmdline, ec2]\n")
    errors = ConfigStore(paths, cmdline_text="").reload().errors
    assert [(e.file, e.key) for e in errors] == [(str(cc), "corral.cloud_init.datasources[1]")]
    assert "unknown datasource kind 'ec2' (known: cmdline, file)" in errors[0].message


def test_file_kind_needs_an_absolute_directory(paths: Paths) -> None:
    errors = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[file:relative]").reload().errors
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral.cloud_init.datasources[0]")]


def test_cmdline_datasource_reads_cloud_config_url(paths: Paths) -> None:
    target = paths.under("/boot/user.yml")
    target.parent.mkdir(parents=True)
    target.write_text("#cloud-config\nhostname: from-url\n")
    for url in ("file:///boot/user.yml", "/boot/user.yml"):
        store = ConfigStore(
            paths, cmdline_text=f"corral.cloud_init.datasources=[cmdline] cloud-config-url={url}"
        )
        assert store.reload().ok
        assert store.get("hostname") == "from-url"
        assert store.provenance["hostname"] == str(target)


def test_cmdline_datasource_network_url_is_a_warning(paths: Paths) -> None:
    store = ConfigStore(
        paths, cmdline_text="corral.cloud_init.datasources=[cmdline] cloud-config-url=http://x/y"
    )
    result = store.load()
    assert result.errors == []
    assert "only file:// URLs" in result.warnings[0].message


def test_registry_accepts_new_kinds(paths: Paths) -> None:
    class Static:
        def __init__(self, arg: str) -> None:
            self.spec = f"static:{arg}"
            self.arg = arg

        def fetch(self, ctx: DatasourceContext) -> Fetched:
            return Fetched(user_data=[(self.spec, f"hostname: {self.arg}\n")])

    registry = default_registry()
    registry.register("static", Static)
    assert registry.kinds() == ["cmdline", "file", "static"]
    store = ConfigStore(
        paths, cmdline_text="corral.cloud_init.datasources=[static:edge-9]", registry=registry
    )
    assert store.reload().ok
    assert store.get("hostname") == "edge-9"
    assert store.provenance["hostname"] == "static:edge-9"
    # registries are per store: the default one does not know the new kind
    assert "static" not in default_registry().kinds()
    assert DatasourceRegistry().kinds() == []
