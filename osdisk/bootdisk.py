"""The installed disk's boot side, as files: the ESP's GRUB environment block and the slots' manifests.

Blocking (PID 1 calls these in a thread). A partition is found by its filesystem label: the udev link
``/dev/disk/by-label/LABEL`` when there is one, else every block device probed with libblkid (PID 1 may
ask before udev made the links). It is mounted for the one read or write under
``/run/corral/osdisk/`` (read-write only while writing the block) and unmounted at once. A
:class:`Location` with directories instead (the sandbox, tests) uses them as they are.

The read-modify-write of the block is serialised by an flock on ``/run/corral/osdisk.lock`` (PID 1 and a
``corral os upgrade`` may both write it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osdisk import grubenv, selection
from osdisk.bootmenu import ENV_PATH, ESP_LABEL, slot_label
from osdisk.layout import MOUNT_OPTIONS
from supervisor.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount_raw, umount

MS_RDONLY = 1
MANIFEST = "manifest.json"
SLOT_FILES = ("vmlinuz", "initrd")
MANIFEST_MAX = 1 << 20


class BootDiskError(Exception):
    """Not an installed disk, or a partition that cannot be read (the message names it)."""


@dataclass(frozen=True)
class Location:
    """Where the ESP and the slots are: found by label (``esp``/``slots`` None), or directories."""

    esp: Path | None = None  # a directory holding grub/grubenv
    slots: Mapping[str, Path] = field(default_factory=dict)  # slot -> a directory holding its files
    run_dir: Path = Path("/run/corral")
    dev: Path = Path("/dev")
    sys_block: Path = Path("/sys/class/block")
    esp_label: str = ESP_LABEL
    esp_fstype: str = "vfat"
    slot_labels: Mapping[str, str] = field(
        default_factory=lambda: {s: slot_label(s) for s in selection.SLOTS})

    @classmethod
    def directories(cls, root: Path) -> Location:
        """A fake disk under ``root``: ``esp/grub/grubenv`` and ``slots/A``, ``slots/B``."""
        return cls(esp=root / "esp", slots={s: root / "slots" / s for s in selection.SLOTS},
                   run_dir=root / "run")


def find_by_label(label: str, dev: Path = Path("/dev"),
                  sys_block: Path = Path("/sys/class/block")) -> str | None:
    """The device holding a filesystem labelled ``label``, or None."""
    link = dev / "disk" / "by-label" / label
    if link.exists():
        return os.path.realpath(link)
    from storage import libblkid

    if not libblkid.available():
        return None
    try:
        names = sorted(os.listdir(sys_block))
    except OSError:
        return None
    for name in names:
        if name.startswith(("loop", "ram", "zram", "sr", "fd")) and not (sys_block / name / "loop").is_dir():
            continue  # an unused loop device has no "loop" directory; optical and RAM disks hold no slot
        node = dev / name
        try:
            status, values = libblkid.probe(os.fspath(node))
        except OSError:
            continue
        if status == libblkid.FOUND and values.get("LABEL") == label:
            return os.fspath(node)
    return None


@contextlib.contextmanager
def _mounted(location: Location, label: str, directory: Path | None, fstype: str,
             writable: bool) -> Iterator[Path]:
    if directory is not None:
        yield directory
        return
    device = find_by_label(label, location.dev, location.sys_block)
    if device is None:
        raise BootDiskError(f"no partition labelled {label}: this is not an installed corral disk")
    base = location.run_dir / "osdisk"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = Path(tempfile.mkdtemp(prefix=f"{label}.", dir=base))
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if writable else MS_RDONLY)
    try:
        try:
            mount_raw(device, target, fstype, flags, MOUNT_OPTIONS.get(fstype, ""))
        except OSError as exc:
            raise BootDiskError(f"{label} ({device}): {exc}") from None
        try:
            yield target
        finally:
            if writable:
                os.sync()
            umount(target)
    finally:
        with contextlib.suppress(OSError):
            target.rmdir()


@contextlib.contextmanager
def _locked(location: Location) -> Iterator[None]:
    location.run_dir.mkdir(parents=True, exist_ok=True)
    with open(location.run_dir / "osdisk.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_env(location: Location) -> dict[str, str]:
    """The ESP's environment block (empty when the ESP has none yet)."""
    with _locked(location), _mounted(location, location.esp_label, location.esp, location.esp_fstype,
                                     writable=False) as esp:
        try:
            return grubenv.read(esp / ENV_PATH.lstrip("/"))
        except FileNotFoundError:
            return {}
        except (OSError, grubenv.EnvBlockError) as exc:
            raise BootDiskError(str(exc)) from None


def update_env(location: Location, changes: Mapping[str, str | None]) -> dict[str, str]:
    """Apply ``changes`` (osdisk/selection.py) to the ESP's environment block; returns it as written."""
    with _locked(location), _mounted(location, location.esp_label, location.esp, location.esp_fstype,
                                     writable=True) as esp:
        path = esp / ENV_PATH.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return grubenv.update(path, changes)
        except (OSError, grubenv.EnvBlockError) as exc:
            raise BootDiskError(str(exc)) from None


def set_next_once(slot: str, version: str, location: Location | None = None) -> dict[str, str]:
    """Boot ``slot`` (holding ``version``) once at the next boot; the default slot stays the default
    until that boot is marked good. For ``corral os upgrade``, once the slot is written whole."""
    return update_env(location or Location(), selection.next_once(slot, version))


@dataclass(frozen=True)
class SlotInfo:
    slot: str
    version: str | None  # the manifest's corral_version
    complete: bool
    problem: str = ""  # why it is not complete

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "version": self.version, "complete": self.complete,
                "problem": self.problem or None}


def check_slot(slot: str, files: Path) -> SlotInfo:
    """A slot is complete when its manifest names a version and its kernel and initrd have the sizes the
    manifest gives (a slot is written whole, then renamed into place: a half-written one fails this)."""
    try:
        with (files / MANIFEST).open("rb") as f:
            raw = f.read(MANIFEST_MAX + 1)
        data = json.loads(raw) if len(raw) <= MANIFEST_MAX else None
    except FileNotFoundError:
        return SlotInfo(slot, None, False, "empty (no manifest.json)")
    except (OSError, ValueError) as exc:
        return SlotInfo(slot, None, False, f"manifest.json unreadable: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("corral_version"), str):
        return SlotInfo(slot, None, False, "manifest.json names no corral_version")
    version = data["corral_version"]
    files_field = data.get("files")
    sizes: dict[str, Any] = files_field if isinstance(files_field, dict) else {}
    for name in SLOT_FILES:
        try:
            size = (files / name).stat().st_size
        except OSError:
            return SlotInfo(slot, version, False, f"{name} missing")
        entry = sizes.get(name)
        expected = entry.get("bytes") if isinstance(entry, dict) else entry  # a bundle's, or a build's
        if expected is not None and expected != size:
            return SlotInfo(slot, version, False, f"{name} is {size} bytes, the manifest says {expected}")
    return SlotInfo(slot, version, True)


def read_slot(slot: str, location: Location) -> SlotInfo:
    try:
        with _mounted(location, location.slot_labels[slot], location.slots.get(slot), "ext4",
                      writable=False) as files:
            return check_slot(slot, files)
    except BootDiskError as exc:
        return SlotInfo(slot, None, False, str(exc))
