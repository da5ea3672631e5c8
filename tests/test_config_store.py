"""The store: last good config, generations, get/set/merge/export, secrets kept in a 0600 file."""

from __future__ import annotations

import stat
from pathlib import Path

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
import yaml

from supervisor.config import ConfigStore, ReloadResult
from supervisor.config.store import validate_file
from supervisor.events import ConfigChanged
from supervisor.paths import Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.sandbox(tmp_path)


@pytest.fixture
def store(paths: Paths) -> ConfigStore:
    return ConfigStore(paths, cmdline_text="")


def persisted(store: ConfigStore) -> object:
    text = store.cloud_config_path.read_text()
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def private(store: ConfigStore) -> object:
    return yaml.safe_load(store.private_path.read_text())


# -- loading ---------------------------------------------------------------------------------------


def test_defaults_are_in_force_before_any_load(store: ConfigStore) -> None:
    assert store.generation == 0
    assert store.current["hostname"] == "corral"
    assert store.get("corral.log.level") == "info"
    assert store.get("corral.shutdown_grace") == 10
    assert store.current == store.defaults


def test_the_images_defaults_sit_between_the_shipped_ones_and_the_users(paths: Paths) -> None:
    paths.image_config_dir.mkdir(parents=True)
    (paths.image_config_dir / "10-image.yml").write_text("hostname: imaged\ncorral: {log: {level: debug}}\n")
    store = ConfigStore(paths, cmdline_text="")
    assert store.get("hostname") == "imaged"
    assert store.defaults["hostname"] == "imaged"  # `config set` persists only what differs from them
    paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("hostname: mine\n")
    store.reload()
    assert (store.get("hostname"), store.get("corral.log.level")) == ("mine", "debug")


def test_invalid_image_defaults_are_refused_naming_the_file(paths: Paths) -> None:
    paths.image_config_dir.mkdir(parents=True)
    (paths.image_config_dir / "10-image.yml").write_text("corral: {shutdown_grace: soon}\n")
    with pytest.raises(ValueError, match=r"10-image\.yml"):
        ConfigStore(paths, cmdline_text="")


def test_generation_goes_up_only_when_the_config_changes(store: ConfigStore) -> None:
    assert store.reload() == ([], [])  # nothing on disk: still the defaults
    assert store.generation == 0
    store.paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("corral: {log: {level: debug}}\nhostname: h1\n")
    result = store.reload()
    assert result == ReloadResult([], ["corral.log", "hostname"])
    assert store.generation == 1
    event = result.event(store.generation)
    assert isinstance(event, ConfigChanged)
    assert (event.generation, event.changed) == (1, ("corral.log", "hostname"))
    assert store.reload().changed == []
    assert store.generation == 1


def test_invalid_config_keeps_the_failing_part_on_the_last_good_one(store: ConfigStore) -> None:
    store.paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("hostname: good\ncorral: {log: {level: warning}}\n")
    assert store.reload().ok
    store.cloud_config_path.write_text("hostname: bad\ncorral: {log: {level: loud}}\n")
    result = store.reload()
    assert not result.ok
    assert result.changed == ["hostname"]  # the rest came into force
    event = result.event(store.generation)
    assert event is not None and event.changed == ("hostname",)
    assert store.current["hostname"] == "bad"
    assert store.current["corral"]["log"]["level"] == "warning"  # on the last good config
    assert store.generation == 2
    assert [e.key for e in store.last_errors] == ["corral.log.level"]
    assert store.salvaged == {"corral.log": "the last good config"}
    store.cloud_config_path.write_text("hostname: fixed\n")
    assert store.reload().ok
    assert store.last_errors == [] and store.salvaged == {}
    assert store.current["hostname"] == "fixed"
    assert store.current["corral"]["log"]["level"] == "info"


def test_read_changes_nothing(store: ConfigStore) -> None:
    store.paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("hostname: other\n")
    assert store.read().config["hostname"] == "other"
    assert store.current["hostname"] == "corral"
    assert store.generation == 0


def test_current_is_a_copy(store: ConfigStore) -> None:
    store.current["corral"]["log"]["level"] = "error"
    assert store.get("corral.log.level") == "info"


