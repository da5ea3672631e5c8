"""The storage plan (pure): matching precedence, what gets mounted, unmounted, adopted, forgotten."""

from __future__ import annotations

from typing import Any

from storage.observe import BlockDevice, FsFacts
from storage.plan import (
    Adopt,
    Forget,
    Fsck,
    Known,
    Mount,
    Unmount,
    assign,
    match_rank,
    plan,
)
from storage.rules import Match, MountRule, parse_storage
from supervisor.mountinfo import MountEntry


def dev(name: str, minor: int, *, label: str | None = None, uuid: str | None = None,
        fstype: str | None = "ext4", diskseq: int | None = None, serial: str | None = None,
        pttype: str | None = None, links: tuple[str, ...] = ()) -> BlockDevice:
    fs = FsFacts(type=fstype, label=label, uuid=uuid, pttype=pttype)
    return BlockDevice(name=name, devname=f"/dev/{name}", major=8, minor=minor, size=2048,
                       diskseq=diskseq if diskseq is not None else 100 + minor, serial=serial, links=links,
                       fs=fs)


def mnt(target: str, d: BlockDevice | None, fstype: str = "ext4", mount_id: int = 50) -> MountEntry:
    major, minor, source = (d.major, d.minor, d.devname) if d else (0, 40, "tmpfs")
    return MountEntry(mount_id, 1, major, minor, "/", target, "rw", fstype, source)


def rules(*entries: Any) -> tuple[MountRule, ...]:
    parsed = parse_storage({"mounts": list(entries)})
    assert parsed.rules is not None, parsed.errors
    return parsed.rules.mounts


def known_of(action: Mount) -> Known:
    return Known(action.path, action.device, action.major, action.minor, action.diskseq, action.rule,
                 action.fstype, action.on_remove)


DATA = dev("sdb1", 17, label="DATA", uuid="1111-AAAA", serial="SER123")
OTHER = dev("sdc1", 33, label="OTHER", fstype="vfat")
ROOT = dev("vda1", 1, label="root")


def test_match_rank_and_criteria() -> None:
    assert match_rank(Match(device="/dev/sdb1"), DATA) == (6, 1)
    assert match_rank(Match(uuid="1111-aaaa"), DATA) == (5, 1)  # UUIDs compare case-insensitively
    assert match_rank(Match(label="DATA"), DATA) == (4, 1)
    assert match_rank(Match(label="data"), DATA) is None  # labels do not
    assert match_rank(Match(serial="SER*"), DATA) == (3, 1)
    assert match_rank(Match(device="/dev/sd?1"), DATA) == (2, 1)
    assert match_rank(Match(fstype="ext4"), DATA) == (1, 1)
    assert match_rank(Match(fstype="ext4", label="DATA"), DATA) == (4, 2)
    assert match_rank(Match(fstype="vfat", label="DATA"), DATA) is None  # all must hold
    linked = dev("sdb1", 17, links=("/dev/disk/by-label/DATA",))
    assert match_rank(Match(device="/dev/disk/by-label/DATA"), linked) == (6, 1)
    unknown = BlockDevice("sdd", "/dev/sdd", 8, 48, 100)  # not probed: no label to match
    assert match_rank(Match(label="DATA"), unknown) is None


