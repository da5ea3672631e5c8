"""``mounts:`` list entries as cloud-init and RancherOS read them: every entry form of the real corpus files
that were rejected (bind, NFS, one device at several paths, several devices for one path, cloud-init's
datasource and alias names, /dev/zero, swap), the bind/NFS plan (pure), mount.nfs's argv, and the
adapter's retries, give-up and status with a stand-in mount.nfs (a real child process)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.sourced_mounts import SourcedMounts
from storage.observe import BlockDevice, FsFacts
from storage.plan import Known, Mount, plan
from storage.rules import MS_RDONLY, MountRule, Parsed, parse_storage
from storage.sourced import Attach, Attempt, Detach, Lost, Rekey, SourcedKnown, nfs_argv, plan_sourced
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events.udev import MountChanged
from supervisor.mountinfo import MountEntry
from supervisor.mounts import MS_NODEV, MS_NOSUID
from supervisor.process import ProcessManager

CORPUS = Path(__file__).parent / "compat_corpus"


def corpus(name: str) -> Parsed:
    return parse_storage(yaml.safe_load((CORPUS / name).read_text()))


def warned(parsed: Parsed) -> dict[str, str]:
    return {w.key: w.message for w in parsed.warnings}


def rules_of(*entries: Any) -> tuple[MountRule, ...]:
    parsed = parse_storage({"mounts": list(entries)})
    assert parsed.rules is not None, parsed.errors
    return parsed.rules.mounts


# ---- the corpus files, entry by entry ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cloud-init/doc/examples/cloud-config-mount-points.txt",
                                  "cloud-init/doc/examples/cloud-config.txt"])
def test_cloud_init_mount_points_example(name: str) -> None:
    parsed = corpus(name)
    assert parsed.ok and parsed.rules is not None
    # [ephemeral0, /mnt, ...]: a datasource's name corral does not map; [dd, /dev/zero]: nowhere to mount
    assert "only cloud-init's datasources resolve" in warned(parsed)["mounts[0][0]"]
    assert "/dev/zero is under /dev" in warned(parsed)["mounts[3][1]"]
    # [sdc, /opt/data] and [xvdh, /opt/data, ...]: both rules, one path (whichever disk the cloud has)
    assert [(r.key, r.match.device, r.path) for r in parsed.rules.mounts] == [
        ("mounts[1]", "/dev/sdc", "/opt/data"), ("mounts[2]", "/dev/xvdh", "/opt/data")]
    assert all(r.kind == "device" for r in parsed.rules.mounts)


def test_cc_mounts_example1() -> None:
    parsed = corpus("cloud-init/doc/module-docs/cc_mounts/example1.yaml")
    assert parsed.ok and parsed.rules is not None and not parsed.warnings
    assert [(r.match.device, r.path, r.options.flags & 8) for r in parsed.rules.mounts] == [
        ("/dev/ephemeral0", "/mnt", 8), ("/dev/sdc", "/opt/data", 0), ("/dev/xvdh", "/opt/data", 0)]


@pytest.mark.parametrize("name", ["cnrancher-os-tests/assets/test_mounts.yml",
                                  "rancher-os/tests/assets/test_23/cloud-config.yml",
                                  "rancher-os/tests/integration/assets/test_16/cloud-config.yml"])
def test_rancheros_bind_and_repeated_device(name: str) -> None:
    parsed = corpus(name)
    assert parsed.ok and parsed.rules is not None and not parsed.warnings
    bind, *disks = parsed.rules.mounts
    # ["/test", "/home/rancher/test", "", "bind"]
    assert (bind.kind, bind.source, bind.path, bind.fstype) == ("bind", "/test", "/home/rancher/test", "bind")
    assert bind.options.flags == MS_NODEV | MS_NOSUID
    # [/dev/vdb, /home/rancher/a, ext4, ""], [/dev/vdb, .../b, "", ""], [.../c, auto, defaults], ...
    assert [(r.match.device, r.path, r.fstype) for r in disks] == [
        ("/dev/vdb", f"/home/rancher/{p}", "ext4" if p == "a" else None) for p in "abcd"][:len(disks)]


def test_other_corpus_forms_are_warnings_not_misreadings() -> None:
    gluster = corpus("cloud-init/doc/examples/cloud-config-gluster.txt")
    assert gluster.ok and gluster.rules is not None and gluster.rules.mounts == ()
    assert "is a glusterfs filesystem" in warned(gluster)["mounts[0]"]
    aliases = corpus("cloud-init/doc/module-docs/cc_disk_setup/example1.yaml")
    assert aliases.ok and aliases.rules is not None
    assert "device_aliases" in warned(aliases)["mounts[0][0]"]
    assert "swap" in warned(aliases)["mounts[2]"]
    assert [r.match.device for r in aliases.rules.mounts] == ["/dev/sdd1"]
    swap = corpus("rancher-os/tests/assets/test_21/cloud-config.yml")
    assert swap.ok and "swap" in warned(swap)["mounts[0]"]


def test_cloud_init_drop_entries_warn() -> None:
    parsed = parse_storage({"mounts": [["swap"], ["sdb", None]]})
    assert parsed.ok and parsed.rules is not None and parsed.rules.mounts == ()
    assert "swap" in warned(parsed)["mounts[0]"]
    assert "no mount point for 'sdb'" in warned(parsed)["mounts[1]"]


# ---- NFS and bind entries -------------------------------------------------------------------------------
def test_nfs_entries() -> None:
    r4, r3, auto, ro = rules_of(["nas:/export", "/mnt/nfs", "nfs4", "vers=4.2,x-systemd.automount"],
                                ["10.0.0.1:/srv", "/mnt/v3", "nfs", "vers=3,nolock,noauto"],
                                ["[fd00::1]:/data", "/mnt/auto"],
                                ["nas:/ro", "/mnt/ro", "nfs", "ro,suid,_netdev"])
    assert (r4.kind, r4.source, r4.fstype, r4.options.data) == ("nfs", "nas:/export", "nfs4",
                                                                 "vers=4.2,nodev,nosuid")
    assert nfs_argv(r4) == ["mount.nfs4", "nas:/export", "/mnt/nfs", "-o", "vers=4.2,nodev,nosuid"]
    assert not r3.auto and nfs_argv(r3) == ["mount.nfs", "10.0.0.1:/srv", "/mnt/v3", "-o",
                                           "vers=3,nolock,nodev,nosuid"]
    assert (auto.kind, auto.fstype) == ("nfs", "nfs")  # host:/path with no fstype is NFS, as fstab has it
    assert ro.options.flags & MS_RDONLY and not ro.options.flags & MS_NOSUID
    assert ro.options.data == "ro,suid,_netdev,nodev"


@pytest.mark.parametrize(("entry", "key", "fragment"), [
    (["nas:/x", "/mnt/a", "nfs", "vers=4 -o"], "mounts[0][3]", "is not an NFS mount option"),
    (["nas:/x", "/mnt/a", "nfs", "bind"], "mounts[0][0]", "a bind mount's source is a path"),
    (["nas:/x", "/mnt/a", "nfs4", "loop"], "mounts[0][3]", "loop devices are not set up"),
    (["nas", "/mnt/a", "nfs"], "mounts[0][0]", "is not an NFS export (server:/path)"),
    (["-o:/x", "/mnt/a", "nfs"], "mounts[0][0]", "is not an NFS export"),
    (["rel/dir", "/mnt/a", "", "bind"], "mounts[0][0]", "is not an absolute path"),
    (["/src", "mnt", "", "bind"], "mounts[0][1]", "is not an absolute path"),
])
def test_nfs_and_bind_errors_name_the_entry(entry: list[str], key: str, fragment: str) -> None:
    parsed = parse_storage({"mounts": [entry]})
    found = {e.key: e.message for e in parsed.errors}
    assert key in found and fragment in found[key], found


def test_bind_entries() -> None:
    ro, rec = rules_of(["/srv/data", "/mnt/data/", "none", "bind,ro"], ["/var/lib/x", "/mnt/x", "", "rbind"])
    assert (ro.kind, ro.source, ro.path, ro.fstype) == ("bind", "/srv/data", "/mnt/data", "bind")
    assert ro.options.flags == MS_RDONLY | MS_NODEV | MS_NOSUID
    assert rec.fstype == "rbind"
    same = parse_storage({"mounts": [["/mnt/a", "/mnt/a", "", "bind"]]})
    assert same.ok and same.rules is not None and same.rules.mounts == ()
    assert "onto itself" in warned(same)["mounts[0]"]
    # a bind onto a place storage does not mount at is a warning, as any list entry's
    dev = parse_storage({"mounts": [["/srv", "/dev/x", "", "bind"]]})
    assert dev.ok and "under /dev" in warned(dev)["mounts[0][1]"]


# ---- the block plan: one device at several paths, several devices for one path ---------------------------
def dev(name: str, minor: int, fstype: str | None = "ext4") -> BlockDevice:
    return BlockDevice(name=name, devname=f"/dev/{name}", major=8, minor=minor, size=2048,
                       diskseq=100 + minor, fs=FsFacts(type=fstype))


def mnt(target: str, d: BlockDevice, mount_id: int = 50) -> MountEntry:
    return MountEntry(mount_id, 1, d.major, d.minor, "/", target, "rw", "ext4", d.devname)


def known_of(m: Mount) -> Known:
    return Known(m.path, m.device, m.major, m.minor, m.diskseq, m.rule, m.fstype, m.on_remove)


def test_one_device_mounted_at_every_path_that_names_it() -> None:
    """RancherOS's test_23: [/dev/vdb, /home/rancher/a..d]: vdb at all four (its test checks a, b, c)."""
    parsed = corpus("rancher-os/tests/assets/test_23/cloud-config.yml")
    assert parsed.rules is not None
    vdb = dev("vdb", 16)
    first = plan(parsed.rules.mounts, [vdb], [], {})
    assert [(m.device, m.path) for m in first.mounts] == [("/dev/vdb", f"/home/rancher/{p}") for p in "abcd"]
    # once mounted, they stay; a device mounted elsewhere (not by these rules) is still left alone
    known = {m.path: known_of(m) for m in first.mounts}
    table = [mnt(m.path, vdb, 60 + i) for i, m in enumerate(first.mounts)]
    assert plan(parsed.rules.mounts, [vdb], table, known).actions == ()
    assert plan(parsed.rules.mounts, [vdb], [mnt("/elsewhere", vdb)], {}).mounts == ()


