"""/proc/self/mountinfo, parsed: the one reader of the mount table (PID 1's own mounts, the storage
library's observation, the units' required mounts)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    target: str
    options: str
    fstype: str
    source: str
    super_options: str = ""

    @property
    def devno(self) -> tuple[int, int]:
        return (self.major, self.minor)


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> tuple[MountEntry, ...]:
    entries = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            entries.append(MountEntry(
                mount_id=int(fields[0]), parent_id=int(fields[1]), major=int(major), minor=int(minor),
                root=_unescape(fields[3]), target=_unescape(fields[4]), options=fields[5],
                fstype=fields[sep + 1], source=_unescape(fields[sep + 2]),
                super_options=fields[sep + 3] if len(fields) > sep + 3 else ""))
        except (ValueError, IndexError):
            continue
    return tuple(entries)


def read_mountinfo(path: Path = Path("/proc/self/mountinfo")) -> tuple[MountEntry, ...]:
    return parse_mountinfo(path.read_text())


def mounted_targets(text: str) -> set[str]:
    """Mount points listed in a mountinfo text (octal escapes decoded)."""
    return {entry.target for entry in parse_mountinfo(text)}
