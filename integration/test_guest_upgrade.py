"""Upgrade, rollback and the automatic rollback on an installed disk, in QEMU (docs/install.md, "Upgrade
and rollback"; issue 15 items 3-5).

Every test boots its own overlay of the session's ``installed_disk`` (slot A: the first build). The
bundles reach the guest on a disk of their own (ext4, mounted read-only in PID 1's namespaces):

- ``v2``: the same image built again with ``corral-image build --version 9.9.9`` (its
  ``corral-upgrade.tar``);
- ``broken-init``: v2's kernel and an initrd with one more cpio archive appended (at a 4-byte boundary)
  whose ``/init`` is a script that exits 1 (the kernel unpacks concatenated archives in order: the last
  ``/init`` wins), so PID 1 exits at once and the kernel panics;
- ``never-up``: v2's initrd with an image default config appended that adds a system unit whose image
  does not exist, so the boot never reaches ready.
- ``hang-early``: v2's initrd with an archive appended that replaces ``supervisor/app.py`` (and its
  ``.pyc``) by a module that sleeps for ever: PID 1 hangs in its imports, after the trial's watchdog was
  opened (its first act, on ``corral.trial=1``) and long before the ``slots`` phase.

The guests run with ``-no-reboot`` (image/run.py): a reboot ends QEMU, and the test starts the same disk
again, as the machine's own reset would. The first test (3 boots) runs in ``make test``; its boots also
prove what issue 15 asks of the installed disk (test_guest_install.py boots nothing): it boots alone
(no kernel, initrd nor ISO) on SeaBIOS with ``corral install --config``'s config applied; a file
written to the persistent state there survives the reboots; the last boot, back on slot A, is on OVMF
(UEFI). The broken builds, the early hang and the upgrade killed half way (8 boots more) run with
``CORRAL_SOAK=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from image import rootfs
from integration.firmware import ovmf
from integration.guest import BOOT_TIMEOUT, REPO_ROOT, Guest, GuestSpec, SshKey
from integration.installed import HOSTNAME, InstalledDisk
from integration.netns import unavailable
from osdisk import bundle

pytestmark = pytest.mark.timeout(7200)
SOAK = os.environ.get("CORRAL_SOAK") == "1"
VERSION2 = "9.9.9"
DISK_BOOT_TIMEOUT = max(BOOT_TIMEOUT, 600.0)
BUNDLES = "/run/bundles"  # where the bundles' disk is mounted in the guest (PID 1's namespaces)
MARKER = "/var/lib/corral/install-test-marker"  # on the state partition (bound onto /var/lib/corral)
HANG_APP = b"import time\n\nwhile True:  # PID 1 hangs in its imports\n    time.sleep(3600)\n"  # hang-early
NEVER_UP_CONFIG = (b"corral:\n  services:\n    never-up:\n      image: corral-test/absent:1\n"
                   b"      command: [sleep, '1000']\n")


def _cpio(stage: Path, names: list[str]) -> bytes:
    out = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=stage,
                         input="".join(f"{n}\n" for n in names).encode(), capture_output=True, check=True,
                         timeout=60)
    return out.stdout


def _derived_bundle(source: Path, dest: Path, version: str, segment: bytes) -> Path:
    """A bundle directory: ``source``'s kernel, its initrd with ``segment`` appended, a fresh manifest."""
    dest.mkdir(parents=True)
    shutil.copyfile(source / "vmlinuz", dest / "vmlinuz")
    shutil.copyfile(source / "initrd", dest / "initrd")
    with open(dest / "initrd", "ab") as f:
        # the kernel takes an appended cpio archive only at an offset that is a multiple of 4 (it skips
        # zero bytes between archives); else "Initramfs unpacking failed: invalid magic" and it is ignored
        f.write(bytes(-f.tell() % 4))
        f.write(segment)
    kernel = json.loads((source / bundle.MANIFEST).read_text())["kernel_version"]
    (dest / bundle.MANIFEST).write_text(json.dumps(bundle.make_manifest(dest, version, kernel)))
    return dest