def test_a_device_is_not_shared_between_rules_that_name_it_differently() -> None:
    d = BlockDevice(name="vdb", devname="/dev/vdb", major=8, minor=16, size=2048, diskseq=5,
                    fs=FsFacts(type="ext4", label="DATA"))
    actions = plan(rules_of(["LABEL=DATA", "/mnt/a"], ["/dev/vdb", "/mnt/b"]), [d], [], {})
    # the device path ranks first; the label's rule does not get the same device
    assert [(m.rule, m.path) for m in actions.mounts] == [("mounts[1]", "/mnt/b")]


def test_the_first_present_device_gets_a_shared_path() -> None:
    """cloud-init's [sdc, /opt/data] and [xvdh, /opt/data]: whichever the hypervisor has."""
    both = rules_of(["sdc", "/opt/data"], ["xvdh", "/opt/data"])
    assert [(m.device, m.rule) for m in plan(both, [dev("xvdh", 112)], [], {}).mounts] == [
        ("/dev/xvdh", "mounts[1]")]
    two = plan(both, [dev("sdc", 32), dev("xvdh", 112)], [], {})
    assert [(m.device, m.rule) for m in two.mounts] == [("/dev/sdc", "mounts[0]")]
    assert two.notes == ("mounts[1]: /opt/data gets mounts[0]'s device; /dev/xvdh is not mounted there",)
    # mounted: it stays, the other rule is not mounted over it
    sdc = dev("sdc", 32)
    known = {"/opt/data": known_of(two.mounts[0])}
    assert plan(both, [sdc, dev("xvdh", 112)], [mnt("/opt/data", sdc)], known).actions == ()


