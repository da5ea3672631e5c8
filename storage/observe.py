"""What storage decisions are made from: block devices (sysfs), their filesystems (udev's database when
udevd runs, else ``blkid -p``) and the mount table (``/proc/self/mountinfo``).

The parsers are pure. ``read_block_devices`` and ``read_mountinfo`` read sysfs and procfs (fast,
in-memory files; callers run them in a thread anyway). ``Prober`` probes like ``blkid -p`` (libblkid
in a thread, or the blkid command through the ProcessManager); its ``ProbeCache`` keeps each answer
per device *medium*: (device, major:minor, DISKSEQ, size). A device whose key is unchanged is never
probed again; one with a new DISKSEQ (another medium), size or number is. An entry without a DISKSEQ
(kernels before 5.15) cannot tell two media of the same size apart: a resync drops those
(``forget_unproven``).

``Observer.observe`` reads every block device (a full observation: startup, resync, config change);
``Observer.observe_named`` re-reads only the devices a batch of uevents named (with a disk's
partitions) plus the mount table, and takes every other device from the last observation."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from storage import libblkid
from supervisor.mountinfo import MountEntry, read_mountinfo
from supervisor.process import ProcessManager

log = structlog.get_logger("storage")

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
    partuuid: str | None = None  # a partition's entry in its table: PARTUUID= (GPT GUID, or MBR id-N)
    partlabel: str | None = None  # a GPT partition's name: PARTLABEL=
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
    disk: str | None = None  # a partition's disk (its kernel name); None for a disk
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
            "uuid": self.fs.uuid if self.fs else None, "partuuid": self.fs.partuuid if self.fs else None,
            "partlabel": self.fs.partlabel if self.fs else None,
        }


@dataclass(frozen=True)
class Observed:
    devices: tuple[BlockDevice, ...]
    mounts: tuple[MountEntry, ...]


# ---- pure parsers ----------------------------------------------------------------------------------------
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
                   usage=values.get("USAGE"), version=values.get("VERSION"), pttype=values.get("PTTYPE"),
                   partuuid=values.get("PART_ENTRY_UUID"), partlabel=values.get("PART_ENTRY_NAME"))


def facts_from_udev(props: Mapping[str, str]) -> FsFacts | None:
    """Filesystem facts from udev properties (an event or udev's database); None if udev has none."""
    if not props.get("ID_FS_TYPE") and not props.get("ID_PART_TABLE_TYPE"):
        return None
    return FsFacts(type=props.get("ID_FS_TYPE") or None, label=props.get("ID_FS_LABEL") or None,
                   uuid=props.get("ID_FS_UUID") or None, usage=props.get("ID_FS_USAGE") or None,
                   version=props.get("ID_FS_VERSION") or None, pttype=props.get("ID_PART_TABLE_TYPE") or None,
                   partuuid=props.get("ID_PART_ENTRY_UUID") or None,
                   partlabel=props.get("ID_PART_ENTRY_NAME") or None,
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
def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


UdevProps = dict[str, dict[str, str]]


def read_block_device(base: str, name: str, udev_data: Path | None = None, include_empty: bool = False
                      ) -> tuple[BlockDevice, dict[str, str] | None] | None:
    """One block device from ``base`` (``/sys/class/block``) by its kernel name, with udev's database
    properties (None without udevd); None when it is gone (or has no medium, unless ``include_empty``)."""
    d = f"{base}/{name}"
    uevent = parse_uevent_file(_read(f"{d}/uevent") or "")
    try:
        major, minor = int(uevent["MAJOR"]), int(uevent["MINOR"])
        size = int(_read(f"{d}/size") or "0")
    except (KeyError, ValueError):
        return None
    if size == 0 and not include_empty:
        return None
    devtype = uevent.get("DEVTYPE", "disk")
    if devtype == "disk":
        disk, disk_name = d, None
    else:
        disk = os.path.dirname(os.path.realpath(d))
        disk_name = os.path.basename(disk)
    diskseq_text = uevent.get("DISKSEQ") or _read(f"{disk}/diskseq")
    serial = _read(f"{d}/serial") or _read(f"{disk}/serial") or _read(f"{disk}/device/serial")
    props: dict[str, str] | None = None
    links: tuple[str, ...] = ()
    if udev_data is not None:
        db = _read(f"{udev_data}/b{major}:{minor}")
        if db is not None:
            props, links = parse_udev_db(db)
    return BlockDevice(
        name=name, devname="/dev/" + uevent.get("DEVNAME", name), major=major, minor=minor, size=size,
        devtype=devtype, diskseq=int(diskseq_text) if diskseq_text and diskseq_text.isdigit() else None,
        read_only=_read(f"{d}/ro") == "1", removable=_read(f"{disk}/removable") == "1",
        serial=(props or {}).get("ID_SERIAL_SHORT") or (props or {}).get("ID_SERIAL") or serial or None,
        backing_file=_read(f"{disk}/loop/backing_file"), links=links, disk=disk_name), props


def partitions_of(base: str, disk: str) -> list[str]:
    """The kernel names of a disk's partitions (``sda1``, ``loop0p1``), from sysfs."""
    try:
        entries = os.listdir(f"{base}/{disk}")
    except OSError:
        return []
    return [e for e in entries if e.startswith(disk) and os.path.exists(f"{base}/{disk}/{e}/partition")]


def read_block_devices(sys_root: Path = Path("/sys"), udev_data: Path | None = Path("/run/udev/data"),
                       include_empty: bool = False, names: Iterable[str] | None = None,
                       ) -> tuple[tuple[BlockDevice, ...], UdevProps]:
    """Every block device the kernel has (or only those ``names``, kernel names), with a medium unless
    ``include_empty``, and for each the udev database's properties when udevd runs (keyed by devname)."""
    base = f"{sys_root}/class/block"
    if names is None:
        try:
            names = os.listdir(base)
        except OSError:
            return (), {}
    devices = []
    udev_props: UdevProps = {}
    for name in sorted(set(names)):
        found = read_block_device(base, name, udev_data, include_empty)
        if found is None:
            continue
        dev, props = found
        devices.append(dev)
        if props is not None:
            udev_props[dev.devname] = props
    return tuple(devices), udev_props


# ---- blkid ----------------------------------------------------------------------------------------------
ProbeKey = tuple[str, int, int, int | None, int]


def probe_key(dev: BlockDevice) -> ProbeKey:
    """What identifies a device's medium: (devname, major, minor, DISKSEQ, size)."""
    return (dev.devname, dev.major, dev.minor, dev.diskseq, dev.size)


class ProbeCache:
    """Filesystem facts per medium (pure). See the module doc for what a key proves."""

    def __init__(self) -> None:
        self._facts: dict[ProbeKey, FsFacts] = {}

    def get(self, dev: BlockDevice) -> FsFacts | None:
        return self._facts.get(probe_key(dev))

    def put(self, dev: BlockDevice, facts: FsFacts) -> None:
        self._facts[probe_key(dev)] = facts

    def forget(self, devname: str) -> None:
        """Probe this device again next time (its contents changed: mkfs, a change uevent, an unmount)."""
        for key in [k for k in self._facts if k[0] == devname]:
            del self._facts[key]

    def forget_unproven(self) -> None:
        """Drop the entries without a DISKSEQ: their key cannot tell two media of one size apart."""
        for key in [k for k in self._facts if k[3] is None]:
            del self._facts[key]

    def prune(self, present: Iterable[BlockDevice]) -> None:
        """Keep only the entries of the devices (media) present."""
        keep = {probe_key(d) for d in present}
        for key in [k for k in self._facts if k not in keep]:
            del self._facts[key]

    def clear(self) -> None:
        self._facts.clear()

    def __len__(self) -> int:
        return len(self._facts)


@dataclass
class ProberStats:
    probes: int = 0
    cached: int = 0
    failures: int = 0
    seconds: float = 0.0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=32))  # devices probed, last last