@pytest.fixture(scope="module")
def bundles_disk(guest_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ext4 image holding ``v2.tar``, ``broken-init/``, ``never-up/`` and ``hang-early/`` (see the
    module's text)."""
    work = tmp_path_factory.mktemp("bundles")
    out = work / "v2-out"
    argv = [sys.executable, "-m", "image", "build", "-o", str(out), "--version", VERSION2]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        unavailable(f"the second build failed: {done.stdout[-2000:]}{done.stderr[-2000:]}",
                    "the second build failed")
    stage = work / "stage"
    stage.mkdir()
    shutil.copyfile(out / bundle.ARCHIVE_NAME, stage / "v2.tar")
    init = work / "init-stage"
    init.mkdir()
    # a script that exits, not a link to /bin/false: that is busybox, which run as /init is busybox's init
    (init / "init").write_text("#!/bin/busybox sh\nexit 1\n")
    (init / "init").chmod(0o755)
    _derived_bundle(out / "bundle", stage / "broken-init", f"{VERSION2}-broken-init", _cpio(init, ["init"]))
    conf = work / "conf-stage"
    target = conf / "usr/share/corral/cloud-config.d/99-never-up.yml"
    target.parent.mkdir(parents=True)
    target.write_bytes(NEVER_UP_CONFIG)
    names = [str(p.relative_to(conf)) for p in sorted(conf.rglob("*"))]
    _derived_bundle(out / "bundle", stage / "never-up", f"{VERSION2}-never-up", _cpio(conf, names))
    hang = work / "hang-stage"
    app = hang / rootfs.DIST_PACKAGES / "supervisor/app.py"
    app.parent.mkdir(parents=True)
    app.write_bytes(HANG_APP)
    rootfs.compile_python(hang, [rootfs.DIST_PACKAGES])  # its .pyc, as the image's own (unchecked hash)
    names = [str(p.relative_to(hang)) for p in sorted(hang.rglob("*"))]
    _derived_bundle(out / "bundle", stage / "hang-early", f"{VERSION2}-hang-early", _cpio(hang, names))
    size = sum(p.stat().st_size for p in stage.rglob("*") if p.is_file())
    image = work / "bundles.img"
    with image.open("wb") as f:
        f.truncate(size + size // 4 + (64 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "bundles", "-d", str(stage), str(image)], check=True,
                   capture_output=True, timeout=600)
    return image


class Machine:
    """One installed disk (an overlay), booted again and again: a reboot ends QEMU (-no-reboot)."""

    def __init__(self, make_guest: Callable[..., Guest], key: SshKey, disk: Path, bundles: Path,
                 workdir: Path) -> None:
        self.make_guest, self.key, self.disk = make_guest, key, disk
        self.bundles, self.workdir = bundles, workdir
        self.boots = 0

    def spec(self, uefi: bool = False) -> GuestSpec:
        return GuestSpec(boot_disk=self.disk, images=[self.bundles], boot_timeout=DISK_BOOT_TIMEOUT,
                         uefi=uefi)

    def boot(self, uefi: bool = False) -> Guest:
        """The disk booted by the firmware (SeaBIOS, or OVMF with ``uefi``) to ready, ssh up."""
        self.boots += 1
        g = self.make_guest(self.spec(uefi), name=f"boot{self.boots}")
        argv = " ".join(g.argv)
        assert "-kernel" not in g.argv and "-initrd" not in g.argv and "ide-cd" not in argv, argv
        assert ("pflash" in argv) == uefi, argv
        g.wait_ssh()
        g.host(f"sh -c 'mkdir -p {BUNDLES} && mount -o ro /dev/vdb {BUNDLES}'")
        return g

    def boot_unready(self, exit_timeout: float) -> Guest:
        """A boot that must not reach ready (a failing trial): started, and waited for until QEMU ends."""
        self.boots += 1
        g = Guest(self.workdir / f"boot{self.boots}", self.spec(), self.key)
        try:
            g.wait_exit(exit_timeout)
        finally:
            g.stop()
        assert "Initramfs unpacking failed" not in g.serial.text()  # the derived initrd was taken whole
        return g


def _reboot(g: Guest) -> None:
    g.sudo("corral reboot", check=False)
    g.wait_exit(300)


def _os_list(g: Guest) -> dict[str, Any]:
    return dict(json.loads(g.sudo("corral os list --json").stdout))


def _status(g: Guest) -> dict[str, Any]:
    return dict(json.loads(g.sudo("corral status -o json").stdout))


def _wait_committed(g: Guest, slot: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        listed = _os_list(g)
        if listed["default"] == slot or time.monotonic() > deadline:
            return listed
        time.sleep(2)


@pytest.fixture
def machine(make_guest: Callable[..., Guest], guest_ssh_key: SshKey, installed_disk: InstalledDisk,
            bundles_disk: Path, tmp_path: Path) -> Machine:
    return Machine(make_guest, guest_ssh_key, installed_disk.overlay(tmp_path / "disk.qcow2"), bundles_disk,
                   tmp_path)


def _step(name: str, g: Guest, check: bool, detail: object = "") -> None:
    """A failed check names its step (and what was seen), the serial console's tail after it."""
    if not check:
        raise AssertionError(f"{name}: {detail}\n--- serial console ({g.serial.path}, tail) ---\n"
                             f"{g.serial.tail(40)}")


def test_the_installed_disk_boots_alone_keeps_its_state_upgrades_and_rolls_back_on_bios_and_uefi(
        machine: Machine, installed_disk: InstalledDisk, tmp_path: Path) -> None:
    if ovmf() is None:
        unavailable("no OVMF in /usr/share/OVMF (apt-get install ovmf)")
    first = machine.boot()  # the installed disk alone, on SeaBIOS
    step = "boot 1 (the installed disk alone, BIOS)"
    _step(step, first, first.version == installed_disk.version, first.version)
    cmdline = first.host("cat /proc/cmdline").stdout
    _step(step, first, "corral.slot=A" in cmdline and "panic=10" in cmdline, cmdline)
    _step(step + ": started by SeaBIOS", first, "efi: EFI v" not in first.serial.text())
    hostname = first.host("hostname").stdout.strip()
    _step(step + ": corral install --config applied", first, hostname == HOSTNAME, hostname)
    state = first.host("findmnt -n -o SOURCE /run/corral/state").stdout.strip()
    _step(step + ": the installed disk's CORRAL_STATE partition", first, state == "/dev/vda5", state)
    first.host(f"sh -c 'echo kept > {MARKER} && sync'")

    started = time.monotonic()
    first.sudo(f"corral os upgrade --image {BUNDLES}/v2.tar", timeout=900)
    listed = _os_list(first)
    assert (listed["active"], listed["default"], listed["next"]) == ("A", "A", "B")
    _reboot(first)

    second = machine.boot()  # the trial of slot B
    upgrade_seconds = time.monotonic() - started  # the image given -> the new version ready
    step = "boot 2 (after os upgrade: slot B)"
    _step(step, second, second.version == VERSION2, second.version)
    cmdline = second.host("cat /proc/cmdline").stdout
    _step(step, second, "corral.slot=B" in cmdline, cmdline)
    assert f"corral {VERSION2} on " in second.sudo("cat /etc/issue").stdout  # the console's banner
    kept = second.host(f"cat {MARKER}", check=False).stdout.strip()
    _step(step + ": the file written to the persistent state in boot 1", second, kept == "kept", kept)
    listed = _wait_committed(second, "B")
    assert listed["default"] == "B" and listed["active"] == "B" and listed["trial_pending"] is None
    assert {(s["slot"], s["version"], s["complete"]) for s in listed["slots"]} == \
        {("A", installed_disk.version, True), ("B", VERSION2, True)}
    status = _status(second)
    assert status["version"] == VERSION2 and status["os"]["trial"] == "good"
    (tmp_path / "upgrade.json").write_text(json.dumps({"upgrade_seconds": round(upgrade_seconds, 1)}))
    print(f"upgrade: image to next-boot-ready {upgrade_seconds:.1f} s (TCG)")

    rolled = json.loads(second.sudo("corral os rollback --json").stdout)
    assert rolled == {"default": "A", "previous": "B", "version": installed_disk.version}
    _reboot(second)
    third = machine.boot(uefi=True)  # the same disk on OVMF: its BOOTX64.EFI reads the same grubenv
    step = "boot 3 (after os rollback: slot A, UEFI)"
    _step(step, third, third.version == installed_disk.version, third.version)
    _step(step + ": started by the UEFI firmware", third, "efi: EFI v" in third.serial.text())
    cmdline = third.host("cat /proc/cmdline").stdout
    _step(step, third, "corral.slot=A" in cmdline, cmdline)
    assert _os_list(third)["default"] == "A"
    kept = third.host(f"cat {MARKER}", check=False).stdout.strip()
    _step(step + ": the file written to the persistent state in boot 1", third, kept == "kept", kept)
    hostname = third.host("hostname").stdout.strip()
    _step(step + ": corral install --config applied", third, hostname == HOSTNAME, hostname)


@pytest.mark.skipif(not SOAK, reason="8 boots under TCG: run with CORRAL_SOAK=1")
def test_broken_builds_and_a_killed_upgrade_come_back_on_the_old_version(
        machine: Machine, installed_disk: InstalledDisk) -> None:
    old = installed_disk.version
    g = machine.boot()
    # A build whose PID 1 exits at once: the kernel panics, panic=10 reboots, the old slot boots.
    g.sudo(f"corral os upgrade --image {BUNDLES}/broken-init", timeout=900)
    _reboot(g)
    machine.boot_unready(DISK_BOOT_TIMEOUT)
    g = machine.boot()
    assert g.version == old
    report = _status(g)["os"]["rolled_back"]
    assert report["message"].startswith(f"upgrade to version {VERSION2}-broken-init rolled back: the trial "
                                        "boot never reported")
    assert f"upgrade to version {VERSION2}-broken-init rolled back" in g.sudo("corral status").stdout

    # A build whose PID 1 hangs before the slots phase (in its imports): the watchdog it opened as its
    # first act (the trial's corral.trial=1) is no longer petted, the softdog resets, the old slot boots.
    g.sudo(f"corral os upgrade --image {BUNDLES}/hang-early", timeout=900)
    _reboot(g)
    hung = machine.boot_unready(DISK_BOOT_TIMEOUT)
    console = hung.serial.text()
    assert "corral.slot=B corral.trial=1 " in console  # the kernel's "Command line:"
    assert "softdog: Initiating system reboot" in console
    g = machine.boot()
    assert g.version == old and "corral.trial=1" not in g.host("cat /proc/cmdline").stdout
    report = _status(g)["os"]["rolled_back"]
    assert report["message"].startswith(f"upgrade to version {VERSION2}-hang-early rolled back: the trial "
                                        "boot never reported")

    # A build whose system unit never comes up: the trial gives up after its limit and reboots.
    g.sudo("corral config set corral.upgrade.trial_timeout 300")
    g.sudo(f"corral os upgrade --image {BUNDLES}/never-up", timeout=900)
    _reboot(g)
    machine.boot_unready(DISK_BOOT_TIMEOUT + 300)
    g = machine.boot()
    assert g.version == old and "corral.slot=A" in g.host("cat /proc/cmdline").stdout
    report = _status(g)["os"]["rolled_back"]
    assert report["message"].startswith(f"upgrade to version {VERSION2}-never-up rolled back: not ready "
                                        "within 300 s")
    assert "never-up" in report["reason"] and report["journal"]["records"] > 0
    kept = g.host(f"cat {report['journal']['path']}").stdout
    assert "failed its trial" in kept

    # QEMU killed in the middle of `os upgrade`: the next boot is the old version, intact.
    upgrading = subprocess.Popen(g.ssh_argv(f"sudo corral os upgrade --image {BUNDLES}/v2.tar"),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert upgrading.stdout is not None
    for line in upgrading.stdout:  # its progress: "slot B: corral 9.9.9 -> /dev/vda4" as the write begins
        if line.startswith("slot B"):
            time.sleep(1.0)  # into the write (mkfs, the files' copy)
            break
    g.proc.kill()  # the power cut
    g.stop()
    upgrading.kill()
    upgrading.wait(30)
    g = machine.boot()
    assert g.version == old and "corral.slot=A" in g.host("cat /proc/cmdline").stdout
    assert _os_list(g)["default"] == "A"