def test_stores_share_nothing(tmp_path: Path) -> None:
    a = ConfigStore(Paths.sandbox(tmp_path / "a"), cmdline_text="corral.debug")
    b = ConfigStore(Paths.sandbox(tmp_path / "b"), cmdline_text="")
    assert a.reload().ok and b.reload().ok
    assert a.get("corral.debug") is True
    assert b.get("corral.debug") is False


# -- get -------------------------------------------------------------------------------------------


def test_get_paths(store: ConfigStore) -> None:
    assert (
        store.merge(
            "write_files: [{path: /a}, {path: /b, permissions: '600'}]\n"
            "corral: {sysctl: {net.ipv4.ip_forward: 1}}\n"
        )
        == []
    )
    assert store.reload().ok
    assert store.get("write_files[1].permissions") == "0600"
    assert store.get('corral.sysctl["net.ipv4.ip_forward"]') == 1
    assert store.get("corral.sysctl.net.ipv4.ip_forward") == 1
    with pytest.raises(KeyError, match=r"corral\.nosuch"):
        store.get("corral.nosuch.deeper")
    with pytest.raises(KeyError):
        store.get("write_files[7]")
    with pytest.raises(ValueError):
        store.get("corral..log")


# -- set -------------------------------------------------------------------------------------------


def test_set_persists_only_the_difference_from_the_defaults(store: ConfigStore) -> None:
    assert store.set("corral.log.level", "debug") == []
    assert persisted(store) == {"corral": {"log": {"level": "debug"}}}
    assert store.current["corral"]["log"]["level"] == "info"  # persisted, not yet in force
    assert store.reload() == ([], ["corral.log"])
    assert store.get("corral.log") == {"level": "debug", "max_bytes": 10485760, "keep": 5}
    assert store.set("corral.log.level", "info") == []  # back to the default: nothing left to persist
    assert persisted(store) is None
    assert stat.S_IMODE(store.cloud_config_path.stat().st_mode) == 0o600  # the user config: root-only


def test_set_does_not_persist_cmdline_datasource_or_dropin_values(paths: Paths) -> None:
    seed = paths.under("/seed")
    seed.mkdir(parents=True)
    (seed / "meta-data").write_text("local-hostname: from-ds\n")
    (paths.config_dir / "cloud-config.d").mkdir(parents=True)
    (paths.config_dir / "cloud-config.d" / "10.yml").write_text("corral: {modules: [nbd]}\n")
    store = ConfigStore(paths, cmdline_text="corral.debug corral.cloud_init.datasources=[file:/seed]")
    assert store.reload().ok
    assert store.set("corral.environment.TZ", "UTC") == []
    assert persisted(store) == {"corral": {"environment": {"TZ": "UTC"}}}
    assert store.reload().ok
    assert store.get("hostname") == "from-ds"
    assert store.get("corral.modules") == ["nbd"]
    # setting a value a drop-in gives, to what the drop-in already says: nothing to persist
    assert store.set("corral.modules", "[nbd]") == []
    assert persisted(store) == {"corral": {"environment": {"TZ": "UTC"}}}


def test_set_keeps_what_was_persisted_before(store: ConfigStore) -> None:
    assert store.set("hostname", "edge-1") == []
    assert store.set("corral.modules", "[btrfs, nbd]") == []
    assert store.set("rancher.state.wait", "30") == []
    assert persisted(store) == {
        "hostname": "edge-1",
        "corral": {"modules": ["btrfs", "nbd"], "state": {"wait": 30}},
    }


def test_set_takes_text_as_is_where_the_schema_wants_a_string(store: ConfigStore) -> None:
    assert store.set("hostname", "on") == []
    assert store.set("corral.environment.UMASK", "0022") == []
    assert store.set("corral.sysctl.vm.swappiness", "10") == []
    assert store.reload().ok
    assert store.get("hostname") == "on"
    assert store.get("corral.environment.UMASK") == "0022"
    assert store.get("corral.sysctl") == {"vm.swappiness": 10}
    assert "hostname: 'on'" in store.cloud_config_path.read_text()  # quoted for YAML 1.1 readers