class Prober:
    """The low-level probe of ``blkid -p``, cached per medium (``ProbeCache``): with libblkid in a worker
    thread (``storage.libblkid``) when the library is there and ``blkid`` is the default,
    else ``blkid -p -o export DEV`` through the ProcessManager."""

    def __init__(self, processes: ProcessManager, blkid: Sequence[str] = ("blkid",), concurrency: int = 8,
                 timeout: float = 15.0, library: bool | None = None) -> None:
        self.processes = processes
        self.blkid = tuple(blkid)
        self.timeout = timeout
        self.library = (self.blkid == ("blkid",) and libblkid.available()) if library is None else library
        self._sem = asyncio.Semaphore(concurrency)
        self.cache = ProbeCache()
        self.stats = ProberStats()

    @staticmethod
    def key(dev: BlockDevice) -> ProbeKey:
        return probe_key(dev)

    def clear(self) -> None:
        self.cache.clear()

    def forget(self, devname: str) -> None:
        self.cache.forget(devname)

    def forget_unproven(self) -> None:
        self.cache.forget_unproven()

    def prune(self, present: Iterable[BlockDevice]) -> None:
        self.cache.prune(present)

    async def probe(self, dev: BlockDevice) -> FsFacts | None:
        cached = self.cache.get(dev)
        if cached is not None:
            self.stats.cached += 1
            return cached
        if self.library:
            return await self._probe_library(dev)
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
            self.stats.recent.append(dev.devname)
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
        self.cache.put(dev, facts)
        return facts

    async def _probe_library(self, dev: BlockDevice) -> FsFacts | None:
        async with self._sem:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                code, values = await asyncio.wait_for(asyncio.to_thread(libblkid.probe, dev.devname),
                                                      self.timeout)
            except (OSError, TimeoutError) as exc:
                self.stats.failures += 1
                log.warning("blkid failed", device=dev.devname, error=str(exc) or repr(exc))
                return None
            self.stats.probes += 1
            self.stats.recent.append(dev.devname)
            self.stats.seconds += loop.time() - started
        if code == libblkid.FOUND:
            facts = facts_from_blkid(values)
        elif code == libblkid.AMBIVALENT:
            facts = FsFacts(ambivalent=True)
        else:
            facts = FsFacts()
        self.cache.put(dev, facts)
        return facts


