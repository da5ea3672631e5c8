"""What a name given on the command line means: a device spec (``corral dev SPEC``) or a mount rule
(``corral storage mount|unmount NAME``). Pure, except ``resolve_path`` (a stat of a device node).

A device spec is ``LABEL=x``, ``UUID=x``, ``PARTUUID=x``, ``PARTLABEL=x`` or a path (``/dev/sdb1``,
``/dev/disk/by-label/DATA``, or a bare ``sdb1`` meaning ``/dev/sdb1``). UUIDs and PARTUUIDs compare
without regard to case; labels exactly. A rule is named by its key (``mounts[0]``) or its path."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from storage.observe import BlockDevice
from storage.rules import MountRule

SPEC_KINDS = ("LABEL", "UUID", "PARTUUID", "PARTLABEL")


@dataclass(frozen=True)
class DeviceSpec:
    kind: str  # LABEL | UUID | PARTUUID | PARTLABEL | path
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "path" else f"{self.kind}={self.value}"


def parse_device_spec(text: str) -> DeviceSpec:
    """``LABEL=x`` and the like, or a path; ValueError with the reason for anything else."""
    text = text.strip()
    if not text:
        raise ValueError("an empty device spec: give LABEL=, UUID=, PARTUUID=, PARTLABEL= or a path")
    kind, sep, value = text.partition("=")
    if sep:
        kind = kind.strip().upper()
        value = value.strip().strip('"')
        if kind not in SPEC_KINDS:
            raise ValueError(f"{text!r}: {kind}= is not one of LABEL=, UUID=, PARTUUID=, PARTLABEL=")
        if not value:
            raise ValueError(f"{text!r}: empty {kind.lower()}")
        return DeviceSpec(kind, value)
    path = text if text.startswith("/") else f"/dev/{text}"
    return DeviceSpec("path", os.path.normpath(path))


def spec_matches(spec: DeviceSpec, dev: BlockDevice) -> bool:
    fs = dev.fs
    if spec.kind == "path":
        return spec.value == dev.devname or spec.value in dev.links
    if fs is None:
        return False
    if spec.kind == "LABEL":
        return fs.label == spec.value
    if spec.kind == "PARTLABEL":
        return fs.partlabel == spec.value
    value = fs.uuid if spec.kind == "UUID" else fs.partuuid
    return value is not None and value.lower() == spec.value.lower()


def find_devices(spec: DeviceSpec, devices: Sequence[BlockDevice],
                 devno: tuple[int, int] | None = None) -> list[BlockDevice]:
    """The devices ``spec`` names, by name. ``devno``: what a path spec's node is (``resolve_path``)."""
    found = [d for d in devices if spec_matches(spec, d) or (devno is not None and d.devno == devno)]
    return sorted(found, key=lambda d: (d.devname, d.minor))


def resolve_path(path: str) -> tuple[int, int]:
    """The device number of the block device node at ``path`` (symlinks followed). ValueError when
    there is none. Blocking (a stat): run it in a thread."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise ValueError(f"{path} is not a block device")
    return (os.major(st.st_rdev), os.minor(st.st_rdev))


def find_rule(name: str, rules: Sequence[MountRule], root: str = "/") -> MountRule | None:
    """The rule called ``name``: its key (``mounts[0]``) or its path (as written in the config, or under
    ``root`` where the handler mounts it)."""
    for rule in rules:
        if name == rule.key:
            return rule
    text = os.path.normpath(name) if name.startswith("/") else None
    if text is None:
        return None
    rooted = os.path.normpath(os.path.join(root, text.lstrip("/")))
    for rule in rules:
        if rule.path in (text, rooted):
            return rule
    return None