@pytest.mark.parametrize(
    ("key", "value", "error_key", "fragment"),
    [
        ("corral.log.level", "loud", "corral.log.level", "is not one of"),
        ("corral.debug", "maybe", "corral.debug", "expected a boolean"),
        ("corral.nosuch", "1", "corral.nosuch", "unknown key"),
        ("corral.state.wait", "010", "corral.state.wait", "octal"),
        ("corral.log", "[a", "corral.log", "YAML syntax error"),
        ("write_files[0].path", "/x", "write_files[0].path", "list element"),
        ("corral..log", "x", "corral..log", "empty key segment"),
    ],
)
def test_set_rejects_invalid_values_and_writes_nothing(
    store: ConfigStore, key: str, value: str, error_key: str, fragment: str
) -> None:
    errors = store.set(key, value)
    assert [e.key for e in errors] == [error_key]
    assert fragment in errors[0].message
    assert not store.cloud_config_path.exists()


def test_set_refuses_when_the_persisted_file_is_broken(store: ConfigStore) -> None:
    store.paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("hostname: [\n")
    errors = store.set("corral.debug", "true")
    assert errors and errors[0].file == str(store.cloud_config_path)
    assert store.cloud_config_path.read_text() == "hostname: [\n"


def test_set_validates_the_whole_resulting_config(paths: Paths) -> None:
    # the cmdline is invalid: nothing that would be rejected as a whole may be persisted
    store = ConfigStore(paths, cmdline_text="corral.log.level=loud")
    errors = store.set("hostname", "h")
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral.log.level")]
    assert not store.cloud_config_path.exists()


# -- unset -----------------------------------------------------------------------------------------


def test_unset_removes_the_key_and_the_layers_under_it_count_again(paths: Paths) -> None:
    (paths.config_dir / "cloud-config.d").mkdir(parents=True)
    (paths.config_dir / "cloud-config.d" / "10.yml").write_text("corral: {modules: [nbd]}\n")
    store = ConfigStore(paths, cmdline_text="")
    assert store.set("hostname", "edge-1") == []
    assert store.set("corral.modules", "[btrfs]") == []
    assert store.set("corral.network.interfaces.eth1", "{dhcp: true}") == []
    assert store.reload().ok
    assert store.unset("corral.modules") == []
    assert store.unset("rancher.network.interfaces.eth1") == []  # the alias works, empty maps go
    assert persisted(store) == {"hostname": "edge-1"}
    assert store.reload().ok
    assert store.get("corral.modules") == ["nbd"]  # the drop-in's value again
    assert store.unset("hostname") == []
    assert persisted(store) is None
    assert store.reload() == ([], ["hostname"])
    assert store.get("hostname") == "corral"


def test_unset_a_secret_rewrites_the_private_file(store: ConfigStore) -> None:
    assert store.set("corral.password", "hunter2") == []
    assert store.set("hostname", "h") == []
    assert store.unset("corral.password") == []
    assert not store.private_path.exists()
    assert persisted(store) == {"hostname": "h"}


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("hostname", "its value comes from"),
        ("corral.log.level", "its value comes from"),
        ("corral.nosuch", "not in the config at all"),
        ("write_files[0]", "list element"),
        ("corral..log", "empty key segment"),
    ],
)
def test_unset_of_a_key_the_user_did_not_set_is_an_error_and_writes_nothing(
    store: ConfigStore, key: str, fragment: str
) -> None:
    assert store.set("corral.debug", "true") == []
    before = store.cloud_config_path.read_text()
    errors = store.unset(key)
    assert len(errors) == 1 and fragment in errors[0].message, errors
    assert errors[0].file == "<unset>"
    assert store.cloud_config_path.read_text() == before


def test_unset_refuses_when_the_result_would_not_load(paths: Paths) -> None:
    store = ConfigStore(paths, cmdline_text="corral.log.level=loud")
    paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("hostname: h\n")
    errors = store.unset("hostname")
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral.log.level")]
    assert store.cloud_config_path.read_text() == "hostname: h\n"


# -- merge -----------------------------------------------------------------------------------------