def test_a_named_disk_with_a_partition_table_is_a_note() -> None:
    """cloud-init would mount sdc's first partition; corral mounts what the entry names, and says why not."""
    disk = BlockDevice(name="sdc", devname="/dev/sdc", major=8, minor=32, size=2048, diskseq=3,
                       fs=FsFacts(type=None, pttype="gpt"))
    p = plan(rules_of(["sdc", "/opt/data"]), [disk], [], {})
    assert p.actions == ()
    assert p.notes == ("mounts[0]: /dev/sdc has a partition table: not mounted (name a partition, such as "
                       "/dev/sdc1)",)


def test_block_plan_leaves_bind_and_nfs_rules_alone() -> None:
    mixed = rules_of(["/srv", "/mnt/s", "", "bind"], ["nas:/x", "/mnt/n", "nfs"], ["vdb", "/mnt/v"])
    assert [m.path for m in plan(mixed, [dev("vdb", 16)], [], {}).mounts] == ["/mnt/v"]


# ---- the bind/NFS plan (pure) ----------------------------------------------------------------------------
NFS, BIND = rules_of(["nas:/x", "/mnt/n", "nfs"], ["/srv", "/mnt/s", "", "bind"])


def entry(target: str, mount_id: int, fstype: str = "nfs", source: str = "nas:/x") -> MountEntry:
    return MountEntry(mount_id, 1, 0, 60, "/", target, "rw", fstype, source)


