"""Names from the command line: device specs (`corral dev`), rules (`corral storage mount|unmount`), and
the plan leaving a rule unmounted on request alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from storage.observe import BlockDevice, FsFacts, facts_from_blkid, parse_blkid_export
from storage.plan import Mount, plan
from storage.resolve import DeviceSpec, find_devices, find_rule, parse_device_spec
from storage.rules import parse_storage
from supervisor.mountinfo import MountEntry

UUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PARTUUID = "5F2C9A1E-0000-4000-8000-00000000CAFE"


def device(name: str, minor: int, fs: FsFacts | None, links: tuple[str, ...] = ()) -> BlockDevice:
    return BlockDevice(name, f"/dev/{name}", 8, minor, 2048, diskseq=minor + 1, links=links, fs=fs)


DEVICES = [
    device("sdb1", 17, FsFacts(type="ext4", label="DATA", uuid=UUID, partuuid=PARTUUID, partlabel="data"),
           links=("/dev/disk/by-label/DATA",)),
    device("sdc1", 33, FsFacts(type="vfat", label="DATA")),
    device("sdd", 48, None),
]


@pytest.mark.parametrize(("text", "spec"), [
    ("LABEL=DATA", DeviceSpec("LABEL", "DATA")),
    ('label="My Disk"', DeviceSpec("LABEL", "My Disk")),
    (f"UUID={UUID}", DeviceSpec("UUID", UUID)),
    (f"partuuid={PARTUUID}", DeviceSpec("PARTUUID", PARTUUID)),
    ("PARTLABEL=data", DeviceSpec("PARTLABEL", "data")),
    ("/dev/sdb1", DeviceSpec("path", "/dev/sdb1")),
    ("sdb1", DeviceSpec("path", "/dev/sdb1")),
    ("/dev/disk/by-label/../by-label/DATA", DeviceSpec("path", "/dev/disk/by-label/DATA")),
])
def test_parse_device_spec(text: str, spec: DeviceSpec) -> None:
    assert parse_device_spec(text) == spec


@pytest.mark.parametrize(("text", "reason"), [
    ("", "an empty device spec"),
    ("SERIAL=x", "SERIAL= is not one of LABEL=, UUID=, PARTUUID=, PARTLABEL="),
    ("UUID=", "empty uuid"),
])
def test_bad_device_specs_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_device_spec(text)


@pytest.mark.parametrize(("text", "names"), [
    ("LABEL=DATA", ["/dev/sdb1", "/dev/sdc1"]),  # several: by name
    (f"UUID={UUID.upper()}", ["/dev/sdb1"]),  # UUIDs without regard to case
    (f"PARTUUID={PARTUUID.lower()}", ["/dev/sdb1"]),
    ("PARTLABEL=data", ["/dev/sdb1"]),
    ("/dev/disk/by-label/DATA", ["/dev/sdb1"]),  # a udev link
    ("sdd", ["/dev/sdd"]),
    ("LABEL=data", []),  # labels exactly
    ("UUID=nope", []),
])
def test_find_devices(text: str, names: list[str]) -> None:
    assert [d.devname for d in find_devices(parse_device_spec(text), DEVICES)] == names


def test_a_path_found_by_its_device_number() -> None:
    spec = parse_device_spec("/dev/block/8:48")  # a link udev did not record: stat gives 8:48
    assert [d.devname for d in find_devices(spec, DEVICES, devno=(8, 48))] == ["/dev/sdd"]


def test_blkid_and_udev_partition_entries() -> None:
    out = f"UUID={UUID}\nTYPE=ext4\nPART_ENTRY_UUID={PARTUUID}\nPART_ENTRY_NAME=data\nPART_ENTRY_NUMBER=1\n"
    facts = facts_from_blkid(parse_blkid_export(out))
    assert (facts.partuuid, facts.partlabel) == (PARTUUID, "data")


def test_find_rule_by_key_path_or_rooted_path() -> None:
    parsed = parse_storage({"mounts": [["LABEL=A", "/mnt/a"], {"match": {"label": "B"}, "path": "/mnt/b"}]})
    assert parsed.rules is not None
    rules = parsed.rules.mounts
    assert find_rule("mounts[1]", rules) is rules[1]
    assert find_rule("/mnt/a/", rules) is rules[0]
    assert find_rule("/mnt/c", rules) is None and find_rule("mounts[2]", rules) is None
    rooted = tuple(replace(r, path="/sb" + r.path) for r in rules)
    assert find_rule("/mnt/b", rooted, root="/sb") is rooted[1]  # as written in the config
    assert find_rule("/sb/mnt/b", rooted, root="/sb") is rooted[1]  # where it is mounted


def test_plan_leaves_a_rule_unmounted_on_request_alone() -> None:
    parsed = parse_storage({"mounts": [{"match": {"label": "DATA", "fstype": "ext4"}, "path": "/mnt/data"},
                                       {"match": {"fstype": "ext4"}, "path": "/mnt/any"}]})
    assert parsed.rules is not None
    rules = parsed.rules.mounts
    data = DEVICES[0]
    mounts: list[MountEntry] = []
    wanted = plan(rules, [data], mounts, {})
    assert [(a.path, a.device) for a in wanted.actions if isinstance(a, Mount)] == [
        ("/mnt/data", "/dev/sdb1")]
    # unmounted on request: nothing mounted there, and the device is not mounted by the other rule either
    assert plan(rules, [data], mounts, {}, suppressed={"/mnt/data"}).actions == ()
    # and a mount someone makes there by hand is not adopted
    by_hand = [MountEntry(90, 1, 8, 17, "/", "/mnt/data", "rw", "ext4", "/dev/sdb1")]
    assert plan(rules, [data], by_hand, {}, suppressed={"/mnt/data"}).actions == ()