def test_merge_document(store: ConfigStore) -> None:
    assert store.set("corral.environment.A", "a") == []
    doc = "#cloud-config\nrancher:\n  environment: {B: b}\n  modules: [x]\nruncmd: [echo hi]\n"
    assert store.merge(doc) == []
    assert persisted(store) == {
        "corral": {"environment": {"A": "a", "B": "b"}, "modules": ["x"]},
        "runcmd": ["echo hi"],
    }
    assert store.merge("corral: {modules: [y]}\n") == []
    assert persisted(store)["corral"]["modules"] == ["y"]  # type: ignore[index]


def test_merge_rejects_invalid_documents_naming_the_input(store: ConfigStore) -> None:
    errors = store.merge("hostname: on\n")
    assert [(e.file, e.key) for e in errors] == [("<merge>", "hostname")]
    assert 'quote it: "on"' in errors[0].message
    assert store.merge("a: 1\na: 2\n")[0].key == "a"
    assert not store.cloud_config_path.exists()


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_go_to_a_0600_private_file(store: ConfigStore) -> None:
    assert store.set("corral.password", "hunter2") == []
    assert store.set("hostname", "edge") == []
    assert stat.S_IMODE(store.private_path.stat().st_mode) == 0o600
    assert private(store) == {"corral": {"password": "hunter2"}}
    assert "hunter2" not in store.cloud_config_path.read_text()
    assert persisted(store) == {"hostname": "edge"}
    assert store.reload().ok
    assert store.get("corral.password") == "<redacted>"  # as in export: secrets only when asked for
    assert store.get("corral.password", include_secrets=True) == "hunter2"
    assert store.provenance["corral.password"] == str(store.private_path)
    assert store.export()["corral"]["password"] == "<redacted>"
    assert "hunter2" not in repr(store.export())
    assert store.export(include_secrets=True)["corral"]["password"] == "hunter2"


def test_secrets_in_merged_documents_are_split_out(store: ConfigStore) -> None:
    doc = """
corral:
  services:
    db:
      image: postgres
      environment: {POSTGRES_PASSWORD: pw1, POSTGRES_DB: app}
      tls: {cert: CERT, key: KEY}
users:
  - name: ops
    passwd: $6$hash
"""
    assert store.merge(doc) == []
    public_text = store.cloud_config_path.read_text()
    for secret in ("pw1", "KEY", "$6$hash"):
        assert secret not in public_text
    assert persisted(store) == {
        "corral": {
            "services": {
                "db": {"image": "postgres", "environment": {"POSTGRES_DB": "app"}, "tls": {"cert": "CERT"}}
            }
        },
    }
    assert private(store) == {
        "corral": {"services": {"db": {"environment": {"POSTGRES_PASSWORD": "pw1"}, "tls": {"key": "KEY"}}}},
        "users": [{"name": "ops", "passwd": "$6$hash"}],  # a list holding a secret is private whole
    }
    assert store.reload().ok
    exported = store.export()
    assert exported["corral"]["services"]["db"]["tls"] == {"cert": "CERT", "key": "<redacted>"}
    assert exported["users"] == [{"name": "ops", "passwd": "<redacted>"}]


def test_hand_written_secret_moves_to_private_on_the_next_set(store: ConfigStore) -> None:
    store.paths.config_dir.mkdir(parents=True)
    store.cloud_config_path.write_text("corral:\n  password: plain\n")
    store.cloud_config_path.chmod(0o644)
    result = store.load()  # adopted into a generation: root-only (0600) as the whole user config is
    assert result.ok and result.warnings == []
    assert stat.S_IMODE(store.cloud_config_path.stat().st_mode) == 0o600
    assert store.set("hostname", "h") == []
    assert "plain" not in store.cloud_config_path.read_text()
    assert private(store) == {"corral": {"password": "plain"}}


def test_no_secrets_left_removes_the_private_file(store: ConfigStore) -> None:
    assert store.merge("corral: {password: x}\n") == []
    assert store.private_path.exists()
    store.private_path.write_text("{}\n")
    assert store.set("hostname", "h") == []
    assert not store.private_path.exists()


