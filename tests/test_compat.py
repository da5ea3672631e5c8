"""Keys corral knows but does not implement (supervisor/compat.py): accepted, a warning naming the key and
what corral does instead on every load, never a rejection; the schema and docs/compatibility.md come
from the one table (the document: tests/test_gen_compat.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.compat import NOT_IMPLEMENTED, key_path
from supervisor.config.schema import Schema
from supervisor.config.store import ConfigStore
from supervisor.domain_checks import config_store
from supervisor.paths import Paths


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    return config_store(paths, "")


RANCHEROS = """#cloud-config
ssh_authorized_keys: [ssh-ed25519 AAAAkey]
rancher:
  docker:
    engine: docker-17.03.2-ce
    tls: true
  console: ubuntu
  state:
    dev: LABEL=RANCHER_STATE
    mdadm_scan: true
  system_docker:
    storage_driver: overlay2
  upgrade: {url: "https://example.com/releases.yml"}
users:
  - name: me
timezone: Europe/Paris
"""


def test_every_known_but_unimplemented_key_is_a_warning_naming_it(store: ConfigStore) -> None:
    result = store.verdict(RANCHEROS, "user.yml")
    assert result.ok, result.errors
    got = {w.key: w.message for w in result.warnings}
    assert set(got) == {
        "rancher.docker",
        "rancher.docker.engine",
        "rancher.console",
        "rancher.state.mdadm_scan",
        "rancher.system_docker.storage_driver",
        "rancher.upgrade.url",
        "users",
        "timezone",
    }
    assert got["rancher.docker.engine"] == (
        "not implemented: corral's user dockerd is Debian's docker.io; engine "
        "switching (ros engine) does not exist; the key is ignored"
    )
    assert all(w.file == "user.yml" for w in result.warnings)


# shaped like RancherOS's early os-config.yml (config/types.go: autoformat is a map of services, not of
# devices; DockerConfig.Args is the dockerd's argv), written here, not copied
ROS_AUTOFORMAT = """#cloud-config
rancher:
  autoformat:
    autoformat:
      image: rancher/os-autoformat:v0.4.0
      labels: {io.rancher.os.detach: "false", io.rancher.os.scope: system}
      net: none
      privileged: true
  system_docker:
    args: [daemon, --log-opt, max-size=25m, -s, overlay, -G, root, -H, "unix:///var/run/system-docker.sock"]
  docker:
    args: [daemon, --log-opt, max-size=25m, -s, overlay, -G, docker, -H, "unix:///var/run/docker.sock"]
  state:
    autoformat: [/dev/sda, /dev/vda]
"""


def test_rancheros_autoformat_containers_and_dockerd_args_are_warnings(store: ConfigStore) -> None:
    result = store.verdict(ROS_AUTOFORMAT, "os-config.yml")
    assert result.ok, result.errors
    got = {w.key: w.message for w in result.warnings}
    assert set(got) == {"rancher.autoformat", "rancher.system_docker.args", "rancher.docker"}
    assert "list the devices in corral.state.autoformat" in got["rancher.autoformat"]
    assert "corral's system dockerd runs with fixed options" in got["rancher.system_docker.args"]
    store.cloud_config_path.parent.mkdir(parents=True, exist_ok=True)
    store.cloud_config_path.write_text(ROS_AUTOFORMAT)
    assert store.load().ok
    assert store.get("corral.state.autoformat") == ["/dev/sda", "/dev/vda"]  # the state's own list applies


def test_a_key_whose_sub_keys_all_have_their_own_entry_is_named_by_them_only(store: ConfigStore) -> None:
    result = store.verdict("rancher:\n  docker:\n    engine: docker-18\n", "user.yml")
    assert [w.key for w in result.warnings] == ["rancher.docker.engine"]


def test_the_warnings_come_on_every_load_and_the_keys_stay_in_the_config(store: ConfigStore) -> None:
    store.cloud_config_path.write_text(RANCHEROS)
    for _ in range(2):
        result = store.load()
        assert result.ok
        assert "rancher.console" in [w.key for w in store.last_warnings]
    assert store.get("corral.console") == "ubuntu"
    assert store.get("corral.state.dev") == "LABEL=RANCHER_STATE"  # the implemented keys beside them apply


def test_set_and_merge_accept_them_with_the_warning(store: ConfigStore) -> None:
    assert store.set("rancher.console", "ubuntu") == []
    assert store.merge("rancher:\n  autologin: tty1\n") == []
    store.load()
    assert {"rancher.console", "rancher.autologin"} <= {w.key for w in store.last_warnings}


def test_the_kernel_command_line_gives_them_too(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    result = config_store(paths, "rancher.autologin=tty1 corral.log.level=debug").load()
    assert result.ok
    assert [(w.file, w.key) for w in result.warnings] == [("cmdline", "rancher.autologin")]


def test_every_key_of_the_table_is_in_the_schema_and_each_parses() -> None:
    schema = Schema()
    for shown in NOT_IMPLEMENTED:
        path = key_path(shown)
        assert path[0] != "rancher"
        # the key itself, or a key above it that the table ignores whole (any value under it)
        within = [
            path[:n] for n in range(1, len(path) + 1) if any(key_path(k) == path[:n] for k in NOT_IMPLEMENTED)
        ]
        assert schema.at(within[0]), shown


def test_the_table_names_no_key_corral_implements() -> None:
    implemented = {
        "corral.log",
        "corral.network",
        "corral.sysctl",
        "corral.state.dev",
        "corral.services",
        "hostname",
        "ssh_authorized_keys",
        "write_files",
        "runcmd",
        "mounts",
        "corral.system_docker.enabled",
    }
    assert not implemented & {".".join(map(str, key_path(k))) for k in NOT_IMPLEMENTED}


def test_an_unknown_key_is_not_pointed_at_a_key_that_does_nothing(store: ConfigStore) -> None:
    result = store.verdict("timezon: UTC\n", "user.yml")
    [error] = result.errors
    assert error.key == "timezon" and "known here: bootcmd, corral, hostname" in error.message
    assert "timezone" not in error.message and error.suggestion is None


IMPLEMENTED_CLOUD_INIT = {"hostname", "ssh_authorized_keys", "write_files", "runcmd", "bootcmd", "mounts"}
"""The cloud-init top-level keys corral acts on itself (docs/config.md)."""


def cloud_init_keys() -> set[str]:
    """Every top-level key of cloud-init's own schema (tests/cloud_init_schema/, SOURCES there)."""
    path = Path(__file__).parent / "cloud_init_schema" / "schema-cloud-config-v1.json"
    schema = json.loads(path.read_text())
    keys = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        name = part.get("$ref", "").rsplit("/", 1)[-1]
        keys |= set(schema["$defs"].get(name, {}).get("properties", {}))
    return keys


