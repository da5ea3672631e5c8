"""What storage decisions are made from: block devices (sysfs), their filesystems (udev's database when
udevd runs, else ``blkid -p``) and the mount table (``/proc/self/mountinfo``).

The parsers are pure. ``read_block_devices`` and ``read_mountinfo`` read sysfs and procfs (fast,
in-memory files; callers run them in a thread anyway). ``Prober`` runs blkid through the
ProcessManager and caches each answer per device *medium*: (device, major:minor, diskseq, size); a
full resync starts the cache over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from supervisor.process import ProcessManager

log = structlog.get_logger("supervisor.storage")

SECTOR = 512


@dataclass(frozen=True)
class FsFacts:
    """What is on a device. ``type`` None and ``pttype`` None and not ``ambivalent``: no signature."""

    type: str | None = None
    label: str | None = None
    uuid: str | None = None
    usage: str | None = None
    version: str | None = None
    pttype: str | None = None  # a partition table (the device holds partitions)
    ambivalent: bool = False  # blkid found several signatures
    source: str = "blkid"  # blkid | udev

    @property
    def blank(self) -> bool:
        """No signature at all (which is not proof of emptiness: see the state logic's zero check)."""
        return self.type is None and self.pttype is None and not self.ambivalent


@dataclass(frozen=True)
class BlockDevice:
    name: str  # loop0, sda1
    devname: str  # /dev/loop0
    major: int
    minor: int
    size: int  # in 512-byte sectors; 0: no medium (detached loop, empty card reader)
    devtype: str = "disk"  # disk | partition
    diskseq: int | None = None  # the kernel's medium sequence number (5.15+): changes with the medium
    read_only: bool = False
    removable: bool = False
    serial: str | None = None
    backing_file: str | None = None  # loop devices
    links: tuple[str, ...] = ()  # /dev/disk/by-* (from udev's database)
    fs: FsFacts | None = None  # None: not known (not probed, or the probe failed)

    @property
    def devno(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def fstype(self) -> str | None:
        return self.fs.type if self.fs is not None else None

    def to_dict(self) -> dict[str, object]:
        return {
            "devname": self.devname, "major": self.major, "minor": self.minor, "size": self.size * SECTOR,
            "diskseq": self.diskseq, "type": self.devtype, "ro": self.read_only, "serial": self.serial,
            "fstype": self.fstype, "label": self.fs.label if self.fs else None,
            "uuid": self.fs.uuid if self.fs else None,
        }


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


@dataclass(frozen=True)
class Observed:
    devices: tuple[BlockDevice, ...]
    mounts: tuple[MountEntry, ...]


# ---- pure parsers ----------------------------------------------------------------------------------------
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


def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -p -o export`` output (KEY=value lines) as a dict."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value
    return out


def facts_from_blkid(values: Mapping[str, str]) -> FsFacts:
    return FsFacts(type=values.get("TYPE"), label=values.get("LABEL"), uuid=values.get("UUID"),
                   usage=values.get("USAGE"), version=values.get("VERSION"), pttype=values.get("PTTYPE"))


def facts_from_udev(props: Mapping[str, str]) -> FsFacts | None:
    """Filesystem facts from udev properties (an event or udev's database); None if udev has none."""
    if not props.get("ID_FS_TYPE") and not props.get("ID_PART_TABLE_TYPE"):
        return None
    return FsFacts(type=props.get("ID_FS_TYPE") or None, label=props.get("ID_FS_LABEL") or None,
                   uuid=props.get("ID_FS_UUID") or None, usage=props.get("ID_FS_USAGE") or None,
                   version=props.get("ID_FS_VERSION") or None, pttype=props.get("ID_PART_TABLE_TYPE") or None,
                   ambivalent=props.get("ID_FS_AMBIVALENT") is not None, source="udev")


def parse_udev_db(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """udev's database file of a device (/run/udev/data/b8:1): its properties and /dev links."""
    props: dict[str, str] = {}
    links: list[str] = []
    for line in text.splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
        elif line.startswith("S:"):
            links.append("/dev/" + line[2:])
    return props, tuple(links)


def parse_uevent_file(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


# ---- sysfs and procfs ------------------------------------------------------------------------------------
def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


UdevProps = dict[str, dict[str, str]]


def read_block_devices(sys_root: Path = Path("/sys"), udev_data: Path | None = Path("/run/udev/data"),
                       include_empty: bool = False) -> tuple[tuple[BlockDevice, ...], UdevProps]:
    """Every block device the kernel has (with a medium, unless ``include_empty``), and for each the
    udev database's properties when udevd runs (keyed by devname)."""
    devices = []
    udev_props: dict[str, dict[str, str]] = {}
    base = sys_root / "class" / "block"
    try:
        names = sorted(p.name for p in base.iterdir())
    except OSError:
        return (), {}
    for name in names:
        d = base / name
        uevent = parse_uevent_file(_read(d / "uevent") or "")
        try:
            major, minor = int(uevent["MAJOR"]), int(uevent["MINOR"])
            size = int(_read(d / "size") or "0")
        except (KeyError, ValueError):
            continue
        if size == 0 and not include_empty:
            continue
        devtype = uevent.get("DEVTYPE", "disk")
        disk = d if devtype == "disk" else d.resolve().parent
        diskseq_text = uevent.get("DISKSEQ") or _read(disk / "diskseq")
        serial = _read(d / "serial") or _read(disk / "serial") or _read(disk / "device" / "serial")
        props: dict[str, str] = {}
        links: tuple[str, ...] = ()
        if udev_data is not None:
            db = _read(udev_data / f"b{major}:{minor}")
            if db is not None:
                props, links = parse_udev_db(db)
                udev_props[f"/dev/{uevent.get('DEVNAME', name)}"] = props
        devices.append(BlockDevice(
            name=name, devname="/dev/" + uevent.get("DEVNAME", name), major=major, minor=minor, size=size,
            devtype=devtype, diskseq=int(diskseq_text) if diskseq_text and diskseq_text.isdigit() else None,
            read_only=_read(d / "ro") == "1", removable=_read(disk / "removable") == "1",
            serial=props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL") or serial or None,
            backing_file=_read(disk / "loop" / "backing_file"), links=links))
    return tuple(devices), udev_props


def read_mountinfo(path: Path = Path("/proc/self/mountinfo")) -> tuple[MountEntry, ...]:
    return parse_mountinfo(path.read_text())


# ---- blkid ----------------------------------------------------------------------------------------------
ProbeKey = tuple[str, int, int, int | None, int]


@dataclass
class ProberStats:
    probes: int = 0
    cached: int = 0
    failures: int = 0
    seconds: float = 0.0


class Prober:
    """``blkid -p -o export DEV`` through the ProcessManager, cached per medium."""

    def __init__(self, processes: ProcessManager, blkid: Sequence[str] = ("blkid",), concurrency: int = 8,
                 timeout: float = 15.0) -> None:
        self.processes = processes
        self.blkid = tuple(blkid)
        self.timeout = timeout
        self._sem = asyncio.Semaphore(concurrency)
        self._cache: dict[ProbeKey, FsFacts] = {}
        self.stats = ProberStats()

    @staticmethod
    def key(dev: BlockDevice) -> ProbeKey:
        return (dev.devname, dev.major, dev.minor, dev.diskseq, dev.size)

    def clear(self) -> None:
        self._cache.clear()

    def forget(self, devname: str) -> None:
        for key in [k for k in self._cache if k[0] == devname]:
            del self._cache[key]

    async def probe(self, dev: BlockDevice) -> FsFacts | None:
        key = self.key(dev)
        cached = self._cache.get(key)
        if cached is not None:
            self.stats.cached += 1
            return cached
        async with self._sem:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                status, out, err = await self.processes.run([*self.blkid, "-p", "-o", "export", dev.devname],
                                                            name="blkid", timeout=self.timeout)
            except (OSError, TimeoutError) as exc:
                self.stats.failures += 1
                log.warning("blkid failed", device=dev.devname, error=repr(exc))
                return None
            self.stats.probes += 1
            self.stats.seconds += loop.time() - started
        code = status.returncode
        errors = err.decode(errors="replace").strip()
        if code == 0:
            facts = facts_from_blkid(parse_blkid_export(out.decode(errors="replace")))
        elif code == 2 and not errors and await asyncio.to_thread(os.path.exists, dev.devname):
            facts = FsFacts()  # nothing found (blkid -p exits 2 silently for a missing device too)
        elif code == 8:  # ambivalent: several signatures
            facts = FsFacts(ambivalent=True)
        else:
            self.stats.failures += 1
            log.warning("blkid failed", device=dev.devname, status=status.describe(), stderr=errors[:200])
            return None
        self._cache[key] = facts
        return facts

    def prune(self, present: Iterable[BlockDevice]) -> None:
        keep = {self.key(d) for d in present}
        for key in [k for k in self._cache if k not in keep]:
            del self._cache[key]


# ---- the observer (adapter) -------------------------------------------------------------------------------
Scope = Callable[[BlockDevice], bool]


@dataclass
class Observer:
    """Observes block devices (with filesystem facts) and mounts. ``scope`` limits which devices are
    considered at all (tests keep to their own loop devices)."""

    prober: Prober
    sys_root: Path = Path("/sys")
    mountinfo: Path = Path("/proc/self/mountinfo")
    udev_data: Path | None = Path("/run/udev/data")
    scope: Scope | None = None
    observations: int = field(default=0, init=False)

    async def observe(self, probe: bool = True) -> Observed:
        devices, udev_props, mounts = await asyncio.to_thread(self._read)
        self.observations += 1
        if self.scope is not None:
            devices = tuple(d for d in devices if self.scope(d))
        if probe:
            devices = await self.with_facts(devices, udev_props)
            self.prober.prune(devices)
        return Observed(devices, mounts)

    async def with_facts(self, devices: Sequence[BlockDevice],
                         udev_props: Mapping[str, Mapping[str, str]]) -> tuple[BlockDevice, ...]:
        async def one(dev: BlockDevice) -> BlockDevice:
            facts = facts_from_udev(udev_props.get(dev.devname, {}))
            if facts is None:
                facts = await self.prober.probe(dev)
            return replace(dev, fs=facts)

        return tuple(await asyncio.gather(*(one(d) for d in devices)))

    def _read(self) -> tuple[tuple[BlockDevice, ...], UdevProps, tuple[MountEntry, ...]]:
        udev_data = self.udev_data if self.udev_data is not None and self.udev_data.is_dir() else None
        devices, props = read_block_devices(self.sys_root, udev_data)
        mounts: tuple[MountEntry, ...] = ()
        with contextlib.suppress(OSError):
            mounts = read_mountinfo(self.mountinfo)
        return devices, props, mounts