def test_precedence_most_specific_rule_wins_then_first() -> None:
    rs = rules({"match": {"fstype": "ext4"}, "path": "/mnt/any"},
               {"match": {"device": "/dev/sd*"}, "path": "/mnt/glob"},
               {"match": {"label": "DATA"}, "path": "/mnt/label"},
               {"match": {"uuid": "1111-AAAA"}, "path": "/mnt/uuid"},
               {"match": {"label": "DATA", "fstype": "ext4"}, "path": "/mnt/label2"},
               ["/dev/sdb1", "/mnt/exact"])
    assert [d.devname for d in assign(rs, [DATA])["mounts[5]"]] == ["/dev/sdb1"]  # exact path beats all
    assert assign(rs[:5], [DATA])["mounts[3]"] == [DATA]  # uuid beats label
    assert assign(rs[:3] + rs[4:5], [DATA])["mounts[4]"] == [DATA]  # label+fstype beats label alone
    assert assign(rs[:3], [DATA])["mounts[2]"] == [DATA]  # label beats glob
    assert assign(rs[:2], [DATA])["mounts[1]"] == [DATA]  # glob beats fstype
    tie = rules({"match": {"label": "DATA"}, "path": "/mnt/first"},
                {"match": {"label": "DATA"}, "path": "/mnt/2nd"})
    assert assign(tie, [DATA]) == {"mounts[0]": [DATA], "mounts[1]": []}  # then the earlier rule


def test_matching_device_is_mounted_with_rule_options_others_never() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data", "options": "noatime,commit=30"})
    p = plan(rs, [ROOT, DATA, OTHER], [mnt("/", ROOT)], {})
    [m] = p.actions
    assert isinstance(m, Mount)
    assert (m.device, m.path, m.fstype, m.data, m.rule, m.diskseq) == ("/dev/sdb1", "/mnt/data", "ext4",
                                                                      "commit=30", "mounts[0]", 117)
    assert plan(rs, [ROOT, OTHER], [mnt("/", ROOT)], {}).actions == ()  # no rule matches: nothing


def test_fsck_before_mount_and_parents_before_children() -> None:
    inner = dev("sdc1", 33, label="INNER")
    rs = rules({"match": {"label": "INNER"}, "path": "/mnt/data/inner", "fsck": True},
               {"match": {"label": "DATA"}, "path": "/mnt/data"})
    actions = plan(rs, [inner, DATA], [], {}).actions
    assert [(type(a).__name__, getattr(a, "device", None)) for a in actions] == [
        ("Mount", "/dev/sdb1"), ("Fsck", "/dev/sdc1"), ("Mount", "/dev/sdc1")]
    assert actions[1] == Fsck("mounts[0]", "/dev/sdc1", "ext4")


def test_settled_mount_means_nothing_to_do() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    [m] = plan(rs, [DATA], [], {}).actions
    assert isinstance(m, Mount)
    assert plan(rs, [DATA], [mnt("/mnt/data", DATA)], {"/mnt/data": known_of(m)}).actions == ()


def test_device_removed_or_medium_changed_is_lazily_unmounted() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data", "on_remove": "ignore"})
    [m] = plan(rs, [DATA], [], {}).actions
    assert isinstance(m, Mount)
    known = {"/mnt/data": known_of(m)}
    mounted = [mnt("/mnt/data", DATA)]
    assert plan(rs, [], mounted, known).actions == (
        Unmount("mounts[0]", "/mnt/data", "/dev/sdb1", "device removed", lazy=True, on_remove="ignore"),)
    swapped = dev("sdb1", 17, fstype=None, diskseq=999)  # a new medium in the same device
    assert plan(rs, [swapped], mounted, known).actions == (
        Unmount("mounts[0]", "/mnt/data", "/dev/sdb1", "medium changed", lazy=True, on_remove="ignore"),)


def test_nothing_is_mounted_in_the_pass_that_unmounts() -> None:
    """The same medium back under a new diskseq: unmount first, mount on the next pass (after observing)."""
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    [m] = plan(rs, [DATA], [], {}).actions
    assert isinstance(m, Mount)
    back = dev("sdb1", 17, label="DATA", uuid="1111-AAAA", diskseq=500)
    actions = plan(rs, [back], [mnt("/mnt/data", DATA)], {"/mnt/data": known_of(m)}).actions
    assert [type(a) for a in actions] == [Unmount]
    [again] = plan(rs, [back], [], {}).actions
    assert isinstance(again, Mount) and again.diskseq == 500


