"""`corral storage mount|unmount` and `corral dev` against the real PID 1 in the sandbox, with real loop
devices on files in the test's directory (nothing reaches the host's mounts)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from integration.sandbox import Sandbox
from integration.test_storage import Loops
from integration.test_storage_sandbox import loops, mounts_of, wait_for  # noqa: F401 (a fixture)


def counters(sb: Sandbox) -> dict[str, int]:
    return dict(sb.request("storage.status")["storage"]["counters"])


def test_unmount_sticks_until_mount_or_replug(sandbox: Any, loops: Loops) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:6].upper()
    config = {"mounts": [{"match": {"label": f"CLI{tag}"}, "path": "/mnt/data", "options": "ro"},
                         [f"LABEL=LATER{tag}", "/mnt/later", "auto", "noauto"]]}
    sb: Sandbox = sandbox(config)
    sb.wait_ready()
    pid1 = sb.pid1
    target, later = str(sb.dir / "mnt/data"), str(sb.dir / "mnt/later")
    data = loops.image("data.img", f"CLI{tag}")
    dev = loops.attach(data, read_only=True)
    assert wait_for(lambda: mounts_of(pid1).get(target)) == dev

    # unmounted on request, by the rule's key: it stays unmounted whatever uevents come
    out = sb.cli("storage", "unmount", "mounts[0]").stdout
    assert f"mounts[0]: {target} unmounted ({dev}); not mounted again until" in out
    assert target not in mounts_of(pid1)
    before = counters(sb)["reconciles"]
    loops.attach(loops.image("noise.img", f"NOISE{tag}"), read_only=True)
    wait_for(lambda: counters(sb)["reconciles"] > before)
    assert target not in mounts_of(pid1)
    status = sb.request("storage.status")["storage"]
    assert [(s["path"], s["device"], s["reason"]) for s in status["suppressed"]] == [
        (target, dev, "unmounted by request")]
    assert "unmounted by request" in sb.cli("storage", "status").stdout

    # mounted again on request, by the path as the config writes it
    result = json.loads(sb.cli("storage", "mount", "/mnt/data", "-o", "json").stdout)
    assert result == {"rule": "mounts[0]", "path": target, "state": "mounted", "device": dev,
                      "fstype": "ext4"}
    assert mounts_of(pid1).get(target) == dev
    assert sb.request("storage.status")["storage"]["suppressed"] == []

    # unmounted by the device's name; re-plugged (its medium goes and comes back): mounted again
    sb.cli("storage", "unmount", dev)
    assert target not in mounts_of(pid1)
    loops.change_medium(dev, loops.image("blank.img", None))
    wait_for(lambda: not sb.request("storage.status")["storage"]["suppressed"])
    loops.change_medium(dev, data)
    assert wait_for(lambda: mounts_of(pid1).get(target)) == dev

    # a noauto rule is mounted only when asked
    before = counters(sb)["reconciles"]
    late = loops.attach(loops.image("later.img", f"LATER{tag}"))
    wait_for(lambda: counters(sb)["reconciles"] > before)
    assert later not in mounts_of(pid1)
    assert sb.cli("storage", "mount", f"LABEL=LATER{tag}").stdout.strip() == \
        f"mounts[1]: {late} mounted on {later}"
    assert mounts_of(pid1).get(later) == late

    # what cannot be done says why, exit 1
    missing = sb.cli("storage", "mount", "/mnt/nothing", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == \
        "corral: '/mnt/nothing' is neither a mounts: rule (its key or path) nor a device"
    sb.cli("storage", "unmount", "mounts[1]")
    again = sb.cli("storage", "unmount", "/dev/loop-none", check=False)
    assert again.returncode == 1 and "neither a mounts: rule" in again.stderr
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_dev_resolves_labels_uuids_and_paths(sandbox: Any, loops: Loops) -> None:  # noqa: F811
    tag = uuid.uuid4().hex[:6].upper()
    sb: Sandbox = sandbox({})
    sb.wait_ready()
    dev = loops.attach(loops.image("dev.img", f"DEV{tag}"))
    probe = subprocess.run(["blkid", "-p", "-o", "value", "-s", "UUID", dev], capture_output=True, text=True)
    fs_uuid = probe.stdout.strip()
    assert fs_uuid
    assert wait_for(lambda: sb.cli("dev", f"LABEL=DEV{tag}", check=False).stdout.strip() == dev)
    assert sb.cli("dev", f"UUID={fs_uuid.upper()}").stdout.strip() == dev
    assert sb.cli("dev", dev).stdout.strip() == dev
    found = json.loads(sb.cli("dev", f"label=DEV{tag}", "-o", "json").stdout)
    assert found["spec"] == f"LABEL=DEV{tag}"
    [entry] = found["devices"]
    assert (entry["devname"], entry["label"], entry["uuid"], entry["fstype"]) == (dev, f"DEV{tag}", fs_uuid,
                                                                               "ext4")
    none = sb.cli("dev", f"LABEL=NOSUCH{tag}", check=False)
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr.strip() == f"corral: no device has LABEL=NOSUCH{tag}"
    bad = sb.cli("dev", "/etc/hostname", check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "corral: /etc/hostname is not a block device"
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_bind_mount_and_an_nfs_mount_that_cannot_be_made(sandbox: Any) -> None:
    """RancherOS's bind entry (a file bound onto another path) mounted by PID 1, unmounted and mounted again
    on request; an NFS entry whose server cannot be reached (the sandbox's network namespace has only lo,
    and no mount.nfs may be on this host) does not hold up the boot: retried, its error in status."""

    def setup(directory: Any) -> None:
        (directory / "test").write_text("test\n")

    sb: Sandbox = sandbox({"mounts": [["/test", "/home/rancher/test", "", "bind,ro"],
                                      ["192.0.2.1:/export", "/mnt/nfs", "nfs", "vers=4.2"]]}, setup=setup)
    sb.wait_ready()  # the boot is ready while the NFS entry fails
    pid1 = sb.pid1
    target = str(sb.dir / "home/rancher/test")
    wait_for(lambda: target in mounts_of(pid1))
    assert Path(f"/proc/{pid1}/root{target}").read_text() == "test\n"  # through the bind, in PID 1's mounts

    def sourced() -> dict[str, dict[str, Any]]:
        return {s["rule"]: s for s in sb.request("storage.status")["storage"]["sourced"]}

    assert sourced()["mounts[0]"]["state"] == "mounted"
    nfs = wait_for(lambda: sourced()["mounts[1]"] if sourced()["mounts[1]"].get("attempts") else None)
    assert nfs["state"] in ("retrying", "mounting") and nfs["error"].startswith("mount.nfs")
    text = sb.cli("storage", "status").stdout
    assert "mounted: " in text and ("retrying in" in text or "mounting" in text)

    out = sb.cli("storage", "unmount", "mounts[0]").stdout
    assert out.strip().startswith(f"mounts[0]: {target} unmounted")
    assert target not in mounts_of(pid1)
    assert sourced()["mounts[0]"]["state"] == "unmounted"
    result = json.loads(sb.cli("storage", "mount", "mounts[0]", "-o", "json").stdout)
    assert result["state"] == "mounted" and result["path"] == target
    assert target in mounts_of(pid1)
    assert sb.stop() == 0
    sb.assert_clean_journal()
