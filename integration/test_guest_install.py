"""corral install from the live OS (docs/install.md), judged from the session's ``installed_disk``.

That fixture (integration/installed.py) is one live boot, the ISO as a CD-ROM on SeaBIOS: the refused
installs, then the install to a blank virtio disk. This module boots nothing itself. The installed disk
booting alone is proven by test_guest_upgrade.py's first test, whose boots are that disk with no
kernel, initrd or ISO: on SeaBIOS with the ``--config`` applied and a file written to the persistent
state, which the reboots keep, the last of them on OVMF (UEFI)."""

from __future__ import annotations

import pytest

from integration.installed import InstalledDisk

pytestmark = pytest.mark.timeout(3600)


def test_install_refuses_a_disk_with_a_filesystem_and_a_mounted_disk(installed_disk: InstalledDisk) -> None:
    filesystem = installed_disk.refusals["filesystem"]
    assert filesystem.returncode == 1, filesystem
    assert "/dev/vdc is not blank (--force erases it)" in filesystem.stderr
    assert "vdc: ext4 labelled 'data' at offset 0x438" in filesystem.stderr
    mounted = installed_disk.refusals["mounted"]
    assert mounted.returncode == 1, mounted
    assert "vda is mounted on /run/corral/state" in mounted.stderr


def test_unsigned_and_tampered_bundles_are_refused_and_nothing_is_written(
        installed_disk: InstalledDisk) -> None:
    unsigned = installed_disk.refusals["unsigned"]
    assert unsigned.returncode == 1, unsigned
    assert "unsigned (manifest.json.sig missing) and corral.upgrade.trusted_keys requires a signature" \
        in unsigned.stderr
    tampered = installed_disk.refusals["tampered"]
    assert tampered.returncode == 1, tampered
    assert "initrd: sha256" in tampered.stderr and "does not match the manifest's" in tampered.stderr
    assert installed_disk.target_after_refusals == ""  # wipefs finds nothing on the target: still blank


def test_install_reports_its_steps(installed_disk: InstalledDisk) -> None:
    report = installed_disk.report
    assert report["device"] == "/dev/vdb" and report["slot"] == "A"
    assert [s["step"] for s in report["steps"]] == ["partition", "filesystems", "bootloader", "slot A",
                                                    "config", "sync"]


def test_install_reads_the_running_version_from_the_live_cd(installed_disk: InstalledDisk) -> None:
    # the live OS booted from the ISO on an IDE CD-ROM: the medium corral install copies slot A from
    assert installed_disk.live_medium == "/dev/sr0"
    assert installed_disk.version == installed_disk.live_version  # slot A holds the version that ran
