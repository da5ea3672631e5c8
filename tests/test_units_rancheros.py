"""RancherOS services as RancherOS ran them: real service files of rancher/os-services load with their
images substituted and named warnings; ``$VAR`` substitution as libcompose did it; the table of RancherOS
built-in units (ordering targets, volumes_from); libcompose's lenient scalars; services_include URLs; an
empty ``rancher:``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config.errors import ConfigError, Problems
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.store import ConfigStore
from supervisor.config.validate import Validator
from supervisor.domain_checks import domain_checks
from supervisor.paths import Paths
from units.interpolate import Substitution, interpolate, rancher_defaults, substitute
from units.loader import Loaded, build_units, load_units
from units.model import Unit, Volume
from units.rancheros import BUILTINS, VOLUME_CONTAINERS
from units.unitfiles import parse_unit_text

CORPUS = Path(__file__).parent / "units_corpus" / "rancheros"
FILES = sorted(p for p in CORPUS.glob("*.yml") if p.name != "expected.yml")
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yml").read_text())
DEFAULTS = {
    "REGISTRY_DOMAIN": "docker.io",
    "ARCH": "amd64",
    "SUFFIX": "",
    "KERNEL_VERSION": "4.14.138-rancher",
}


def load_file(path: Path, environment: dict[str, str] | None = None) -> Loaded:
    config = {"corral": {"services_include": {path.stem: True}, "environment": environment or {}}}
    return load_units(config, unit_dirs=[path.parent], defaults=DEFAULTS)


def units_of(
    text: str, environment: dict[str, str] | None = None
) -> tuple[dict[str, Unit], list[ConfigError], list[ConfigError]]:
    raws, errors = parse_unit_text(text, "u.yml")
    warnings: list[ConfigError] = []
    units, _graph, more = build_units(raws, environment or {}, defaults=DEFAULTS, warnings=warnings)
    return units, [*errors, *more], warnings


# --- the corpus of real service files


def test_corpus_is_big_enough_and_every_file_is_sourced_and_expected() -> None:
    assert len(FILES) >= 15
    assert {p.name for p in FILES} == set(EXPECTED)
    sources = (CORPUS / "SOURCES").read_text()
    for path in FILES:
        assert f"\n  {path.name} " in sources, path.name
    text = "".join(p.read_text() for p in FILES)
    assert "${REGISTRY_DOMAIN}" in text and "volumes_from" in text and "io.rancher.os.after: network" in text


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_real_service_file_gets_its_verdict(path: Path) -> None:
    want = EXPECTED[path.name]
    loaded = load_file(path)
    got_errors = [(e.key, e.message) for e in loaded.errors]
    got_warnings = [(e.key, e.message) for e in loaded.warnings]
    assert len(got_errors) == len(want.get("errors") or []), got_errors
    for (key, message), (want_key, fragment) in zip(got_errors, want.get("errors") or [], strict=True):
        assert key == want_key and fragment in message, (key, message)
    assert len(got_warnings) == len(want.get("warnings") or []), got_warnings
    for (key, message), (want_key, fragment) in zip(got_warnings, want.get("warnings") or [], strict=True):
        assert key == want_key and fragment in message, (key, message)
    assert all(e.file == str(path) for e in [*loaded.errors, *loaded.warnings])
    assert {name: unit.image for name, unit in loaded.units.items()} == (want.get("images") or {})
    for unit in loaded.units.values():
        assert "$" not in unit.image and unit.image.startswith("docker.io/")


def test_only_compose_ports_rejects_a_real_service_file() -> None:
    rejected = {name for name, want in EXPECTED.items() if want.get("errors")}
    assert rejected == {"amazon-ecs-agent.yml", "rancher-server.yml"}
    assert all(e[0].endswith(".ports") for name in rejected for e in EXPECTED[name]["errors"])


def test_console_file_keeps_its_own_shared_mounts_over_all_volumes() -> None:
    unit = load_file(CORPUS / "alpine.yml").units["console"]
    by_target = {v.target: v for v in unit.volumes}
    assert len(by_target) == len(unit.volumes)  # no mount point twice: Docker would refuse it
    assert by_target["/media"] == Volume("/media", "/media", ("shared",))  # its own, not all-volumes'
    assert by_target["/var/lib/docker"] == Volume("/var/lib/docker", "/var/lib/user-docker")
    assert by_target["/host/dev"].source == "/dev" and "/lib/modules" in by_target
    assert "/usr/bin/ros" not in by_target and unit.volumes_from == () and unit.requires == frozenset()
    assert unit.after == frozenset()  # network: corral starts units after its network handler


def test_unset_variable_in_a_command_is_empty_and_set_one_is_used() -> None:
    loaded = load_file(CORPUS / "volume-nfs.yml")
    assert loaded.units["volume-nfs"].command == ("nfs", "--verbose", "--basedir=/mnt")
    loaded = load_file(CORPUS / "volume-nfs.yml", {"VOLUME_NFS_OPTIONS": "--tcp --port 2049"})
    assert loaded.units["volume-nfs"].command == (
        "nfs",
        "--verbose",
        "--basedir=/mnt",
        "--tcp",
        "--port",
        "2049",
    )
    assert not any("VOLUME_NFS_OPTIONS" in w.message for w in loaded.warnings)


def test_registry_domain_from_corral_environment_wins_over_rancheros_default() -> None:
    loaded = load_file(CORPUS / "zfs.yml", {"REGISTRY_DOMAIN": "registry.example.com:5000"})
    assert loaded.units["zfs"].image == "registry.example.com:5000/rancher/os-zfs:v0.7.13-1"
    loaded = load_file(CORPUS / "zfs.yml", {"zfs/SUFFIX": "_arm64", "SUFFIX": "_other"})
    assert loaded.units["zfs"].image == "docker.io/rancher/os-zfs:v0.7.13-1_arm64"  # UNIT/NAME first


def test_privileged_as_a_string_is_taken() -> None:
    assert load_file(CORPUS / "open-iscsi.yml").units["open-iscsi"].privileged is True


# --- substitution


def sub(
    text: str, environment: dict[str, str] | None = None, unit: str = "web"
) -> tuple[str | None, Problems]:
    p = Problems("u.yml", base=(unit,))
    return substitute(text, Substitution(unit, environment or {}, DEFAULTS), ("image",), p), p


@pytest.mark.parametrize(("text", "want"), [
    ("${REGISTRY_DOMAIN}/rancher/os-zfs:v1${SUFFIX}", "docker.io/rancher/os-zfs:v1"),
    ("$REGISTRY_DOMAIN/x", "docker.io/x"),
    ("$ARCH-$KERNEL_VERSION.", "amd64-4.14.138-rancher."),
    ("sh -c 'echo $$HOME'", "sh -c 'echo $HOME'"),
    ("$$$$", "$$"),
    ("$${ARCH}", "${ARCH}"),
    ("${TAG:-latest}", "latest"),
    ("${EMPTY:-latest}", "latest"),
    ("${EMPTY-latest}", ""),
    ("${TAG-latest}", "latest"),
    ("${ARCH:-x}", "amd64"),
    ("no dollar", "no dollar"),
])  # fmt: skip
def test_substitution(text: str, want: str) -> None:
    got, p = sub(text, {"EMPTY": ""})
    assert got == want and p.errors == [] and p.warnings == []


def test_unset_variable_is_empty_with_a_warning_naming_it() -> None:
    got, p = sub("busybox${NOPE}:${TAG}")
    assert got == "busybox:" and p.errors == []
    assert [(w.key, w.message.split(":")[0]) for w in p.warnings] == [
        ("web.image", "variable NOPE is not set"),
        ("web.image", "variable TAG is not set"),
    ]


@pytest.mark.parametrize("text", ["a$", "${}", "${A B}", "$1", "${A:?x}", "${A", "$-"])
def test_bad_interpolation_is_an_error(text: str) -> None:
    got, p = sub(text)
    assert got is None
    [error] = p.errors
    assert error.key == "web.image" and "invalid interpolation format" in error.message


def test_interpolation_walks_values_not_keys_nor_other_scalars() -> None:
    p = Problems("u.yml")
    body = {"image": "$ARCH", "labels": {"$ARCH": "$ARCH"}, "command": ["a$ARCH", 5], "privileged": True}
    out = interpolate(body, Substitution("web", {}, DEFAULTS), p)
    assert out == {
        "image": "amd64",
        "labels": {"$ARCH": "amd64"},
        "command": ["aamd64", 5],
        "privileged": True,
    }
    assert body["image"] == "$ARCH"  # the input is not changed


def test_rancheros_defaults_follow_the_machine() -> None:
    assert rancher_defaults("x86_64", "6.1.0") == {
        "REGISTRY_DOMAIN": "docker.io",
        "ARCH": "amd64",
        "SUFFIX": "",
        "KERNEL_VERSION": "6.1.0",
    }
    assert rancher_defaults("aarch64", "6.1.0")["SUFFIX"] == "_arm64"


def test_a_substituted_value_changes_the_unit() -> None:
    units, errors, _ = units_of("w:\n  image: busybox:${TAG}\n", {"TAG": "1.36"})
    assert errors == [] and units["w"].image == "busybox:1.36"
    units, errors, _ = units_of("w:\n  image: busybox\n  command: echo '$$HOME' ${W}\n", {"w/W": "x"})
    assert errors == [] and units["w"].command == ("echo", "$HOME", "x")


# --- RancherOS's built-in units


def test_every_rancheros_builtin_is_in_the_table() -> None:
    from_os_config = {
        "command-volumes",
        "system-volumes",
        "container-data-volumes",
        "user-volumes",
        "media-volumes",
        "all-volumes",
        "acpid",
        "cloud-init-execute",
        "console",
        "logrotate",
        "network",
        "ntp",
        "preload-user-images",
        "syslog",
        "system-cron",
        "udev-cold",
        "udev",
        "docker",
        "subscriber",
    }  # rancher/os os-config.tpl.yml's rancher.services
    assert from_os_config <= set(BUILTINS)
    assert {n for n in from_os_config if n.endswith("-volumes")} == VOLUME_CONTAINERS
    for builtin in BUILTINS.values():
        assert builtin.instead
        assert (builtin.kind == "unit") == (builtin.unit is not None)


ORDERED = """
web:
  image: busybox
  labels:
    io.rancher.os.scope: system
    io.rancher.os.after: {after}
    io.rancher.os.before: {before}
