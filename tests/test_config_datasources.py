"""Datasources: the nocloud-style file: directory, the cmdline datasource, the registry of kinds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from supervisor.config import ConfigStore
from supervisor.config.datasources import (
    DatasourceContext,
    DatasourceRegistry,
    Fetched,
    MediumRead,
    default_registry,
    metadata_to_config,
)
from supervisor.config.errors import ConfigError
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
    # meta-data's keys are added to the user-data's, as cloud-init authorizes both
    assert store.get("ssh_authorized_keys") == ["ssh-ed25519 AAAAuser", "ssh-rsa AAAAmeta"]
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
    cc.write_text("corral:\n  cloud_init:\n    datasources: [cmdline, gce]\n")
    errors = ConfigStore(paths, cmdline_text="").reload().errors
    assert [(e.file, e.key) for e in errors] == [(str(cc), "corral.cloud_init.datasources[1]")]
    assert "unknown datasource kind 'gce' (known: cmdline, configdrive, ec2, file, nocloud, url)" in \
        errors[0].message


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
    assert registry.kinds() == ["cmdline", "configdrive", "ec2", "file", "nocloud", "static", "url"]
    store = ConfigStore(
        paths, cmdline_text="corral.cloud_init.datasources=[static:edge-9]", registry=registry
    )
    assert store.reload().ok
    assert store.get("hostname") == "edge-9"
    assert store.provenance["hostname"] == "static:edge-9"
    # registries are per store: the default one does not know the new kind
    assert "static" not in default_registry().kinds()
    assert DatasourceRegistry().kinds() == []


# -- file: a file (RancherOS), configdrive:/dir, and the disk datasources through a MediaReader ----------


def test_file_datasource_reads_a_cloud_config_file(paths: Paths) -> None:
    """RancherOS's ``file:/var/lib/rancher/conf/user_config.yml``: the file is the user-data."""
    target = paths.under("/var/lib/rancher/conf/user_config.yml")
    target.parent.mkdir(parents=True)
    target.write_text("#cloud-config\nhostname: from-rancher-file\n")
    store = ConfigStore(
        paths, cmdline_text="rancher.cloud_init.datasources=[file:/var/lib/rancher/conf/user_config.yml]"
    )
    result = store.load()
    assert result.errors == [] and result.warnings == []
    assert store.get("hostname") == "from-rancher-file"
    assert store.provenance["hostname"] == str(target)
    assert result.notes == ["file:/var/lib/rancher/conf/user_config.yml: a cloud-config file"]


def test_file_directory_reads_network_config_and_says_what_it_found(paths: Paths) -> None:
    seed = _seed(paths, meta_data="local-hostname: seeded\n")
    (seed / "network-config").write_text("version: 2\nethernets: {eth0: {dhcp4: true}}\n")
    result = _store(paths).load()
    assert result.errors == []
    assert result.config["network"] == {"version": 2, "ethernets": {"eth0": {"dhcp4": True}}}
    assert result.provenance["network.version"] == str(seed / "network-config")
    assert result.notes == ["file:/var/lib/cloud/seed/nocloud: user-data, meta-data, network-config"]


def test_broken_meta_data_is_a_warning_and_the_user_data_still_counts(paths: Paths) -> None:
    _seed(paths, meta_data="local-hostname: [not, a, name]\n")
    store = _store(paths)
    result = store.load()
    assert result.errors == []
    assert [w.key for w in result.warnings] == ["local-hostname"]
    assert store.get("hostname") == "from-user-data"


OPENSTACK_META = '{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "os-host", ' \
    '"public_keys": {"mykey": "ssh-ed25519 AAAAos"}}'
NETWORK_DATA = '{"links": [{"id": "tap0", "type": "ovs", "ethernet_mac_address": "fa:16:3e:00:00:01", ' \
    '"mtu": 1450}], "networks": [{"id": "n0", "link": "tap0", "type": "ipv4_dhcp"}]}'


def test_configdrive_directory(paths: Paths) -> None:
    root = paths.under("/mnt/cd/openstack/latest")
    root.mkdir(parents=True)
    (root / "user_data").write_text("#cloud-config\ncorral: {log: {level: debug}}\n")
    (root / "meta_data.json").write_text(OPENSTACK_META)
    (root / "network_data.json").write_text(NETWORK_DATA)
    store = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[configdrive:/mnt/cd]")
    result = store.load()
    assert result.errors == [] and result.warnings == []
    assert store.get("hostname") == "os-host"
    assert store.get("ssh_authorized_keys") == ["ssh-ed25519 AAAAos"]
    assert store.get("corral.log.level") == "debug"
    assert store.get("network.ethernets.nic0") == {"match": {"macaddress": "fa:16:3e:00:00:01"}, "mtu": 1450,
                                                   "dhcp4": True}
    assert result.notes == ["configdrive:/mnt/cd: user_data, meta_data.json, network_data.json "
                            "(uuid 83679162-1378-4288-a2d4-70e13ec132aa)"]


