"""Kernel command line -> config: corral.*/rancher.* keys, typing by YAML scalar except where the schema
says string, lists, quotes, flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.config import ConfigStore
from supervisor.config.cmdline import param_value, parse_cmdline, split_params
from supervisor.config.schema import Schema
from supervisor.paths import Paths

SCHEMA = Schema()


def parse(text: str) -> dict[str, Any]:
    doc, errors = parse_cmdline(text, SCHEMA)
    assert errors == []
    return doc.data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("corral.log.level=debug", {"corral": {"log": {"level": "debug"}}}),
        ("rancher.log.level=debug", {"corral": {"log": {"level": "debug"}}}),
        ("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet console=ttyS0", {}),
        ("corral.slot=B corral.debug", {"corral": {"debug": True}}),  # GRUB's slot is not config
        ("corral.slot=B corral.trial=1 corral.debug", {"corral": {"debug": True}}),  # nor its trial mark
        ("corral=1 corralx.debug=true rancheros.debug=1 x.corral.debug=1", {}),
        ("corral.debug", {"corral": {"debug": True}}),
        ("rancher.debug", {"corral": {"debug": True}}),
        ("corral.debug=false", {"corral": {"debug": False}}),
        ("corral.state.wait=30", {"corral": {"state": {"wait": 30}}}),
        ("corral.shutdown_grace=2.5", {"corral": {"shutdown_grace": 2.5}}),
        ("corral.state.required=true", {"corral": {"state": {"required": True}}}),
        # the schema says string: the text stays as given
        ("corral.environment.PORT=8080", {"corral": {"environment": {"PORT": "8080"}}}),
        ("corral.password=0123", {"corral": {"password": "0123"}}),
        ("corral.log.level=on", {"corral": {"log": {"level": "on"}}}),
        ("corral.state.dev=LABEL=STATE", {"corral": {"state": {"dev": "LABEL=STATE"}}}),
        # lists
        ("corral.modules=[btrfs,nbd]", {"corral": {"modules": ["btrfs", "nbd"]}}),
        ("corral.modules=[btrfs, nbd]", {"corral": {"modules": ["btrfs", "nbd"]}}),
        ('corral.modules="[btrfs, nbd]"', {"corral": {"modules": ["btrfs", "nbd"]}}),
        ("corral.modules=[]", {"corral": {"modules": []}}),
        ("corral.modules=[1]", {"corral": {"modules": ["1"]}}),
        (
            "corral.cloud_init.datasources=[file:/media/cd,cmdline]",
            {"corral": {"cloud_init": {"datasources": ["file:/media/cd", "cmdline"]}}},
        ),
        # quotes keep spaces; a quoted scalar is a string
        (
            'corral.environment.GREETING="hello world"',
            {"corral": {"environment": {"GREETING": "hello world"}}},
        ),
        (
            '"corral.environment.GREETING=hello world"',
            {"corral": {"environment": {"GREETING": "hello world"}}},
        ),
        ('corral.sysctl.vm.overcommit="1"', {"corral": {"sysctl": {"vm.overcommit": "1"}}}),
        # maps with free-form keys take the rest of the dotted name as one key
        ("corral.sysctl.net.ipv4.ip_forward=1", {"corral": {"sysctl": {"net.ipv4.ip_forward": 1}}}),
        # free-form sections nest
        (
            "corral.network.dns.nameservers=[1.1.1.1,8.8.8.8]",
            {"corral": {"network": {"dns": {"nameservers": ["1.1.1.1", "8.8.8.8"]}}}},
        ),
        # later wins, maps merge
        ("corral.log.level=debug corral.log.level=error", {"corral": {"log": {"level": "error"}}}),
        ("corral.log.level=debug rancher.log.keep=2", {"corral": {"log": {"level": "debug", "keep": 2}}}),
        # whitespace of all kinds, and /proc/cmdline's trailing newline
        ("  corral.debug\tcorral.log.keep=1\n", {"corral": {"debug": True, "log": {"keep": 1}}}),
        ("corral.environment.EMPTY=", {"corral": {"environment": {"EMPTY": ""}}}),
    ],
)
def test_parse(text: str, expected: dict[str, Any]) -> None:
    assert parse(text) == expected


def test_split_params_keeps_quotes_and_brackets_together() -> None:
    assert split_params('a=1 corral.x=[a, b] b="c d" root=[x y]') == [
        "a=1",
        "corral.x=[a, b]",
        'b="c d"',
        "root=[x",
        "y]",
    ]


def test_param_value() -> None:
    assert param_value("quiet cloud-config-url=file:///x/y.yml", "cloud-config-url") == "file:///x/y.yml"
    assert param_value("quiet", "cloud-config-url") is None


def test_empty_segment_is_an_error_naming_cmdline_and_the_key() -> None:
    doc, errors = parse_cmdline("corral..debug=1 corral.log.level=debug", SCHEMA)
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral..debug")]
    assert doc.data == {"corral": {"log": {"level": "debug"}}}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.sandbox(tmp_path)


def test_cmdline_values_overlay_the_files(paths: Paths) -> None:
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text("corral:\n  log: {level: warning, keep: 9}\n")
    store = ConfigStore(paths, cmdline_text="quiet rancher.log.level=debug")
    assert store.reload().ok
    assert store.get("corral.log") == {"level": "debug", "keep": 9, "max_bytes": 10485760}
    assert store.provenance["corral.log.level"] == "cmdline"
    assert store.provenance["corral.log.keep"] == str(paths.config_dir / "cloud-config.yml")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("corral.log.level=loud", "corral.log.level", "is not one of"),
        ("corral.debug=maybe", "corral.debug", "expected a boolean"),
        ("corral.state.wait=010", "corral.state.wait", "octal"),
        ("corral.nosuch=1", "corral.nosuch", "unknown key"),
        ("corral.log=5", "corral.log", "expected a mapping"),
        ("corral..x=1", "corral..x", "empty key segment"),
    ],
)
def test_invalid_cmdline_is_rejected_naming_cmdline(paths: Paths, text: str, key: str, fragment: str) -> None:
    store = ConfigStore(paths, cmdline_text=text)
    errors, _ = store.reload()
    assert [(e.file, e.key) for e in errors] == [("cmdline", key)]
    assert fragment in errors[0].message
    assert str(errors[0]).startswith(f"cmdline: {key}: ")
    assert store.current == store.defaults


def test_cmdline_is_read_from_paths_when_not_given(paths: Paths) -> None:
    paths.cmdline_file.write_text("root=/dev/vda corral.log.level=error\n")
    store = ConfigStore(paths)
    assert store.reload().ok
    assert store.get("corral.log.level") == "error"


def test_missing_cmdline_file_is_empty(paths: Paths) -> None:
    store = ConfigStore(paths)
    assert store.reload() == ([], [])