"""


def test_after_a_phase_builtin_is_dropped_silently_before_it_warns() -> None:
    units, errors, warnings = units_of(
        ORDERED.format(after="network,udev,cloud-init-execute", before="syslog")
    )
    assert errors == [] and units["web"].after == frozenset() and units["web"].before == frozenset()
    [warning] = warnings
    assert warning.key == 'web.labels["io.rancher.os.before"]'
    assert (
        "'syslog' is RancherOS's built-in unit" in warning.message and "ordering ignored" in warning.message
    )


def test_builtin_with_no_equivalent_is_ignored_with_a_warning() -> None:
    _, errors, _ = units_of(ORDERED.format(after="ntp", before="web2"))
    assert [e.message for e in errors] == ["unit 'web' is ordered before 'web2', which is not a unit"]
    units, errors, warnings = units_of("web:\n  image: busybox\n  labels: {io.corral.after: ntp}\n")
    assert errors == [] and units["web"].after == frozenset()
    [warning] = warnings
    assert warning.key == 'web.labels["io.corral.after"]' and "runs no NTP service" in warning.message


def test_docker_and_console_order_against_corral_units_when_configured() -> None:
    text = """
docker: {image: corral/docker:latest, labels: {io.corral.scope: system}}
console: {image: corral/console:latest, labels: {io.corral.scope: system}}
cron:
  image: busybox
  labels: {io.rancher.os.scope: system, io.rancher.os.after: "docker,network", io.rancher.os.before: console}