def test_world_readable_private_file_is_a_warning(store: ConfigStore) -> None:
    assert store.set("corral.password", "x") == []
    store.private_path.chmod(0o644)
    assert any("chmod 0600" in w.message for w in store.load().warnings)


def test_a_redacted_export_merges_back_keeping_the_stored_secrets(store: ConfigStore) -> None:
    assert store.set("corral.password", "real") == []
    assert store.merge("users: [{name: ops, passwd: pw1}]\n") == []
    exported = store.export(user_only=True)
    assert exported["corral"]["password"] == "<redacted>" and exported["users"][0]["passwd"] == "<redacted>"
    exported["hostname"] = "h2"
    assert store.merge(yaml.safe_dump(exported), "backup.yml") == []
    assert private(store) == {"corral": {"password": "real"}, "users": [{"name": "ops", "passwd": "pw1"}]}
    assert persisted(store) == {"hostname": "h2"}


def test_a_redacted_placeholder_with_no_stored_secret_is_refused(store: ConfigStore) -> None:
    assert store.set("corral.password", "real") == []
    errors = store.merge("corral: {password: <redacted>}\nusers: [{name: ops, passwd: <redacted>}]\n",
                         "backup.yml")
    assert [(e.file, e.key) for e in errors] == [("backup.yml", "users[0].passwd")]
    assert "no secret is stored here to keep" in errors[0].message
    assert private(store) == {"corral": {"password": "real"}}


def test_errors_of_the_merged_whole_name_the_input(paths: Paths) -> None:
    from supervisor.domain_checks import config_store

    store = config_store(paths)  # with the domain checks: the unit's check finds the missing image
    errors = store.merge("corral: {services: {web: {restart: always}}}\n", "mine.yml")
    assert [str(e) for e in errors] == ["mine.yml: corral.services.web.image: unit 'web' has no image"]
    errors = store.merge('corral: {services: {"a.b": {restart: always}}}\n', "mine.yml")  # no provenance
    assert [e.file for e in errors] == ["mine.yml"], errors


def test_export_user_only_is_what_was_persisted(store: ConfigStore) -> None:
    assert store.set("corral.password", "pw") == []
    assert store.set("corral.debug", "true") == []
    assert store.export(user_only=True) == {"corral": {"debug": True, "password": "<redacted>"}}
    assert store.export(include_secrets=True, user_only=True) == {"corral": {"debug": True, "password": "pw"}}


# -- validation and schema -------------------------------------------------------------------------


def test_validate_text_and_file(store: ConfigStore, tmp_path: Path) -> None:
    assert store.verdict("#cloud-config\nhostname: ok\n").errors == []
    errors = store.verdict("hostname: off\n", "mine.yml").errors
    assert [str(e) for e in errors] == [
        "mine.yml: hostname: a string is expected, but YAML 1.1 reads unquoted off as boolean false; "
        'quote it: "off" (line 1)'
    ]
    f = tmp_path / "x.yml"
    f.write_text("corral: {debug: 1}\n")
    assert [(e.file, e.key) for e in validate_file(store, f)] == [(str(f), "corral.debug")]
    assert validate_file(store, tmp_path / "missing.yml")[0].message.startswith("cannot read")


def test_schema_is_draft_2020_12_and_a_copy(store: ConfigStore) -> None:
    schema = store.schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"hostname", "ssh_authorized_keys", "write_files", "mounts", "runcmd", "corral"} <= set(
        schema["properties"]
    )
    schema["properties"].clear()
    assert store.schema()["properties"]


def test_merged_config_validates_against_the_schema_as_json(store: ConfigStore) -> None:
    assert store.merge((Path(__file__).parent / "config_corpus/valid/corral-full.yml").read_text()) == []
    assert store.reload().ok
    jsonschema.validate(store.export(include_secrets=True), store.schema())


# -- views keep secrets ------------------------------------------------------------------------------


