"""Loading units: where they come from, the compose keys, corral's labels and their RancherOS aliases,
and the environment looked up in corral.environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.errors import Problems
from units.compose import parse_duration
from units.environment import lookup, resolve
from units.loader import build_units, load_units
from units.model import RestartSpec, Unit, Volume, VolumesFrom
from units.unitfiles import SHIPPED_DIR, parse_unit_text


def units_from(text: str, environment: dict[str, str] | None = None) -> dict[str, Unit]:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, environment or {})
    assert [*errors, *more] == []
    return units


def test_every_shipped_unit_file_loads() -> None:
    shipped = sorted(SHIPPED_DIR.glob("*.yml"))
    assert shipped
    loaded = load_units({"corral": {"services_include": {p.stem: True for p in shipped}}})
    assert loaded.errors == []
    assert loaded.files == shipped
    assert "docker" in loaded.units
    docker = loaded.units["docker"]
    assert docker.scope == "system" and docker.restart == RestartSpec("always")
    assert docker.image == "corral/docker:latest" and docker.privileged


def test_services_include_selects_files_and_extra_dirs_come_first(tmp_path: Path) -> None:
    (tmp_path / "extra.yml").write_text("extra:\n  image: busybox\n")
    (tmp_path / "docker.yml").write_text("docker:\n  image: my/dockerd\n")
    loaded = load_units(
        {"corral": {"services_include": {"extra": True, "docker": True, "off": False}}},
        unit_dirs=[tmp_path],
    )
    assert loaded.errors == []
    assert loaded.units["docker"].image == "my/dockerd"  # the given directory wins over shipped
    assert set(loaded.units) == {"extra", "docker"}

    nothing = load_units({"corral": {"services_include": {"docker": False}}})
    assert nothing.ok and nothing.units == {}


def test_unknown_include_is_an_error_naming_the_key(tmp_path: Path) -> None:
    loaded = load_units({"corral": {"services_include": {"nope": True}}}, unit_dirs=[tmp_path])
    assert [(e.key, e.file) for e in loaded.errors] == [("corral.services_include.nope", "config")]
    assert "no unit file nope.yml" in loaded.errors[0].message
    assert loaded.units == {}


def test_config_services_replace_a_file_unit_whole(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("web:\n  image: nginx\n  restart: always\n")
    config = {
        "corral": {
            "services_include": {"web": True},
            "services": {"web": {"image": "httpd"}, "other": {"image": "busybox"}},
        }
    }
    loaded = load_units(config, unit_dirs=[tmp_path])
    assert loaded.errors == []
    assert loaded.units["web"].image == "httpd"
    assert loaded.units["web"].restart == RestartSpec("no")  # replaced, not merged
    assert loaded.units["web"].source == "config"


def test_same_unit_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("web:\n  image: nginx\n")
    (tmp_path / "b.yml").write_text("web:\n  image: httpd\n")
    loaded = load_units({"corral": {"services_include": {"a": True, "b": True}}}, unit_dirs=[tmp_path])
    assert len(loaded.errors) == 1
    error = loaded.errors[0]
    assert error.file == str(tmp_path / "b.yml") and error.key == "web"
    assert str(tmp_path / "a.yml") in error.message


def test_errors_in_config_services_name_the_config_key() -> None:
    loaded = load_units(
        {"corral": {"services": {"ntp": {"image": "ntp", "restart": "on-failure:x", "portz": [1]}}}},
        source="/var/lib/corral/conf/cloud-config.yml",
    )
    keys = sorted(e.key for e in loaded.errors)
    assert keys == ["corral.services.ntp.portz", "corral.services.ntp.restart"]
    assert all(e.file == "/var/lib/corral/conf/cloud-config.yml" for e in loaded.errors)
    assert loaded.units == {}


def test_one_bad_unit_rejects_the_whole_set() -> None:
    loaded = load_units({"corral": {"services": {"good": {"image": "a"}, "bad": {"image": 5}}}})
    assert not loaded.ok and loaded.units == {} and loaded.graph is None


def test_rancheros_labels_are_aliases() -> None:
    units = units_from(
        """