def test_every_cloud_init_key_is_implemented_or_warned_never_an_error(store: ConfigStore) -> None:
    keys = cloud_init_keys()
    assert len(keys) > 90  # the schema was read
    missing = keys - IMPLEMENTED_CLOUD_INIT - set(NOT_IMPLEMENTED)
    assert not missing, f"cloud-init keys neither implemented nor warned: {sorted(missing)}"
    for key in sorted(keys - IMPLEMENTED_CLOUD_INIT):
        result = store.verdict(f"#cloud-config\n{key}: {{some: value}}\n", "ci.yml")
        assert not result.errors, (key, result.errors)
        assert any(w.key == key for w in result.warnings), (key, result.warnings)


# cloud-init's own snap example (doc/module-docs/cc_snap/example1.yaml): keys YAML reads as integers
SNAP = """#cloud-config
snap:
  assertions:
    00: |
      signed_assertion_blob_here
  commands:
    00: snap create-user --sudoer --known <snap_user>@mydomain.com
    01: snap install canonical-livepatch
    02: true
  when: 2026-12-07
  blob: !!binary aGVsbG8=
  set: !!set {a, b}
"""


def test_a_warned_keys_value_is_not_checked(store: ConfigStore) -> None:
    result = store.verdict(SNAP, "user.yml")
    assert result.ok, result.errors
    assert [w.key for w in result.warnings] == ["snap"]


def test_a_warned_keys_value_is_kept_as_plain_data(store: ConfigStore) -> None:
    """Non-string keys, dates, sets and !!binary under a warned key persist and export as plain data."""
    assert store.merge(SNAP, "user.yml") == []
    result = store.load()
    assert result.ok, result.errors
    assert store.get("snap") == {
        "assertions": {"0": "signed_assertion_blob_here\n"},
        "commands": {"0": "snap create-user --sudoer --known <snap_user>@mydomain.com",
                     "1": "snap install canonical-livepatch", "2": True},
        "when": "2026-12-07", "blob": "aGVsbG8=", "set": ["a", "b"],
    }
    json.dumps(store.export())  # the control socket's form


def test_a_non_string_key_elsewhere_is_still_an_error(store: ConfigStore) -> None:
    result = store.verdict("corral:\n  environment:\n    00: x\n", "user.yml")
    assert [e.key for e in result.errors] == ["corral.environment.00"]


def test_a_duplicate_key_corral_ignores_is_a_warning_on_load_verdict_and_merge(store: ConfigStore) -> None:
    text = "ssh_authorized_keys: [ssh-ed25519 AAAAkey]\napt: {primary: [a]}\napt: {primary: [b]}\n"
    result = store.verdict(text, "user.yml")
    assert result.ok, result.errors
    duplicate = ("user.yml", "apt", 3)
    assert duplicate in [(w.file, w.key, w.line) for w in result.warnings]
    assert store.merge(text, "user.yml") == []
    store.load()
    assert store.get("apt") == {"primary": ["b"]}
    store.cloud_config_path.write_text(text)  # a hand-written file, read at boot
    result = store.load()
    assert result.ok, result.errors
    assert (str(store.cloud_config_path), "apt", 3) in [(w.file, w.key, w.line) for w in result.warnings]
    assert store.get("ssh_authorized_keys") == ["ssh-ed25519 AAAAkey"]


def test_set_takes_a_duplicate_under_a_key_corral_ignores_the_last_one_counting(store: ConfigStore) -> None:
    assert store.set("apt", "{primary: [a], primary: [b]}") == []
    assert store.set("rancher.console", "{a: 1, a: 2}") == []
    store.load()
    assert store.get("apt") == {"primary": ["b"]}
    assert store.get("corral.console") == {"a": 2}
    [error] = store.set("corral.log", "{level: info, level: debug}")
    assert error.key == "corral.log" and error.message.startswith("duplicate key 'level'")
