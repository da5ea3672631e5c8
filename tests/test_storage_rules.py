"""Storage rules: parsing ``corral.state`` and ``mounts:``; every error names its key."""

from __future__ import annotations

from typing import Any

import pytest

from storage.mountspec import MS_NOATIME
from storage.rules import (
    MS_RDONLY,
    Match,
    Parsed,
    StateRule,
    parse_storage,
)
from supervisor.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID


def errors(parsed: Parsed) -> dict[str, str]:
    return {e.key: e.message for e in parsed.errors}


def ok(config: dict[str, Any]) -> Parsed:
    parsed = parse_storage(config)
    assert parsed.ok, parsed.errors
    assert parsed.rules is not None
    return parsed


def test_defaults_without_config() -> None:
    parsed = ok({})
    assert parsed.rules is not None
    state = parsed.rules.state
    assert state == StateRule()
    assert state.dev == (Match(label="CORRAL_STATE"), Match(label="RANCHER_STATE"))
    assert state.wait == 0 and not state.required and state.autoformat == ()
    assert parsed.rules.mounts == ()


def test_state_full_form_and_rancher_alias() -> None:
    raw = {"dev": "UUID=1234-abcd", "fstype": "ext4", "required": True, "autoformat": ["vdb", "/dev/vdc"],
           "wait": 5}
    for top in ("corral", "rancher"):
        state = ok({top: {"state": raw}}).rules.state  # type: ignore[union-attr]
        assert state.dev == (Match(uuid="1234-abcd"),)
        assert state.fstype == "ext4" and state.required and state.wait == 5.0
        assert state.autoformat == ("/dev/vdb", "/dev/vdc")
        assert state.label == "CORRAL_STATE"  # what mkfs writes when dev is not a label


def test_state_label_forms() -> None:
    assert ok({"corral": {"state": {"dev": "LABEL=RANCHER_STATE"}}}).rules.state.dev == (  # type: ignore[union-attr]
        Match(label="RANCHER_STATE"),)
    state = ok({"corral": {"state": {"dev": "LABEL=MYSTATE"}}}).rules.state  # type: ignore[union-attr]
    assert state.dev == (Match(label="MYSTATE"),) and state.label == "MYSTATE"
    explicit_default = ok({"corral": {"state": {"dev": "LABEL=CORRAL_STATE"}}}).rules.state  # type: ignore[union-attr]
    assert explicit_default.dev == (Match(label="CORRAL_STATE"), Match(label="RANCHER_STATE"))
    assert ok({"corral": {"state": {"required": True}}}).rules.state.wait == 10  # type: ignore[union-attr]


@pytest.mark.parametrize(("state", "key", "fragment"), [
    ({"dev": "PARTUUID=abc"}, "corral.state.dev", "PARTUUID= and PARTLABEL= are not supported"),
    ({"dev": "LABEL="}, "corral.state.dev", "empty label"),
    ({"dev": "/dev/sd*"}, "corral.state.dev", "is not LABEL=..., UUID=... or a device path"),
    ({"dev": 3}, "corral.state.dev", "expected a string, got the number 3"),
    ({"autoformat": ["LABEL=x"]}, "corral.state.autoformat[0]", "is not a device path"),
    ({"autoformat": ["/dev/vdb", "vdb"]}, "corral.state.autoformat[1]", "/dev/vdb is listed twice"),
    ({"autoformat": 3}, "corral.state.autoformat", "expected a list of device paths"),
    ({"wait": -1}, "corral.state.wait", "-1 is out of range (0 or more)"),
    ({"wait": True}, "corral.state.wait", "expected a number of seconds, got the boolean true"),
    ({"required": "yes"}, "corral.state.required",
     "expected a boolean (true or false), got the string 'yes'"),
    ({"fstype": "ext4;rm"}, "corral.state.fstype", "is not a filesystem type"),
    ({"devs": "LABEL=x"}, "corral.state.devs", "unknown key; did you mean 'corral.state.dev'?"),
])
def test_state_errors_name_the_key(state: dict[str, Any], key: str, fragment: str) -> None:
    parsed = parse_storage({"corral": {"state": state}}, source="cloud-config.yml")
    assert parsed.rules is None
    found = errors(parsed)
    assert key in found, found
    assert fragment in found[key]
    assert all(e.file == "cloud-config.yml" for e in parsed.errors)


def test_rancher_key_is_named_as_written() -> None:
    parsed = parse_storage({"rancher": {"state": {"wait": "x"}}})
    assert list(errors(parsed)) == ["rancher.state.wait"]


def test_cloud_config_list_form() -> None:
    rules = ok({"mounts": [
        ["LABEL=DATA", "/mnt/data"],
        ["sdb1", "/mnt/b", "xfs", "noatime,ro", "0", "2"],
        ["UUID=AbC", "/mnt/c", "auto", "defaults,nofail,x-systemd.automount"],
        ["/dev/sd*2", "/mnt/g", None, "noauto"],
        [3, "/mnt/n"],
    ]}).rules
    assert rules is not None
    a, b, c, g, n = rules.mounts
    assert (a.key, a.match, a.path, a.fstype, a.fsck) == ("mounts[0]", Match(label="DATA"), "/mnt/data", None,
                                                          False)
    assert a.options.flags == MS_NODEV | MS_NOSUID and a.options.data == ""
    assert b.match == Match(device="/dev/sdb1") and b.fstype == "xfs" and b.fsck
    assert b.options.flags == MS_NODEV | MS_NOSUID | MS_NOATIME | MS_RDONLY
    assert c.match == Match(uuid="AbC") and c.fstype is None and c.options.flags == MS_NODEV | MS_NOSUID
    assert g.match == Match(device="/dev/sd*2") and g.match.device_is_glob and not g.auto
    assert n.match == Match(device="/dev/3")