holder:
  image: busybox
  labels: {io.rancher.os.createonly: "true", io.rancher.os.scope: system}
setup:
  image: busybox
  labels: {io.rancher.os.detach: "false", io.rancher.os.reloadconfig: "true", io.rancher.os.before: app}
app:
  image: busybox
  labels: {io.rancher.os.after: "holder, setup", io.rancher.os.scope: user, io.rancher.os.detach: "true"}
"""
    )
    assert units["holder"].createonly and units["holder"].scope == "system"
    assert units["setup"].oneshot and units["setup"].reloadconfig and units["setup"].before == {"app"}
    assert units["app"].after == {"holder", "setup"} and units["app"].scope == "user"
    assert not units["app"].oneshot


def test_corral_labels_and_their_aliases_may_agree() -> None:
    units = units_from(
        "s:\n  image: b\n"
        "  labels: {io.corral.oneshot: true, io.rancher.os.detach: 'false', io.corral.scope: user}\n"
    )
    assert units["s"].oneshot and units["s"].scope == "user"
    assert units["s"].label_map["io.corral.oneshot"] == "true"  # YAML booleans become compose strings


def test_defaults() -> None:
    unit = units_from("web:\n  image: nginx\n")["web"]
    assert (unit.scope, unit.restart) == ("system", RestartSpec("no"))
    assert not unit.oneshot and not unit.createonly
    assert unit.network_mode is None and unit.command is None and unit.environment == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no", RestartSpec("no")),  # YAML's unquoted no is False
        ('"no"', RestartSpec("no")),
        ("always", RestartSpec("always")),
        ("unless-stopped", RestartSpec("unless-stopped")),
        ("on-failure", RestartSpec("on-failure")),
        ("on-failure:3", RestartSpec("on-failure", 3)),
    ],
)
def test_restart_values(text: str, expected: RestartSpec) -> None:
    assert units_from(f"web:\n  image: nginx\n  restart: {text}\n")["web"].restart == expected
    assert RestartSpec.parse(str(expected)) == expected


def test_command_and_entrypoint_strings_are_split_like_compose() -> None:
    unit = units_from(
        """
web:
  image: nginx
  entrypoint: /bin/sh -c
  command: "echo 'hello world' \\"quoted\\" $$HOME"
"""
    )["web"]
    assert unit.entrypoint == ("/bin/sh", "-c")
    assert unit.command == ("echo", "hello world", "quoted", "$HOME")  # no shell, no expansion
    listed = units_from("w:\n  image: x\n  command: [sleep, 5]\n  entrypoint: ''\n")["w"]
    assert listed.command == ("sleep", "5") and listed.entrypoint == ("",)  # "" resets the image's


def test_labels_in_list_form() -> None:
    unit = units_from("w:\n  image: x\n  labels: [a=1, b, 'io.corral.after=']\n")["w"]
    assert unit.label_map == {"a": "1", "b": "", "io.corral.after": ""}
    assert unit.after == frozenset()


def test_volumes_and_volumes_from() -> None:
    unit = units_from(
        """
data:
  image: busybox
  labels: {io.corral.createonly: "true"}
w:
  image: x
  volumes:
    - /srv:/srv
    - /var/lib/system-docker:/var/lib/system-docker:shared,ro
    - named:/data
    - /anonymous
    - {type: bind, source: /etc, target: /host/etc, read_only: true, bind: {propagation: rslave}}
    - {type: tmpfs, target: /scratch, tmpfs: {size: 1000}}
  volumes_from: [data, "data:ro", "container:foreign:rw"]