class FakeMedia:
    """A MediaReader answering from a dict: label set -> MediumRead (the real one: storage/media.py)."""

    def __init__(self, found: dict[str, MediumRead]) -> None:
        self.found = found
        self.asked: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def read(self, labels: Sequence[str], names: Sequence[str]) -> MediumRead:
        self.asked.append((tuple(labels), tuple(names)))
        return self.found.get(labels[0], MediumRead())


def test_nocloud_medium(paths: Paths) -> None:
    media = FakeMedia({"cidata": MediumRead(device="/dev/sr0", label="cidata", fstype="iso9660", files={
        "user-data": USER_DATA, "meta-data": "instance-id: iid-9\nlocal-hostname: cd-host\n",
        "network-config": "version: 2\nethernets: {eth0: {dhcp4: true}}\n"})})
    store = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[nocloud]", media=media)
    result = store.load()
    assert result.errors == [] and result.warnings == []
    assert media.asked == [(("cidata", "CIDATA"), ("user-data", "meta-data", "network-config"))]
    assert store.get("hostname") == "cd-host"
    assert store.provenance["hostname"] == "/dev/sr0:meta-data"
    assert store.provenance["corral.log.level"] == "/dev/sr0:user-data"
    assert store.get("network.ethernets.eth0.dhcp4") is True
    assert result.notes == ["nocloud: /dev/sr0 (label cidata): user-data, meta-data, network-config "
                            "(instance-id iid-9)"]


def test_configdrive_medium_and_rancher_spelling(paths: Paths) -> None:
    media = FakeMedia({"config-2": MediumRead(device="/dev/vdb", label="config-2", fstype="vfat", files={
        "openstack/latest/meta_data.json": OPENSTACK_META})})
    store = ConfigStore(paths, cmdline_text="rancher.cloud_init.datasources=[configdrive:/media/config-2]",
                        media=media)
    result = store.load()
    assert result.errors == [] and result.warnings == []
    assert store.get("hostname") == "os-host"
    assert result.notes == ["configdrive:/media/config-2: /dev/vdb (label config-2): meta_data.json "
                            "(uuid 83679162-1378-4288-a2d4-70e13ec132aa)"]


@pytest.mark.parametrize(
    ("read", "warning", "note"),
    [
        (MediumRead(problem="no device labelled cidata or CIDATA after waiting 5 s"),
         "no device labelled cidata or CIDATA after waiting 5 s: skipped",
         "nocloud: nothing found (no device labelled cidata or CIDATA after waiting 5 s)"),
        (MediumRead(device="/dev/sdb", label="CIDATA", fstype="vfat",
                    problem="cannot mount vfat: No such device"),
         "/dev/sdb (label CIDATA): cannot mount vfat: No such device: skipped",
         "nocloud: /dev/sdb (label CIDATA): unreadable (cannot mount vfat: No such device)"),
    ],
)
def test_nocloud_nothing_or_broken_is_a_warning_and_the_rest_counts(
    paths: Paths, read: MediumRead, warning: str, note: str
) -> None:
    store = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[nocloud] corral.log.level=debug",
                        media=FakeMedia({"cidata": read}))
    result = store.load()
    assert result.errors == []
    assert [(w.file, w.message) for w in result.warnings] == [("nocloud", warning)]
    assert result.notes == [note]
    assert store.get("corral.log.level") == "debug"


def test_nocloud_pending_is_neither_warning_nor_error(paths: Paths) -> None:
    store = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[nocloud]",
                        media=FakeMedia({"cidata": MediumRead(pending=True)}))
    result = store.load()
    assert result.errors == [] and result.warnings == []
    assert result.notes == ["nocloud: no device labelled cidata or CIDATA yet; looking again once devices "
                            "are probed"]


def test_medium_too_big_file_is_a_warning(paths: Paths) -> None:
    problem = ConfigError("/dev/sr0:user-data", "", "too big")
    media = FakeMedia({"cidata": MediumRead(device="/dev/sr0", label="cidata", errors=[problem],
                                            files={"meta-data": "local-hostname: h1\n"})})
    store = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[nocloud]", media=media)
    result = store.load()
    assert result.errors == [] and result.warnings == [problem]
    assert store.get("hostname") == "h1"


def test_disk_datasources_without_a_media_reader_are_skipped(paths: Paths) -> None:
    result = ConfigStore(paths, cmdline_text="corral.cloud_init.datasources=[nocloud, configdrive]").load()
    assert result.errors == []
    assert [w.message for w in result.warnings] == ["block devices cannot be read here: skipped"] * 2


@pytest.mark.parametrize("spec", ["nocloud:/x", "configdrive:relative"])
def test_disk_datasource_arguments_are_checked(paths: Paths, spec: str) -> None:
    errors = ConfigStore(paths, cmdline_text=f"corral.cloud_init.datasources=[{spec}]").reload().errors
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral.cloud_init.datasources[0]")]
