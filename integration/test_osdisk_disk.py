"""The installed disk's layout carried out on a real loop device (osdisk/disk.py): real wipefs, sfdisk,
mkfs.vfat and mkfs.ext4, and a version written into a slot with write_slot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osdisk import bundle, disk, layout
from osdisk.layout import MIB

TOOLS = ("losetup", "sfdisk", "wipefs", "mkfs.vfat", "mkfs.ext4", "blkid", "mount", "umount")


def need() -> None:
    if os.geteuid() != 0:
        from integration.netns import unavailable

        unavailable("needs root (loop devices)")
    for tool in TOOLS:
        if shutil.which(tool) is None:
            from integration.netns import unavailable

            unavailable(f"{tool} missing")


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[str]:
    need()
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(layout.min_disk_bytes() + 64 * MIB)
    dev = subprocess.run(["losetup", "-f", "--show", "-P", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        for part in [*ATTACHED, dev]:
            subprocess.run(["losetup", "-d", part], check=False, capture_output=True)
        ATTACHED.clear()


def make_bundle(directory: Path, version: str) -> bundle.Bundle:
    directory.mkdir()
    (directory / "vmlinuz").write_bytes(b"kernel " + version.encode() * 1000)
    (directory / "initrd").write_bytes(os.urandom(3 * MIB))
    manifest = bundle.make_manifest(directory, version, "6.1.0-test")
    (directory / bundle.MANIFEST).write_text(json.dumps(manifest))
    return bundle.read(directory)


ATTACHED: list[str] = []


def image(dev: str) -> str:
    return Path(f"/sys/block/{Path(dev).name}/loop/backing_file").read_text().strip()


def attach_part(backing: str, part: layout.Partition) -> str:
    """The partition as a loop device of its own (this host's kernel may not scan a loop disk's GPT)."""
    dev = subprocess.run(["losetup", "-f", "--show", "-o", str(part.start), "--sizelimit", str(part.size),
                          backing], check=True, capture_output=True, text=True).stdout.strip()
    ATTACHED.append(dev)
    return dev


def sfdisk_json(dev: str) -> list[dict[str, Any]]:
    out = subprocess.run(["sfdisk", "--json", dev], check=True, capture_output=True, text=True).stdout
    return list(json.loads(out)["partitiontable"]["partitions"])


def blkid(path: str, tag: str) -> str:
    return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, path], capture_output=True,
                          text=True, check=False).stdout.strip()


def test_partition_format_and_write_slots(loop_disk: str, tmp_path: Path) -> None:
    tools = disk.Tools()
    lay = layout.plan(disk.device_bytes(loop_disk))
    disk.partition(loop_disk, lay, tools, settle=False)
    table = sfdisk_json(loop_disk)
    assert [(p["name"], p["type"], p["start"] * 512, p["size"] * 512) for p in table] == [
        (p.name, p.type_guid, p.start, p.size) for p in lay.partitions]
    paths = {part.number: attach_part(image(loop_disk), part) for part in lay.partitions}
    disk.make_filesystems(paths, lay, tools)
    for part in lay.partitions:
        path = paths[part.number]
        if part.label is not None:
            assert blkid(path, "LABEL") == part.label
            assert blkid(path, "TYPE") == part.fstype
    old = make_bundle(tmp_path / "old", "1.0.0")
    new = make_bundle(tmp_path / "new", "2.0.0")
    slot_a = paths[lay.slot("A").number]
    disk.write_slot(slot_a, old, tools, layout.slot_label("A"))
    disk.write_slot(slot_a, new, tools, layout.slot_label("A"))  # a slot is written whole, again
    assert blkid(slot_a, "LABEL") == "CORRAL_A"
    with disk.mounted(slot_a, "ext4", tools, read_only=True) as root:
        assert sorted(p.name for p in root.iterdir() if p.name != "lost+found") == sorted(bundle.SLOT_FILES)
        written = bundle.read(root)
        bundle.check_files(written)
        assert written.version == "2.0.0"
        assert (root / "initrd").read_bytes() == (tmp_path / "new" / "initrd").read_bytes()


def mtools_esp(path: str, files: dict[str, bytes], tools: disk.Tools) -> None:
    """The ESP written with mtools: this host's kernel has no vfat to mount it (the guest's has)."""
    staging = Path(tempfile.mkdtemp())
    try:
        disk.write_files(staging, files)
        for top in staging.iterdir():
            subprocess.run(["mcopy", "-s", "-i", path, str(top), "::/"], check=True, capture_output=True)
    finally:
        shutil.rmtree(staging)


def mtype(path: str, name: str) -> bytes:
    return subprocess.run(["mtype", "-i", path, f"::/{name}"], check=True, capture_output=True).stdout


def test_install_on_a_loop_disk_then_upgrade_the_other_slot(loop_disk: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """corral install's steps for real (but the BIOS boot code's bytes: tests/test_osdisk_bootloader.py;
    and the ESP written with mtools), then os upgrade's: the bundle into slot B, the next boot once."""
    if shutil.which("mcopy") is None:
        pytest.skip("mtools missing")
    monkeypatch.setattr(disk, "write_esp", mtools_esp)
    from image import bootfiles
    from osdisk import bootmenu, grubenv, install, upgrade
    from supervisor.config.generations import Generations

    boot_files = tmp_path / "root"
    bootfiles.install(boot_files)
    tools = disk.Tools()
    facts = install.inspect(loop_disk, tools)
    assert install.refusals(facts) == []
    paths: dict[int, str] = {}

    def partition_paths(lay: layout.Layout) -> dict[int, str]:
        paths.update({p.number: attach_part(image(loop_disk), p) for p in lay.partitions})
        return paths

    steps: list[str] = []
    source = make_bundle(tmp_path / "v1", "1.0.0")
    report = install.install(loop_disk, source, b"#cloud-config\nhostname: installed\n",
                             lambda step, detail: steps.append(step), tools, boot_files / bootfiles.DEST,
                             partition_paths)
    assert steps == ["partition", "filesystems", "bootloader", "slot A", "config", "sync"]
    assert report.to_dict()["version"] == "1.0.0"
    with open(loop_disk, "rb") as f:
        mbr = f.read(512)
    assert mbr[0x1FE:] == b"\x55\xaa" and mbr[0x1BE + 4] == 0xEE  # GRUB's boot code, GPT's protective MBR
    assert mbr[:0x1B8] == (boot_files / bootfiles.DEST / "boot.img").read_bytes()[:3] + mbr[3:0x1B8]
    lay = layout.plan(disk.device_bytes(loop_disk))
    esp = paths[lay.esp.number]
    assert blkid(esp, "LABEL") == "CORRAL_EFI"
    assert mtype(esp, "EFI/BOOT/BOOTX64.EFI") == (boot_files / bootfiles.DEST / "BOOTX64.EFI").read_bytes()
    assert mtype(esp, "grub/grub.cfg").decode() == bootmenu.grub_cfg()
    assert grubenv.parse(mtype(esp, "grub/grubenv")) == {"default_slot": "A"}
    with disk.mounted(paths[lay.state.number], "ext4", tools, read_only=True) as state:
        conf = Generations(state / install.CONFIG_DIR)
        assert (conf.read_dir() / "cloud-config.yml").read_text() == "#cloud-config\nhostname: installed\n"
    # the disk is not blank now: refused, naming what is there
    found = install.refusals(install.inspect(loop_disk, tools))
    assert any("gpt partition table" in f for f in found), found

    # os upgrade: slot B gets the new version, then the next boot once
    v2 = make_bundle(tmp_path / "v2", "2.0.0")
    archive = tmp_path / bundle.ARCHIVE_NAME
    bundle.pack(v2.directory, archive)
    asked: list[tuple[str, str]] = []
    up = upgrade.upgrade(str(archive), [], lambda s, d: None, tools, cmdline="corral.slot=A quiet",
                         staging_parent=tmp_path / "staging",
                         slot_device=lambda slot: paths[lay.slot(slot).number],
                         next_once=lambda slot, version: asked.append((slot, version)))
    assert (up.slot, up.running_slot, up.version) == ("B", "A", "2.0.0")
    assert asked == [("B", "2.0.0")]
    with disk.mounted(paths[lay.slot("B").number], "ext4", tools, read_only=True) as slot_b:
        assert bundle.read(slot_b).version == "2.0.0"
        bundle.check_files(bundle.read(slot_b))
    assert not any((tmp_path / "staging").iterdir())  # the staging directory is gone

    # a tampered bundle is refused and nothing is written: slot A keeps 1.0.0, no next boot asked
    v3 = make_bundle(tmp_path / "v3", "3.0.0")
    data = bytearray((v3.directory / "initrd").read_bytes())
    data[12345] ^= 0xFF
    (v3.directory / "initrd").write_bytes(bytes(data))
    with pytest.raises(upgrade.UpgradeError, match=r"refused, nothing written: .*initrd: sha256"):
        upgrade.upgrade(str(v3.directory), [], lambda s, d: None, tools, cmdline="corral.slot=B",
                        slot_device=lambda slot: paths[lay.slot(slot).number],
                        next_once=lambda slot, version: asked.append((slot, version)))
    assert asked == [("B", "2.0.0")]
    with disk.mounted(paths[lay.slot("A").number], "ext4", tools, read_only=True) as slot_a:
        assert bundle.read(slot_a).version == "1.0.0"