"""
    )["w"]
    assert unit.volumes == (
        Volume("/srv", "/srv"),
        Volume("/var/lib/system-docker", "/var/lib/system-docker", ("shared", "ro")),
        Volume("/data", "named"),
        Volume("/anonymous"),
        Volume("/host/etc", "/etc", ("ro", "rslave")),
    )
    assert unit.tmpfs == (("/scratch", "size=1000"),)
    assert unit.volumes_from == (
        VolumesFrom("data", "data"), VolumesFrom("data", "data", "ro"), VolumesFrom("foreign", None, "rw")
    )
    assert unit.requires == {"data"}


def test_service_network_mode_refers_to_a_unit() -> None:
    units = units_from("vpn:\n  image: v\nw:\n  image: x\n  network_mode: service:vpn\n  pid: container:o\n")
    assert units["w"].network_mode == "container:vpn" and units["w"].requires == {"vpn"}
    assert units["w"].pid == "container:o"
    assert units_from("w:\n  image: x\n  net: mynet\n")["w"].network_mode == "mynet"


def test_durations() -> None:
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("500ms") == 500_000_000
    assert parse_duration("1h") == 3600 * 10**9
    assert parse_duration("1.5s") == 1_500_000_000
    assert parse_duration("10us") == 10_000
    for bad in ("30", "1 m", "s", "", "-1s", "1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError, match="with a unit"):
        parse_duration(30)


# ------------------------------------------------------------------------------------- environment

ENV = {
    "HTTP_PROXY": "http://proxy:3128",
    "ETCD_DISCOVERY": "https://discovery.etcd.io/abc",
    "ETCD_NAME": "node1",
    "etcd/ETCD_NAME": "etcd-node",
    "FLAG": "global",
}


def test_environment_list_with_values_lookups_and_wildcards() -> None:
    problems = Problems()
    pairs = resolve("web", ["MODE=prod", "HTTP_PROXY", "MISSING", "ETCD_*", "EMPTY="], ENV, ("e",), problems)
    assert problems.errors == []
    assert dict(pairs) == {
        "MODE": "prod",
        "HTTP_PROXY": "http://proxy:3128",
        "ETCD_DISCOVERY": "https://discovery.etcd.io/abc",
        "ETCD_NAME": "node1",
        "EMPTY": "",
    }  # MISSING is left out, as in RancherOS
    assert [k for k, _ in pairs] == sorted(k for k, _ in pairs)


def test_environment_map_form_and_unit_scoped_keys_win() -> None:
    problems = Problems()
    pairs = resolve("etcd", {"ETCD_NAME": None, "FLAG": True, "N": 4, "HTTP_PROXY": None}, ENV, (), problems)
    assert problems.errors == []
    assert dict(pairs) == {"ETCD_NAME": "etcd-node", "FLAG": "true", "N": "4", "HTTP_PROXY": "http://proxy:3128"}
    assert lookup("etcd", "ETCD_*", ENV) == {"ETCD_NAME": "etcd-node"}  # the unit's own keys first
    assert lookup("other", "ETCD_*", ENV) == {
        "ETCD_DISCOVERY": "https://discovery.etcd.io/abc", "ETCD_NAME": "node1"
    }


def test_explicit_value_wins_over_a_looked_up_one() -> None:
    problems = Problems()
    pairs = resolve("web", ["ETCD_NAME=mine", "ETCD_*"], ENV, (), problems)
    assert problems.errors == [] and dict(pairs)["ETCD_NAME"] == "mine"


def test_environment_reaches_the_unit_through_the_loader() -> None:
    loaded = load_units(
        {"corral": {"environment": ENV, "services": {"etcd": {"image": "etcd", "environment": ["ETCD_*"]}}}}
    )
    assert loaded.errors == []
    assert loaded.units["etcd"].env == {"ETCD_NAME": "etcd-node"}


def test_compose_v3_file_with_services_key() -> None:
    units = units_from("version: '3'\nservices:\n  web:\n    image: nginx\nx-note: ignored\n")
    assert set(units) == {"web"}
    # a v1 file may still have a unit called "services"
    assert set(units_from("services:\n  image: nginx\n")) == {"services"}