"""
    raws, _ = parse_unit_text(text, "u.yml")
    warnings: list[ConfigError] = []
    units, graph, errors = build_units(raws, {}, defaults=DEFAULTS, warnings=warnings)
    assert errors == [] and warnings == [] and graph is not None
    assert units["cron"].after == frozenset({"docker"}) and units["cron"].before == frozenset({"console"})
    assert graph.deps["cron"] == frozenset({"docker"}) and graph.deps["console"] == frozenset({"cron"})
    units, errors, warnings = units_of(
        text.split("cron:")[0].split("console:")[0] + "cron:" + text.split("cron:")[1]
    )
    assert errors == [] and units["cron"].before == frozenset()
    assert [w.key for w in warnings] == ['cron.labels["io.rancher.os.before"]']


def test_a_configured_unit_named_like_a_builtin_is_that_unit() -> None:
    text = """
all-volumes:
  image: busybox
  volumes: [/srv/data:/data]
  labels: {io.rancher.os.createonly: "true", io.rancher.os.scope: system}
app:
  image: busybox
  volumes_from: [all-volumes]
  labels: {io.rancher.os.scope: system, io.rancher.os.after: all-volumes}
"""
    units, errors, warnings = units_of(text)
    assert errors == [] and warnings == []
    assert units["app"].requires == frozenset({"all-volumes"}) and units["app"].volumes == ()
    assert [v.api() for v in units["app"].volumes_from] == ["all-volumes"]


def test_volumes_from_volume_containers_become_binds() -> None:
    text = """