def test_plan_sourced_attaches_what_is_missing() -> None:
    p = plan_sourced((NFS, BIND), [], {}, {}, now=0.0)
    assert p.actions == (Attach(NFS, 1), Attach(BIND, 1)) and p.wake_at is None


def test_plan_sourced_waits_for_a_retry_then_tries_again() -> None:
    tried = {NFS.key: Attempt(2, next_at=10.0, error="mount.nfs exit 32")}
    waiting = plan_sourced((NFS,), [], {}, tried, now=4.0)
    assert waiting.actions == () and waiting.wake_at == 10.0
    assert plan_sourced((NFS,), [], {}, tried, now=10.0).actions == (Attach(NFS, 3),)
    gave_up = {NFS.key: Attempt(5, next_at=0.0, error="x", gave_up=True)}
    assert plan_sourced((NFS,), [], {}, gave_up, now=99.0) == plan_sourced((), [], {}, {}, now=0.0)


def test_plan_sourced_busy_held_mounted_lost_removed() -> None:
    k = SourcedKnown("/mnt/n", NFS.key, "nfs", "nas:/x", "nfs", 77)
    assert plan_sourced((NFS,), [], {}, {}, busy=[NFS.key], now=0.0).actions == ()
    assert plan_sourced((NFS,), [], {}, {}, held=[NFS.key], now=0.0).actions == ()
    assert plan_sourced((NFS,), [entry("/mnt/n", 77)], {NFS.key: k}, {}, now=0.0).actions == ()
    assert plan_sourced((NFS,), [], {NFS.key: k}, {}, now=0.0).actions == (Lost(k), Attach(NFS, 1))
    assert plan_sourced((), [entry("/mnt/n", 77)], {NFS.key: k}, {}, now=0.0).actions == (
        Detach(k, "rule removed"),)


def test_plan_sourced_keeps_a_mount_whose_rule_moved_in_the_list() -> None:
    k = SourcedKnown("/mnt/n", "mounts[3]", "nfs", "nas:/x", "nfs", 77)
    assert plan_sourced((NFS,), [entry("/mnt/n", 77)], {"mounts[3]": k}, {}, now=0.0).actions == (
        Rekey(k, NFS),)
    other = SourcedKnown("/mnt/n", "mounts[3]", "nfs", "nas:/other", "nfs", 77)
    assert plan_sourced((NFS,), [entry("/mnt/n", 77)], {"mounts[3]": other}, {}, now=0.0).actions == (
        Detach(other, "rule removed"),)


def test_plan_sourced_never_mounts_over_something_else() -> None:
    p = plan_sourced((NFS,), [entry("/mnt/n", 5, "ext4", "/dev/sdb1")], {}, {}, now=0.0)
    assert p.actions == () and p.notes == ("mounts[0]: /mnt/n is occupied by /dev/sdb1 (ext4); not mounting",)


def test_plan_sourced_shared_path_first_rule_keeps_it_while_retrying() -> None:
    first, second = rules_of(["nas:/a", "/mnt/n", "nfs"], ["nas2:/a", "/mnt/n", "nfs"])
    p = plan_sourced((first, second), [], {}, {first.key: Attempt(1, next_at=5.0)}, now=1.0)
    assert p.actions == () and p.wake_at == 5.0
    assert p.notes == ("mounts[1]: /mnt/n has mounts[0]'s mount; nas2:/a is not mounted there",)


# ---- the adapter: a stand-in mount.nfs that fails, real children ----------------------------------------
@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager()
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