def test_map_form() -> None:
    rules = ok({"mounts": [
        {"match": {"label": "DATA", "fstype": "ext4"}, "path": "/mnt/data/",
         "options": ["dev", "suid", "noexec", "data=journal"],
         "fsck": True, "on_remove": "ignore"},
        {"match": {"serial": "QM0000*", "device": "/dev/sd?1"}, "path": "/mnt/usb"},
    ]}).rules
    assert rules is not None
    data, usb = rules.mounts
    assert data.match == Match(label="DATA", fstype="ext4") and data.fstype == "ext4"  # the match's type
    assert data.path == "/mnt/data" and data.fsck and data.on_remove == "ignore"
    assert data.options.flags == MS_NOEXEC and data.options.data == "data=journal"
    assert usb.match == Match(device="/dev/sd?1", serial="QM0000*") and usb.on_remove == "stop"


def test_swap_is_ignored_with_a_warning() -> None:
    parsed = ok({"mounts": [["/dev/vdb", "none", "swap", "sw"]]})
    assert parsed.rules is not None and parsed.rules.mounts == ()
    assert [w.key for w in parsed.warnings] == ["mounts[0]"]


@pytest.mark.parametrize(("mounts", "key", "fragment"), [
    ([[]], "mounts[0][0]", "a device is required"),
    ([["LABEL=A", "relative/path"]], "mounts[0][1]", "is not an absolute path"),
    ([{"match": {"label": "A"}, "path": "/"}], "mounts[0].path", "is the root"),
    ([{"match": {"label": "A"}, "path": "/proc/x"}], "mounts[0].path", "is under /proc"),
    ([["LABEL=A", "/mnt/a", "ext4", "bind"]], "mounts[0][0]", "a bind mount's source is a path"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "options": "bind"}], "mounts[0].options",
     "a bind mount is a list entry"),
    ([["nas:/export", "/mnt/a", "nfs", "vers=4,-o x"]], "mounts[0][3]", "is not an NFS mount option"),
    ([["-o:/export", "/mnt/a", "nfs"]], "mounts[0][0]", "is not an NFS export (server:/path)"),
    ([["LABEL=A", "/mnt/a", "ext4", "defaults", "0", "x"]], "mounts[0][5]", "is not a fsck pass number"),
    ([["LABEL=A", "/mnt/a", "ext4", "defaults", "z"]], "mounts[0][4]", "is not a dump frequency"),
    ([{"match": {"label": "A"}, "path": "/mnt/a"}, ["LABEL=B", "/mnt/a/"]], "mounts[1][1]",
     "/mnt/a is also the path of mounts[0]"),
    ([["LABEL=B", "/mnt/a/"], {"match": {"label": "A"}, "path": "/mnt/a"}], "mounts[1].path",
     "/mnt/a is also the path of mounts[0]"),
    ([["LABEL=A", "/mnt/a", {"x": 1}]], "mounts[0][2]", "expected a string, got a map"),
    ([["bad name", "/mnt/a"]], "mounts[0][0]", "is not LABEL=..., UUID=..., a device path or a glob"),
    (["LABEL=A /mnt/a"], "mounts[0]", "expected a list [device, path, fstype, options] or a map"),
    ({"a": 1}, "mounts", "expected a list, got a map"),
    ([{"path": "/mnt/a"}], "mounts[0].match", "required"),
    ([{"match": {"label": "A"}}], "mounts[0].path", "required: where to mount"),
    ([{"match": {}, "path": "/mnt/a"}], "mounts[0].match", "give at least one of"),
    ([{"match": {"lable": "A"}, "path": "/mnt/a"}], "mounts[0].match.lable",
     "did you mean 'mounts[0].match.label'?"),
    ([{"label": "A", "path": "/mnt/a"}], "mounts[0].label", "put it under 'match:'"),
    ([{"match": {"label": ""}, "path": "/mnt/a"}], "mounts[0].match.label", "must not be empty"),
    ([{"match": {"device": "LABEL=x"}, "path": "/mnt/a"}], "mounts[0].match.device",
     "not a device path or glob"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "on_remove": "kill"}], "mounts[0].on_remove",
     "is not one of: stop, ignore"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "on_remove": "stp"}], "mounts[0].on_remove",
     "'stp' is not one of: stop, ignore; did you mean 'stop'?"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "fsck": "yes"}], "mounts[0].fsck",
     "expected a boolean (true or false)"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "options": [1]}], "mounts[0].options",
     "options must be strings"),
    ([{"match": {"label": "A"}, "path": "/mnt/a", "options": "loop"}], "mounts[0].options",
     "loop devices are not set up"),
])
def test_mount_errors_name_the_key(mounts: Any, key: str, fragment: str) -> None:
    parsed = parse_storage({"mounts": mounts})
    assert parsed.rules is None
    found = errors(parsed)
    assert key in found, found
    assert fragment in found[key], found[key]


def test_all_errors_are_reported_at_once() -> None:
    parsed = parse_storage({"corral": {"state": {"wait": -1}},
                            "mounts": [["LABEL=A", "rel"],
                                       {"match": {"label": "B"}, "path": "/mnt/b", "x": 1}]})
    assert set(errors(parsed)) == {"corral.state.wait", "mounts[0][1]", "mounts[1].x"}