def test_get_redacts_secrets_like_export(store: ConfigStore) -> None:
    assert store.set("corral.password", "hunter2") == []
    assert store.set("corral.environment.DB_PASSWORD", "pw2") == []
    assert store.set("corral.environment.TZ", "UTC") == []
    assert store.reload().ok
    assert store.get("corral.password") == "<redacted>"
    assert store.get("corral.environment.DB_PASSWORD") == "<redacted>"
    whole = store.get("corral")
    assert whole["password"] == "<redacted>"
    assert whole["environment"] == {"DB_PASSWORD": "<redacted>", "TZ": "UTC"}
    assert "hunter2" not in str(whole) and "pw2" not in str(whole)
    assert store.get("corral", include_secrets=True)["password"] == "hunter2"
    assert store.get("corral.environment.TZ") == "UTC"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("corral.network", None),  # known to the schema, nothing sets it
        ("corral.state.dev", None),
        ("corral.environment.ANY_NAME", None),  # a free-form map: any name is a key
        ('corral.sysctl["net.ipv4.ip_forward"]', None),
        ("network", None),
        ("write_files[3].path", None),
        ("rancher.network", None),
        ("corral.netwrk", "corral.netwrk: unknown key; did you mean 'corral.network'?"),
        (
            "corral.network.interfaces.eth0.adress",
            "corral.network.interfaces.eth0.adress: unknown key; did you mean "
            "'corral.network.interfaces.eth0.address'?",
        ),
        ("hostnme", "hostnme: unknown key; did you mean 'hostname'?"),
        ("nosuch.deeper", "nosuch: unknown key"),
        ("corral.log.levl", "corral.log.levl: unknown key; did you mean 'corral.log.level'?"),
    ],
)
def test_missing_tells_a_known_key_without_value_from_an_unknown_key(
    store: ConfigStore, key: str, why: str | None
) -> None:
    with pytest.raises(KeyError):
        store.get(key)
    found = store.missing(key)
    if why is None:
        assert found is None
    else:
        assert found is not None and found.startswith(why), found


# -- a change a higher layer would undo is refused -------------------------------------------------


def seeded(
    paths: Paths, cmdline: str = "", user_data: str | None = None, meta_data: str | None = None
) -> ConfigStore:
    seed = paths.under("/seed")
    seed.mkdir(parents=True, exist_ok=True)
    if user_data is not None:
        (seed / "user-data").write_text(user_data)
    if meta_data is not None:
        (seed / "meta-data").write_text(meta_data)
    store = ConfigStore(paths, cmdline_text=f"corral.cloud_init.datasources=[file:/seed] {cmdline}")
    assert store.reload().ok
    return store


def test_set_of_a_key_the_cmdline_gives_is_refused_naming_it(paths: Paths) -> None:
    store = seeded(paths, "corral.log.level=debug corral.password=rancher")
    errors = store.set("corral.log.level", "warning")
    assert [str(e) for e in errors] == [
        "<set>: corral.log.level: not changed: corral.log.level is set by the kernel command line "
        "(cmdline), which wins over the user's config; change it in the boot loader's kernel parameters"
    ]
    errors = store.set("corral.password", "other")
    assert [(e.file, e.key) for e in errors] == [("<set>", "corral.password")]
    assert "other" not in str(errors)
    assert not store.cloud_config_path.exists() and not store.private_path.exists()
    assert store.set("corral.log.level", "debug") == []  # what is in force already: nothing undone
    assert store.set("corral.log.keep", "3") == []  # a sibling the cmdline does not give


def test_set_of_a_key_a_datasource_gives_is_refused_naming_the_file(paths: Paths) -> None:
    store = seeded(paths, user_data="#cloud-config\nhostname: from-seed\ncorral: {modules: [nbd]}\n")
    user_data = paths.under("/seed") / "user-data"
    errors = store.set("hostname", "mine")
    assert [str(e) for e in errors] == [
        f"<set>: hostname: not changed: hostname is set by {user_data} (datasource file:/seed), "
        "which wins over the user's config; change it there"
    ]
    assert not store.cloud_config_path.exists()
    errors = store.merge("hostname: a\ncorral: {modules: [zfs], debug: true}\n")
    assert [(e.file, e.key) for e in errors] == [("<merge>", "hostname"), ("<merge>", "corral.modules")]
    assert not store.cloud_config_path.exists()
    assert store.merge("corral: {debug: true}\n") == []