app:
  image: busybox
  labels: {io.rancher.os.scope: system}
  volumes: [/srv/home:/home]
  volumes_from: [user-volumes, "container-data-volumes:ro", system-volumes, all-volumes]
"""
    units, errors, warnings = units_of(text)
    assert errors == []
    volumes = units["app"].volumes
    assert volumes[0] == Volume("/home", "/srv/home")  # its own wins
    assert Volume("/opt", "/opt") in volumes and Volume("/var/lib/kubelet", "/var/lib/kubelet") in volumes
    assert Volume("/var/lib/docker", "/var/lib/user-docker", ("ro",)) in volumes
    assert len({v.target for v in volumes}) == len(volumes)
    assert units["app"].volumes_from == ()
    # user-volumes is all there: no warning; the others leave paths out (or drop shared) and say which
    assert [w.key for w in warnings] == ["app.volumes_from[1]", "app.volumes_from[2]", "app.volumes_from[3]"]
    assert "/var/lib/m-user-docker" in warnings[0].message and "/usr/share/ros" in warnings[1].message


def test_a_units_own_tmpfs_wins_over_a_volume_containers_bind() -> None:
    units, errors, _ = units_of("app:\n  image: busybox\n  tmpfs: [/run]\n  volumes_from: [system-volumes]\n")
    assert errors == [] and units["app"].tmpfs == (("/run", ""),)
    targets = [v.target for v in units["app"].volumes]
    assert "/run" not in targets and "/var/log" in targets


def test_volumes_from_a_builtin_that_holds_no_volumes_is_ignored() -> None:
    units, errors, warnings = units_of("app:\n  image: busybox\n  volumes_from: [ntp, container:other]\n")
    assert errors == [] and [v.api() for v in units["app"].volumes_from] == ["other"]
    assert [w.key for w in warnings] == ["app.volumes_from[0]"] and "ignored" in warnings[0].message


def test_unknown_target_that_is_no_builtin_is_still_an_error() -> None:
    _, errors, _ = units_of("app:\n  image: busybox\n  labels: {io.rancher.os.after: netwrk}\n")
    assert [e.message for e in errors] == ["unit 'app' is ordered after 'netwrk', which is not a unit"]


# --- scope, scalars, includes, rancher:


def test_rancheros_unit_without_scope_label_runs_in_the_user_dockerd_after_docker() -> None:
    """RancherOS ran a service without io.rancher.os.scope in the user dockerd, after its docker
    service: so does corral, with a note (info), not a warning."""
    docker = "docker:\n  image: corral/docker\n  labels: {io.corral.scope: system}\n"
    units, errors, warnings = units_of(docker + "ecs:\n  image: ${REGISTRY_DOMAIN}/amazon/ecs\n")
    assert errors == [] and warnings == []
    assert units["ecs"].scope == "user" and units["ecs"].after == {"docker"}
    assert units["ecs"].notes and "runs in the user dockerd, as RancherOS ran it" in units["ecs"].notes[0]
    assert units["docker"].scope == "system" and units["docker"].notes == ()
    units, _, _ = units_of(docker + "ecs:\n  image: x\n  labels: {io.rancher.os.after: console}\n")
    assert units["ecs"].scope == "user" and units["ecs"].after == {"docker"}


def test_rancheros_unit_without_scope_label_and_no_user_dockerd_is_warned_about() -> None:
    units, errors, warnings = units_of("ecs:\n  image: ${REGISTRY_DOMAIN}/amazon/ecs\n")
    assert errors == [] and units["ecs"].scope == "user" and units["ecs"].after == frozenset()
    assert [w.key for w in warnings] == ["ecs.labels"]
    assert "the unit 'docker') is not configured" in warnings[0].message


def test_corral_units_and_scoped_rancheros_units_keep_their_scope() -> None:
    for text, scope in (
        ("w:\n  image: x\n", "system"),  # corral's own default
        ("w:\n  image: ${REGISTRY_DOMAIN}/x\n  labels: {io.corral.scope: system}\n", "system"),
        ("w:\n  image: x\n  labels: {io.rancher.os.scope: system, io.rancher.os.after: network}\n",
         "system"),
        ("w:\n  image: x\n  labels: {io.rancher.os.scope: user}\n", "user"),
    ):
        units, errors, warnings = units_of(text)
        assert errors == [] and warnings == [], text
        assert units["w"].scope == scope and units["w"].notes == () and "docker" not in units["w"].after


def test_rancheros_unit_now_in_the_user_dockerd_cannot_share_a_system_units_volumes() -> None:
    """The two dockerds cannot see each other's containers: volumes_from a system unit is an error
    naming both scopes (as it was in RancherOS, where it could not work either)."""
    _, errors, _ = units_of(
        "docker:\n  image: d\n  labels: {io.corral.scope: system}\n"
        "data:\n  image: x\n  labels: {io.rancher.os.scope: system, io.rancher.os.createonly: 'true'}\n"
        "app:\n  image: x\n  labels: {io.rancher.os.after: docker}\n  volumes_from: [data]\n"
    )
    assert [e.key for e in errors] == ["app.volumes_from"]
    assert "(user) refers to 'data', which runs in the other dockerd (system)" in errors[0].message


@pytest.mark.parametrize(
    ("value", "want"),
    [('"true"', True), ('"False"', False), ("true", True), ("yes", True), ('"off"', False), ("N", False)],
)
def test_libcompose_boolean_strings(value: str, want: bool) -> None:
    units, errors, _ = units_of(f"w:\n  image: x\n  privileged: {value}\n  read_only: {value}\n")
    assert errors == [] and units["w"].privileged is want and units["w"].read_only is want


def test_services_include_url_is_a_warning_not_an_error(tmp_path: Path) -> None:
    url = "https://raw.githubusercontent.com/rancher/os-services/master/z/zfs.yml"
    loaded = load_units(
        {"corral": {"services_include": {url: True}}}, unit_dirs=[tmp_path], defaults=DEFAULTS
    )
    assert loaded.ok and loaded.units == {}
    [warning] = loaded.warnings
    assert warning.key == f"corral.services_include.{url}" or url in warning.key
    assert "not fetched" in warning.message


RANCHEROS_CONFIG = """#cloud-config
rancher:
  services_include:
    https://example.com/services/zfs.yml: true
  services:
    kernel-extras:
      image: ${REGISTRY_DOMAIN}/rancher/os-extras:${KERNEL_VERSION}${SUFFIX}
      privileged: "true"
      labels:
        io.rancher.os.detach: "false"
        io.rancher.os.after: network
        io.rancher.os.scope: system
      volumes_from: [all-volumes]