# ---- the observer (adapter) -------------------------------------------------------------------------------
Scope = Callable[[BlockDevice], bool]
Reading = tuple[tuple[BlockDevice, ...], UdevProps, tuple[MountEntry, ...]]


@dataclass
class Observer:
    """Observes block devices (with filesystem facts) and mounts. ``scope`` limits which devices are
    considered at all (tests keep to their own loop devices). It keeps what it saw (``devices``, by
    kernel name) so that ``observe_named`` can re-read only what changed."""

    prober: Prober
    sys_root: Path = Path("/sys")
    mountinfo: Path = Path("/proc/self/mountinfo")
    udev_data: Path | None = Path("/run/udev/data")
    scope: Scope | None = None
    observations: int = field(default=0, init=False)  # full ones
    partial_observations: int = field(default=0, init=False)
    complete: bool = field(default=False, init=False)  # a full observation (with facts) filled ``devices``
    devices: dict[str, BlockDevice] = field(default_factory=dict, init=False)

    async def observe(self, probe: bool = True) -> Observed:
        """Every block device (with a medium) and the mount table."""
        devices, udev_props, mounts = await asyncio.to_thread(self._read, None)
        self.observations += 1
        devices = self._in_scope(devices)
        if probe:
            devices = await self.with_facts(devices, udev_props)
            self.prober.prune(devices)
            self.devices = {d.name: d for d in devices}
            self.complete = True
        return Observed(devices, mounts)

    async def observe_named(self, names: Iterable[str]) -> Observed:
        """Re-read only the devices ``names`` (kernel names; a disk's partitions come along) and the mount
        table; every other device is as the last observation saw it. Without an earlier full observation
        this is a full one."""
        if not self.complete:
            return await self.observe()
        wanted = set(names)
        wanted |= {n for n, d in self.devices.items() if d.disk in wanted}  # partitions seen before
        found, udev_props, mounts = await asyncio.to_thread(self._read, wanted)
        self.partial_observations += 1
        found = await self.with_facts(self._in_scope(found), udev_props)
        for name in wanted:
            self.devices.pop(name, None)
        for dev in found:
            self.devices.pop(dev.name, None)
            self.devices[dev.name] = dev
        devices = tuple(sorted(self.devices.values(), key=lambda d: d.name))
        self.prober.prune(devices)
        return Observed(devices, mounts)

    def _in_scope(self, devices: tuple[BlockDevice, ...]) -> tuple[BlockDevice, ...]:
        if self.scope is None:
            return devices
        return tuple(d for d in devices if self.scope(d))

    async def with_facts(self, devices: Sequence[BlockDevice],
                         udev_props: Mapping[str, Mapping[str, str]]) -> tuple[BlockDevice, ...]:
        """Each device with its filesystem facts: udev's, else blkid's (cached per medium). A probe made
        while the medium changed (its DISKSEQ moved on meanwhile) describes neither medium for sure: it
        is dropped (facts None: nothing is mounted from it); the change's uevent brings a new look."""
        probed: list[BlockDevice] = []

        async def one(dev: BlockDevice) -> BlockDevice:
            facts = facts_from_udev(udev_props.get(dev.devname, {}))
            if facts is None:
                if dev.diskseq is not None and self.prober.cache.get(dev) is None:
                    probed.append(dev)
                facts = await self.prober.probe(dev)
            return replace(dev, fs=facts)

        found = list(await asyncio.gather(*(one(d) for d in devices)))
        if probed:
            moved = await asyncio.to_thread(self.medium_moved_on, probed)
            for i, dev in enumerate(found):
                if dev.name in moved:
                    self.prober.forget(dev.devname)
                    found[i] = replace(dev, fs=None)
                    log.info("medium changed while it was probed; looking again at its uevent",
                             device=dev.devname, diskseq=dev.diskseq)
        return tuple(found)

    def medium_moved_on(self, devices: Sequence[BlockDevice]) -> set[str]:
        """The names of the devices whose DISKSEQ is no longer the one observed (or that are gone).
        Blocking (sysfs reads): run it in a thread."""
        base = f"{self.sys_root}/class/block"
        moved = set()
        for dev in devices:
            disk = f"{base}/{dev.disk or dev.name}"
            now = parse_uevent_file(_read(f"{disk}/uevent") or "").get("DISKSEQ") or _read(f"{disk}/diskseq")
            if now != str(dev.diskseq):
                moved.add(dev.name)
        return moved

    def _read(self, names: set[str] | None) -> Reading:
        udev_data = self.udev_data if self.udev_data is not None and self.udev_data.is_dir() else None
        if names is not None:  # with the partitions of the disks named
            base = f"{self.sys_root}/class/block"
            names = names | {p for n in names for p in partitions_of(base, n)}
        devices, props = read_block_devices(self.sys_root, udev_data, names=names)
        mounts: tuple[MountEntry, ...] = ()
        with contextlib.suppress(OSError):
            mounts = read_mountinfo(self.mountinfo)
        return devices, props, mounts