def test_meta_data_overrides_name_the_meta_data_file(paths: Paths) -> None:
    store = seeded(paths, meta_data="local-hostname: from-meta\n")
    errors = store.set("hostname", "mine")
    meta_data = paths.under("/seed") / "meta-data"
    assert len(errors) == 1 and f"set by {meta_data} (datasource file:/seed)" in errors[0].message


def test_set_of_a_map_names_each_overridden_key(paths: Paths) -> None:
    store = seeded(paths, "corral.log.level=debug corral.udev.enabled=false")
    errors = store.set("corral.log", "{level: warning, keep: 3}")
    assert [e.key for e in errors] == ["corral.log.level"]
    errors = store.set("corral.udev", "true")  # the cmdline's map under it replaces the boolean
    assert [e.key for e in errors] == ["corral.udev"]
    assert "corral.udev.enabled is set by the kernel command line" in errors[0].message


def test_unset_of_a_key_a_higher_layer_gives_is_refused(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text("hostname: mine\ncorral: {debug: true}\n")
    store = seeded(paths, "corral.debug=false", user_data="hostname: from-seed\n")
    errors = store.unset("hostname")
    assert [(e.file, e.key) for e in errors] == [("<unset>", "hostname")]
    assert "(datasource file:/seed)" in errors[0].message
    # false by default and on the cmdline: after the unset the value in force is what the layers under
    # the user's config give, so the change does happen
    assert store.unset("corral.debug") == []
    assert persisted(store) == {"hostname": "mine"}


def test_unset_of_a_key_the_user_does_not_hold_still_says_where_it_comes_from(paths: Paths) -> None:
    store = seeded(paths, "corral.log.level=debug")
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    store.cloud_config_path.write_text("hostname: h\n")
    errors = store.unset("corral.log.level")
    assert [e.message for e in errors] == ["not set in the user's config (its value comes from cmdline)"]


def test_a_failed_commit_changes_nothing_and_says_why(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.merge("hostname: one\ncorral: {password: pw1}\n") == []
    generations = store.sources.generations

    def full(files: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(generations, "commit", full)
    errors = store.merge("hostname: two\ncorral: {password: pw2}\n")
    assert [str(e) for e in errors] == [
        f"{store.cloud_config_path}: (document): cannot write: No space left on device; nothing changed"]
    monkeypatch.undo()
    assert persisted(store) == {"hostname": "one"} and private(store) == {"corral": {"password": "pw1"}}


def test_a_failed_tidy_is_a_warning_and_the_config_still_loads(
    store: ConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store.set("hostname", "h") == []

    def read_only() -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(store.sources.generations, "recover", read_only)
    result = store.load()
    assert result.ok and store.current["hostname"] == "h"
    assert [w.message for w in result.warnings] == [
        "cannot adopt or tidy the user's config files: Read-only file system"]
    assert store.set("hostname", "h2")[0].message.endswith("Read-only file system")


def test_a_unit_file_edited_under_the_same_config_is_taken_by_a_reload(tmp_path: Path) -> None:
    """The config does not change when a unit file it includes does (one edited in
    /var/lib/corral/units/, a services_include URL's copy fetched again): a reload takes its units all
    the same, as a change of the roots that bring unit files in; nothing changed, nothing is taken."""
    from supervisor.domain_checks import domain_checks
    from units.loader import Loaded

    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.units_dir.mkdir(parents=True)
    (paths.units_dir / "web.yml").write_text("web:\n  image: busybox\n  command: sleep 1\n")
    (paths.config_dir / "cloud-config.yml").write_text("corral:\n  services_include: {web: true}\n")
    store = ConfigStore(paths, cmdline_text="", checks=domain_checks(paths))
    assert store.load().errors == []
    generation = store.generation
    assert store.reload() == ReloadResult([], [])
    (paths.units_dir / "web.yml").write_text("web:\n  image: busybox\n  command: sleep 2\n")
    assert store.reload() == ReloadResult([], ["corral.services", "corral.services_include"])
    assert store.generation == generation + 1
    units = store.parsed("units")
    assert isinstance(units, Loaded) and units.units["web"].command == ("sleep", "2")