"""


def test_rancheros_cloud_config_passes_the_config_store_with_warnings(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (paths.config_dir / "cloud-config.yml").write_text(RANCHEROS_CONFIG)
    store = ConfigStore(paths, cmdline_text="", checks=domain_checks(paths))
    result = store.load()
    assert result.errors == []
    keys = [w.key for w in result.warnings]
    assert "corral.services.kernel-extras.volumes_from[0]" in keys
    assert any("services_include" in k for k in keys)
    loaded = store.parsed("units")
    assert isinstance(loaded, Loaded)
    assert loaded.units["kernel-extras"].image.startswith("docker.io/rancher/os-extras:")
    assert all(
        w.file.endswith("cloud-config.yml") for w in result.warnings if w.key.startswith("corral.services.")
    )


def test_empty_rancher_section_is_taken() -> None:
    layer, errors = check_text(
        "#cloud-config\nhostname: h\nrancher:\n#  debug: true\n", "c.yml", Validator(Schema())
    )
    assert errors == [] and layer is not None and layer.data == {"hostname": "h"}
    layer, errors = check_text("corral: {debug: true}\nrancher:\n", "c.yml", Validator(Schema()))
    assert errors == [] and layer is not None and layer.data == {"corral": {"debug": True}}


def test_docs_table_names_every_builtin() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "units.md").read_text()
    section = docs.split("## RancherOS service files", 1)[1].split("\n## ", 1)[0]
    for name in BUILTINS:
        assert f"`{name}`" in section, name


def test_an_environment_name_with_no_value_is_the_empty_string_as_rancheros_read_it() -> None:
    """RancherOS's own example cloud-config sets ``SUFFIX:`` with no value (amd64's empty suffix)."""
    config = {"corral": {"environment": {"SUFFIX": None},
                         "services": {"svc": {"image": "busybox${SUFFIX}", "environment": ["SUFFIX"]}}}}
    loaded = load_units(config, unit_dirs=[])
    assert not loaded.errors, loaded.errors
    assert loaded.units["svc"].image == "busybox"
    assert dict(loaded.units["svc"].environment)["SUFFIX"] == ""


def test_including_a_rancheros_os_service_corral_does_not_ship_is_a_warning_a_typo_an_error() -> None:
    """RancherOS fetched ``services_include: {kernel-headers: true}`` from its service repository; corral
    ships none of them: a warning naming it (nothing runs). A name of neither is still an error."""
    loaded = load_units({"corral": {"services_include": {"kernel-headers": True, "amazon-ecs-agent": True}}},
                        unit_dirs=[])
    assert not loaded.errors, loaded.errors
    assert [w.key for w in loaded.warnings] == ["corral.services_include.amazon-ecs-agent",
                                                "corral.services_include.kernel-headers"]
    assert "not shipped with corral" in loaded.warnings[0].message
    typo = load_units({"corral": {"services_include": {"kernel-headrs": True}}}, unit_dirs=[])
    assert [e.key for e in typo.errors] == ["corral.services_include.kernel-headrs"]


def test_a_variable_written_at_the_services_level_is_ignored_with_a_warning_as_libcompose_did() -> None:
    """RancherOS's docs (running-rancher-on-rancheros, block 5) put CATTLE_HOST_LABELS under an empty
    environment:, at the service's level: libcompose ignored the unknown key and ran the service."""
    text = ("agent:\n  image: rancher/agent:v0.8.2\n  privileged: true\n  environment:\n"
            "  CATTLE_HOST_LABELS: foo=bar&hello=world\n")
    units, errors, warnings = units_of(text)
    assert errors == [] and units["agent"].environment == ()
    assert [w.key for w in warnings] == ["agent.CATTLE_HOST_LABELS"]
    assert "looks like an environment variable: ignored" in warnings[0].message
    assert "indent it under environment" in warnings[0].message
    _, errors, _ = units_of("agent:\n  image: x\n  restrat: always\n")  # a misspelt compose key: an error
    assert [e.key for e in errors] == ["agent.restrat"]