def failing_helper(tmp_path: Path) -> Path:
    script = tmp_path / "mount.nfs"
    script.write_text(f"#!{sys.executable}\nimport sys\n"
                      f"open({str(tmp_path / 'calls')!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                      "print('mount.nfs: Network is unreachable', file=sys.stderr)\nsys.exit(32)\n")
    script.chmod(0o755)
    return script


async def test_nfs_tries_are_retried_then_given_up_and_reported(pm: ProcessManager, tmp_path: Path) -> None:
    bus = Bus()
    events = bus.subscribe("test", MountChanged)
    pokes: list[int] = []
    sourced = SourcedMounts(pm, bus, mount_nfs=str(failing_helper(tmp_path)), attempts=3, timeout=10,
                            backoff=lambda: Backoff(first=0.0, initial=0.0, reset_after=float("inf")))
    sourced.poke = lambda: pokes.append(1)
    (rule,) = rules_of(["nas:/x", str(tmp_path / "mnt"), "nfs", "vers=4.1"])
    sourced.set_rules((rule,))
    for attempt in (1, 2, 3):
        await sourced.apply([])
        assert sourced.status()[0]["state"] == "mounting"
        await asyncio.gather(*sourced.tasks.values())
        assert len(pokes) == attempt  # the handler is asked to look again after each try
    (status,) = sourced.status()
    assert status["state"] == "failed" and status["attempts"] == 3
    assert status["error"] == "mount.nfs exit 32: mount.nfs: Network is unreachable"
    await sourced.apply([])
    assert not sourced.tasks  # given up: not tried again
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [f"nas:/x {tmp_path / 'mnt'} -o vers=4.1,nodev,nosuid"] * 3
    changed = []
    while (e := events.get_nowait()) is not None:
        changed.append(e)
    states = [(e.state, e.rule) for e in changed if isinstance(e, MountChanged)]
    assert states == [("failed", "mounts[0]")] * 3
    # corral storage mount: tried again
    sourced.request(rule)
    await sourced.apply([])
    assert sourced.status()[0]["state"] == "mounting"
    await sourced.stop()


async def test_a_retry_waits_for_the_backoff(pm: ProcessManager, tmp_path: Path) -> None:
    now = [100.0]
    sourced = SourcedMounts(pm, Bus(), mount_nfs=str(failing_helper(tmp_path)), attempts=5, timeout=10,
                            backoff=lambda: Backoff(first=30.0, reset_after=float("inf")),
                            clock=lambda: now[0])
    sourced.set_rules(rules_of(["nas:/x", str(tmp_path / "m"), "nfs"]))
    await sourced.apply([])
    await asyncio.gather(*sourced.tasks.values())
    (status,) = sourced.status()
    assert status["state"] == "retrying" and status["retry_in"] == 30.0 and status["attempts"] == 1
    now[0] = 120.0
    await sourced.apply([])
    assert not sourced.tasks
    now[0] = 130.0
    await sourced.apply([])
    assert sourced.tasks
    await sourced.stop()


async def test_a_missing_helper_is_a_failed_try(pm: ProcessManager, tmp_path: Path) -> None:
    sourced = SourcedMounts(pm, Bus(), mount_nfs=str(tmp_path / "no-such-mount.nfs"), attempts=1)
    sourced.set_rules(rules_of(["nas:/x", str(tmp_path / "m"), "nfs"]))
    await sourced.apply([])
    await asyncio.gather(*sourced.tasks.values())
    (status,) = sourced.status()
    assert status["state"] == "failed" and "no-such-mount.nfs" in str(status["error"])


def test_storage_status_renders_bind_and_nfs_states() -> None:
    from supervisor.cli.storage import render

    rules = [{"key": f"mounts[{i}]", "match": m, "path": p, "options": "defaults"}
             for i, (m, p) in enumerate([("/test (bind)", "/home/rancher/test"),
                                         ("nas:/x (nfs)", "/mnt/n"), ("nas:/y (nfs)", "/mnt/y")])]
    sourced = [{"rule": "mounts[0]", "state": "mounted", "source": "/test"},
               {"rule": "mounts[1]", "state": "retrying", "retry_in": 10.0, "attempts": 2,
                "error": "mount.nfs exit 32: mount.nfs: Connection timed out"},
               {"rule": "mounts[2]", "state": "failed", "attempts": 5, "error": "mount.nfs exit 32: x"}]
    text = render({"storage": {"rules": rules, "sourced": sourced}})
    assert "mounted: /test" in text
    assert "retrying in 10.0 s (attempt 2 failed: mount.nfs exit 32: mount.nfs: Connection timed out)" in text
    assert "failed after 5 attempts: mount.nfs exit 32: x; `corral storage mount mounts[2]` tries again" \
        in text
