"""corral install from the live OS, and the installed disk booted alone (docs/install.md).

The session's ``installed_disk`` (integration/installed.py) is one live boot: the refused installs, then
the install to a blank virtio disk. Here that disk boots by itself, with no kernel, initrd or ISO
given: on SeaBIOS, where a file is written to the persistent state, then (the same disk, powered off
and on) on OVMF, where the file is still there. Three boots in all, each minutes under TCG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from integration.firmware import ovmf
from integration.guest import BOOT_TIMEOUT, Guest, GuestSpec
from integration.installed import HOSTNAME, InstalledDisk
from integration.netns import unavailable

pytestmark = pytest.mark.timeout(3600)
DISK_BOOT_TIMEOUT = max(BOOT_TIMEOUT, 600.0)  # the firmware's and GRUB's part comes first (test_guest_iso)
MARKER = "/var/lib/corral/install-test-marker"


def test_install_refuses_a_disk_with_a_filesystem_and_a_mounted_disk(installed_disk: InstalledDisk) -> None:
    filesystem = installed_disk.refusals["filesystem"]
    assert filesystem.returncode == 1, filesystem
    assert "/dev/vdd is not blank (--force erases it)" in filesystem.stderr
    assert "vdd: ext4 labelled 'data' at offset 0x438" in filesystem.stderr
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


def _boot_disk(make_guest: Callable[..., Guest], disk: Path, name: str, uefi: bool) -> Guest:
    g = make_guest(GuestSpec(boot_disk=disk, uefi=uefi, boot_timeout=DISK_BOOT_TIMEOUT), name=name)
    assert "-kernel" not in g.argv and "-initrd" not in g.argv and "ide-cd" not in " ".join(g.argv)
    g.wait_ssh()
    return g


def test_the_installed_disk_boots_alone_on_bios_and_uefi_and_keeps_its_state(
        make_guest: Callable[..., Guest], installed_disk: InstalledDisk, tmp_path: Path) -> None:
    if ovmf() is None:
        unavailable("no OVMF in /usr/share/OVMF (apt-get install ovmf)")
    disk = installed_disk.overlay(tmp_path / "disk.qcow2")
    bios = _boot_disk(make_guest, disk, "bios", uefi=False)
    assert bios.version == installed_disk.version
    cmdline = bios.host("cat /proc/cmdline").stdout
    assert "corral.slot=A" in cmdline and "panic=10" in cmdline
    assert "efi: EFI v" not in bios.serial.text()
    assert bios.host("hostname").stdout.strip() == HOSTNAME  # the --config given to corral install
    state = bios.host("findmnt -n -o SOURCE /run/corral/state").stdout.strip()
    assert state == "/dev/vda5", state  # the installed disk's CORRAL_STATE partition
    bios.host(f"sh -c 'echo kept > {MARKER} && sync'")
    bios.sudo("corral poweroff", check=False)
    bios.wait_exit(300)

    uefi = _boot_disk(make_guest, disk, "uefi", uefi=True)
    assert "efi: EFI v" in uefi.serial.text()  # the kernel was started by the UEFI firmware
    assert "corral.slot=A" in uefi.host("cat /proc/cmdline").stdout
    assert uefi.host(f"cat {MARKER}").stdout.strip() == "kept"
    assert uefi.host("hostname").stdout.strip() == HOSTNAME