def test_a_service_from_a_file_rancheros_would_have_run_is_rancheros_by_origin(tmp_path: Path) -> None:
    """No RancherOS label nor variable, but from a RancherOS os-services file (or a services_include
    URL's copy): it runs where RancherOS ran it. The same service in a file of one's own stays in the
    system dockerd."""
    plain = "svc:\n  image: busybox\n"
    (tmp_path / "open-vm-tools.yml").write_text(plain)
    (tmp_path / "mine.yml").write_text(plain.replace("svc", "mine"))
    config = {"corral": {"services_include": {"open-vm-tools": True, "mine": True}}}
    loaded = load_units(config, unit_dirs=[tmp_path], defaults=DEFAULTS)
    assert loaded.units["svc"].scope == "user" and loaded.units["mine"].scope == "system"
    raws, _ = parse_unit_text(plain, "https://example.com/x.yml", rancheros=True)
    units, _, _ = build_units(raws, {}, defaults=DEFAULTS)
    assert units["svc"].scope == "user"


def test_a_rancheros_unit_ordered_before_docker_is_not_put_after_it() -> None:
    units, errors, _ = units_of("docker:\n  image: d\n  labels: {io.corral.scope: system}\n"
                                "pre:\n  image: x\n  labels: {io.rancher.os.before: docker}\n")
    assert errors == [] and units["pre"].scope == "user" and units["pre"].after == frozenset()