def test_rule_removed_or_changed_unmounts_not_lazily() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    [m] = plan(rs, [DATA], [], {}).actions
    assert isinstance(m, Mount)
    known = {"/mnt/data": known_of(m)}
    mounted = [mnt("/mnt/data", DATA)]
    [u] = plan((), [DATA], mounted, known).actions
    assert isinstance(u, Unmount) and u.reason == "rule removed" and not u.lazy
    changed = rules({"match": {"label": "OTHER"}, "path": "/mnt/data"})
    [u] = plan(changed, [DATA, OTHER], mounted, known).actions
    assert isinstance(u, Unmount) and u.reason == "rule no longer matches the device"


def test_unmounted_by_hand_is_forgotten_and_held() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    [m] = plan(rs, [DATA], [], {}).actions
    assert isinstance(m, Mount)
    [f] = plan(rs, [DATA], [], {"/mnt/data": known_of(m)}).actions
    assert f == Forget("/mnt/data", "/dev/sdb1", 117, "mounts[0]")
    assert plan(rs, [DATA], [], {}, held=[("/mnt/data", "/dev/sdb1", 117)]).actions == ()
    # a new medium (diskseq) is mounted again
    fresh = dev("sdb1", 17, label="DATA", diskseq=118)
    actions = plan(rs, [fresh], [], {}, held=[("/mnt/data", "/dev/sdb1", 117)]).actions
    assert [type(a) for a in actions] == [Mount]


def test_mount_found_in_place_is_adopted() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    [a] = plan(rs, [DATA], [mnt("/mnt/data", DATA)], {}).actions
    assert isinstance(a, Adopt) and a.known.devname == "/dev/sdb1" and a.known.diskseq == 117


def test_occupied_path_and_devices_mounted_elsewhere_are_left_alone() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    p = plan(rs, [DATA], [mnt("/mnt/data", None, fstype="tmpfs")], {})
    assert p.actions == () and "occupied by tmpfs" in p.notes[0]
    assert plan(rs, [DATA], [mnt("/srv", DATA)], {}).actions == ()  # someone mounted it elsewhere
    glob = rules({"match": {"device": "/dev/vd*"}, "path": "/mnt/v"})
    assert plan(glob, [ROOT], [mnt("/", ROOT)], {}).actions == ()  # never the root device again


def test_several_devices_first_by_name_with_a_note_and_no_double_use() -> None:
    a, b = dev("sdb1", 17, label="USB"), dev("sda1", 1, label="USB")
    rs = rules({"match": {"label": "USB"}, "path": "/mnt/usb"})
    p = plan(rs, [a, b], [], {})
    [m] = p.actions
    assert isinstance(m, Mount) and m.device == "/dev/sda1"
    assert "2 devices match" in p.notes[0]


def test_devices_without_a_filesystem_are_not_candidates_unless_typed() -> None:
    disk = dev("sdb", 16, fstype=None, pttype="gpt")
    part = dev("sdb1", 17)
    rs = rules({"match": {"device": "/dev/sdb*"}, "path": "/mnt/b"})
    [m] = plan(rs, [disk, part], [], {}).actions
    assert isinstance(m, Mount) and m.device == "/dev/sdb1"
    typed = rules(["/dev/sdb", "/mnt/b", "ext4"])
    [m] = plan(typed, [dev("sdb", 16, fstype=None)], [], {}).actions
    assert isinstance(m, Mount) and m.fstype == "ext4"


def test_noauto_rules_are_not_acted_on() -> None:
    rs = rules(["LABEL=DATA", "/mnt/data", "auto", "noauto"])
    assert plan(rs, [DATA], [], {}).actions == ()


def test_failed_mount_is_held() -> None:
    rs = rules({"match": {"label": "DATA"}, "path": "/mnt/data"})
    assert plan(rs, [DATA], [], {}, held=[("/mnt/data", "/dev/sdb1", 117)]).actions == ()
