"""Strict YAML reading: duplicate keys, what the loader records for the schema walker, the
YAML 1.1 traps the walker catches, and the shape of a document."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.config.errors import ConfigError
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator
from supervisor.config.yamlload import MAX_DUPLICATES, MAX_NODES, load_document, parse_yaml

VALIDATOR = Validator(Schema())


def errors_of(text: str) -> list[tuple[str, str]]:
    return [(e.key, e.message) for e in check_text(text, "f.yml", VALIDATOR)[1]]


def accepted(text: str) -> dict[str, Any]:
    layer, errors = check_text(text, "f.yml", VALIDATOR)
    assert errors == []
    assert layer is not None
    return layer.data


def test_cloud_config_header_and_empty_documents() -> None:
    assert accepted("#cloud-config\n") == {}
    assert accepted("") == {}
    assert accepted("#cloud-config\nhostname: h\n") == {"hostname": "h"}


def test_duplicate_keys_name_the_path_and_both_lines() -> None:
    text = "corral:\n  environment:\n    A: '1'\n    B: '2'\n    A: '3'\n"
    assert errors_of(text) == [
        ("corral.environment.A", "duplicate key 'A' at line 5 (first given at line 3)")
    ]
    [error] = check_text(text, "f.yml", VALIDATOR)[1]
    assert error == ConfigError("f.yml", "corral.environment.A", error.message, 5)
    assert str(error).startswith("f.yml: corral.environment.A: duplicate key")


# cloud-init's own doc/examples/cloud-config-add-apt-repos.txt gives `apt:` three times (alternatives)
APT_THRICE = "apt:\n  primary: [a]\n# or\napt:\n  primary: [b]\n# or\napt:\n  primary: [c]\nhostname: h\n"


def test_a_duplicate_key_corral_ignores_is_a_warning_and_the_last_one_counts() -> None:
    """As PyYAML, and so cloud-init, reads it; corral does not read the value anyway."""
    layer, errors = check_text(APT_THRICE, "f.yml", VALIDATOR)
    assert errors == []
    assert layer is not None
    assert layer.data == {"apt": {"primary": ["c"]}, "hostname": "h"}
    suffix = ": the last one counts, as YAML readers take it (corral ignores this key)"
    assert layer.warnings == (
        ConfigError("f.yml", "apt", "duplicate key 'apt' at line 4 (first given at line 1)" + suffix, 4),
        ConfigError("f.yml", "apt", "duplicate key 'apt' at line 7 (first given at line 1)" + suffix, 7),
    )


def test_a_duplicate_under_a_key_corral_ignores_is_a_warning_also_as_rancher() -> None:
    layer, errors = check_text("rancher:\n  console:\n    a: 1\n    a: 2\n", "f.yml", VALIDATOR)
    assert errors == []
    assert layer is not None
    assert [w.key for w in layer.warnings] == ["rancher.console.a"]


def test_a_duplicate_next_to_a_key_corral_ignores_is_still_an_error() -> None:
    assert errors_of("apt: {}\nhostname: a\nhostname: b\n") == [
        ("hostname", "duplicate key 'hostname' at line 3 (first given at line 2)")
    ]
    text = "corral:\n  docker: {}\n  log: {level: info, level: debug}\n"
    assert errors_of(text)[0][0] == "corral.log.level"


def test_tolerated_duplicates_are_reported_at_most_max_duplicates_times() -> None:
    text = "snap:\n" + "  a: 1\n" * (MAX_DUPLICATES + 6)
    layer, errors = check_text(text, "f.yml", VALIDATOR)
    assert errors == []
    assert layer is not None
    assert len(layer.warnings) == MAX_DUPLICATES + 1
    assert layer.warnings[-1].message == (
        "5 more duplicate keys under keys corral ignores: the last of each counts"
    )


def test_duplicates_that_yaml_resolves_to_the_same_key() -> None:
    # on and yes are both boolean true under YAML 1.1
    assert errors_of("corral:\n  services_include:\n    on: true\n    yes: false\n")[0][1].startswith(
        "duplicate key 'True'"
    )


def test_merge_key_overrides_are_not_duplicates() -> None:
    data = accepted("x-defaults: &d {level: info, keep: 3}\ncorral:\n  log:\n    <<: *d\n    level: error\n")
    assert data["corral"]["log"] == {"level": "error", "keep": 3}


def test_trap_in_a_merged_mapping_is_found() -> None:
    assert errors_of("x-d: &d {keep: 010}\ncorral:\n  log:\n    <<: *d\n")[0][0] == "corral.log.keep"


def test_recursive_alias_and_alias_bombs_are_errors() -> None:
    assert "recursive alias" in errors_of("corral:\n  network: &n\n    self: *n\n")[0][1]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        prev = chr(ord(level) - 1)
        bomb += (
            f"{level}: &{level} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        )
    _, message = errors_of(bomb)[0]
    assert f"more than {MAX_NODES} values" in message


def test_loader_records_lines_and_plain_literals() -> None:
    _, nodes, errors = parse_yaml("a:\n  b: 0644\n  c: '0644'\n  d: [on]\n", "f")
    assert errors == []
    assert nodes[("a", "b")].literal == "0644"
    assert nodes[("a", "b")].line == 2
    assert nodes[("a", "c")].literal is None  # quoted: a string, nothing to check
    assert nodes[("a", "d", 0)].literal == "on"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("hostname: yes\n", "hostname", 'YAML 1.1 reads unquoted yes as boolean true; quote it: "yes"'),
        ("hostname: No\n", "hostname", "boolean false"),
        ("hostname: true\n", "hostname", 'expected a string, got boolean true; quote it: "true"'),
        ("hostname: 0777\n", "hostname", "reads 0777 (leading zero) as octal 511"),
        ("hostname: 12:30\n", "hostname", "base-60 number 750"),
        ("hostname: 1.10\n", "hostname", 'got number 1.1; quote it: "1.10"'),
        ("hostname: 2001-01-01\n", "hostname", "as a date"),
        ("corral: {state: {wait: 0010}}\n", "corral.state.wait", "octal (8)"),
        ("corral: {shutdown_grace: 1:00}\n", "corral.shutdown_grace", "base-60 number (60)"),
        ("corral: {services: {x: {created: 2001-01-01}}}\n", "corral.services.x.created", "as a date"),
        ("ssh_authorized_keys: [on]\n", "ssh_authorized_keys[0]", 'quote it: "on"'),
        ("runcmd: [[echo, off]]\n", "runcmd[0][1]", 'quote it: "off"'),
        ("mounts: [[/dev/sdb, /mnt, auto, 0644]]\n", "mounts[0][3]", "octal 420"),
        ("write_files: [{path: /x, permissions: 755}]\n", "write_files[0].permissions", 'string: "0755"'),
        (
            "write_files: [{path: /x, permissions: 420}]\n",
            "write_files[0].permissions",
            '"0644", which is what 420 means',
        ),
        ("write_files: [{path: /x, permissions: '0o1777x'}]\n", "write_files[0].permissions", "not an octal"),
    ],
)
def test_yaml_1_1_traps(text: str, key: str, fragment: str) -> None:
    errors = errors_of(text)
    assert [k for k, _ in errors] == [key]
    assert fragment in errors[0][1]


@pytest.mark.parametrize(
    ("mode", "canonical"),
    [
        ("0644", "0644"),
        ("'0644'", "0644"),
        ("'644'", "0644"),
        ("'0o755'", "0755"),
        ("01777", "1777"),
        ("'1777'", "1777"),
        ("0", "0000"),
    ],
)
def test_file_modes_accepted_and_canonical(mode: str, canonical: str) -> None:
    data = accepted(f"write_files: [{{path: /x, permissions: {mode}}}]\n")
    assert data["write_files"][0]["permissions"] == canonical


def test_traps_do_not_fire_where_the_type_is_wanted() -> None:
    accepted("corral: {debug: on, state: {required: yes, wait: 0}, sysctl: {a: 1, b: '0644'}}\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[1, 2]\n", "got a list"),
        ("hello\n", "got the scalar 'hello'"),
        ("a: b\n---\nc: d\n", "more than one YAML document"),
        ("a: 'unterminated\n", "YAML syntax error at line"),
        ("? [a, b]\n: c\n", "YAML syntax error"),
    ],
)
def test_document_shape_errors(text: str, fragment: str) -> None:
    doc, errors = load_document(text, "f.yml")
    assert doc is None
    assert [e.key for e in errors] == ["(document)"]
    assert fragment in errors[0].message
