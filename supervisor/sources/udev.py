"""udev source: device uevents as typed bus events, with loss detected and healed.

``start()`` opens a pyudev ``Monitor`` *first*, then enumerates the devices that already exist
(coldplug), so a device that appears in between is seen by the monitor (and perhaps by the
enumeration too: handlers are idempotent). Coldplug publishes one ``add`` event per existing device
(``coldplug=True``) and then a ``Resync(source="udev")``. The monitor's fd is watched with
``loop.add_reader``: no observer thread.

The monitor listens to the ``kernel`` netlink group when udevd is not running (no ``/run/udev/control``)
and to udevd's ``udev`` group when it is; kernel events carry no ``ID_FS_*`` (handlers probe with
blkid). When corral runs udevd itself (handlers/udevd.py) it tells the source which group to use with
``use()``: the monitor is reopened on the other group and the devices enumerated again (a ``Resync``),
so nothing is missed across the switch, whichever way it goes.

Its receive buffer is 32 MiB (libudev sets it with SO_RCVBUFFORCE, which needs CAP_NET_ADMIN). When
the kernel could not queue an event (ENOBUFS: the buffer overflowed) or the socket fails, the monitor
is closed, a new one is opened and the devices are enumerated again, which ends in a ``Resync`` for
the handlers.

pyudev is imported lazily, when the source starts; its contexts come from ``libudev.context()``, which
keeps pyudev from running ldconfig."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.events.udev import BlockEvent, UdevMonitorState, UEvent
from supervisor.sources import libudev
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor.sources.udev")

RCVBUF = 32 << 20
BATCH = 256  # events handled per wakeup before yielding to the loop
UDEV_RUN = Path("/run/udev")

KEEP_PREFIXES = ("ID_FS_", "ID_PART_")
KEEP_KEYS = frozenset({
    "MODALIAS", "DISKSEQ", "MAJOR", "MINOR", "PARTN", "PARTNAME", "RESIZE", "DISK_MEDIA_CHANGE",
    "ID_SERIAL", "ID_SERIAL_SHORT", "ID_WWN", "ID_MODEL", "ID_VENDOR", "ID_BUS", "ID_PATH", "ID_TYPE",
    "DEVLINKS", "DRIVER", "INTERFACE", "IFINDEX", "PRODUCT", "TYPE", "SYNTH_UUID",
})
_FIELDS = frozenset({"ACTION", "DEVPATH", "SUBSYSTEM", "DEVNAME", "DEVTYPE", "SEQNUM"})


# ---- pure parts -------------------------------------------------------------------------------------------
def udevd_running(run_dir: Path = UDEV_RUN) -> bool:
    """udevd listens on /run/udev/control while it runs (libudev's own test)."""
    return (run_dir / "control").exists()


def pick_source(requested: str | None, run_dir: Path = UDEV_RUN) -> str:
    if requested is not None:
        if requested not in ("kernel", "udev"):
            raise ValueError(f"udev source must be kernel or udev, not {requested!r}")
        return requested
    return "udev" if udevd_running(run_dir) else "kernel"


def switch_needed(current: str, is_open: bool, wanted: str) -> bool:
    """Reopen the monitor when it listens to another group than the wanted one, or is closed."""
    return wanted != current or not is_open


def keep_properties(props: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in props.items()
                        if k in KEEP_KEYS or k.startswith(KEEP_PREFIXES)))


def event_from_properties(props: Mapping[str, str], *, source: str, coldplug: bool = False,
                          received: float = 0.0) -> UEvent:
    """A UEvent (a BlockEvent for the block subsystem) from a device's properties."""
    devname = props.get("DEVNAME") or None
    if devname is not None and not devname.startswith("/"):
        devname = "/dev/" + devname
    seq = props.get("SEQNUM")
    cls = BlockEvent if props.get("SUBSYSTEM") == "block" else UEvent
    return cls(
        action="add" if coldplug else props.get("ACTION", "change"),
        subsystem=props.get("SUBSYSTEM", ""),
        devpath=props.get("DEVPATH", ""),
        devname=devname,
        devtype=props.get("DEVTYPE") or None,
        seqnum=int(seq) if seq and seq.isdigit() and not coldplug else None,
        source=source,
        coldplug=coldplug,
        properties=keep_properties(props),
        received=received,
    )


_LIBUDEV_MAGIC = 0xFEEDCAFE


def parse_uevent_message(data: bytes) -> dict[str, str]:
    """A raw uevent netlink message as properties: the kernel's (``add@/devpath`` then ``KEY=value``,
    NUL-separated) or libudev's (``libudev\\0`` header, then the properties). For recorded uevents."""
    if data.startswith(b"libudev\0"):
        (magic,) = struct.unpack_from("!I", data, 8)
        if magic != _LIBUDEV_MAGIC:
            raise ValueError("bad libudev magic")
        off, length = struct.unpack_from("=II", data, 16)
        body = data[off:off + length]
    else:
        head, _, body = data.partition(b"\0")
        if b"@" not in head:
            raise ValueError("not a uevent: no action@devpath header")
    props = {}
    for item in body.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            props[key.decode(errors="replace")] = value.decode(errors="replace")
    return props


def enumerate_devices() -> list[dict[str, str]]:
    """Every device in sysfs as its properties (with udevd, its database's too). Blocking: a thread.
    Uses its own pyudev Context (libudev contexts must not be shared between threads)."""
    return [dict(device.properties) for device in libudev.context().list_devices()]


def _rcvbuf(fd: int) -> int | None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    finally:
        sock.close()


# ---- the source --------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    received: int = 0
    coldplugs: int = 0
    coldplug_devices: int = 0
    overflows: int = 0
    errors: int = 0
    reopens: int = 0
    switches: int = 0
    last_error: str | None = None
    last_seqnum: int | None = None
    coldplug_seconds: float | None = None


ColdplugHook = Callable[[str], Awaitable[None]]


class UdevSource:
    """See the module doc. ``source`` None picks ``udev`` when udevd runs, else ``kernel``;
    ``coldplug_hook`` (tests) is awaited with ``"enumerating"`` after the monitor is open and before
    each enumeration, and with ``"enumerated"`` after it, before its events are published."""

    def __init__(self, bus: Bus, *, source: str | None = None, buffer_size: int = RCVBUF, batch: int = BATCH,
                 backoff: Backoff | None = None, run_dir: Path = UDEV_RUN,
                 coldplug_hook: ColdplugHook | None = None) -> None:
        self.bus = bus
        self.requested = source
        self.buffer_size = buffer_size
        self.batch = batch
        self.backoff = backoff or Backoff(initial=0.05, cap=5.0)
        self.run_dir = run_dir
        self.coldplug_hook = coldplug_hook
        self.source = pick_source(source, run_dir)
        self.rcvbuf: int | None = None
        self.stats = _Stats()
        self._context: Any = None
        self._monitor: Any = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recovering = False
        self._task: asyncio.Task[None] | None = None
        self._coldplug_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._switching = asyncio.Lock()
        # Set by the udevd runner: its status, shown with the source's (``corral storage status``).
        self.udevd_status: Callable[[], Mapping[str, object]] | None = None

    # ---- life cycle ----------------------------------------------------------------------------------
    async def start(self, background: bool = False) -> None:
        """Open the monitor, then coldplug. Returns once the coldplug's Resync is published, or with
        ``background`` at once, the coldplug running on (``coldplugged`` waits for it): at boot the
        state partition and the system dockerd need no coldplug (the storage observer reads sysfs
        itself), and under QEMU's TCG enumerating some 200 devices takes seconds."""
        self._loop = asyncio.get_running_loop()
        self._open()
        if background:
            self._coldplug_task = spawn_task(self._coldplug("start"), name="udev:coldplug")
        else:
            await self._coldplug("start")

    async def coldplugged(self) -> BaseException | None:
        """Wait until the first coldplug has published its events (at once when it has); what it
        failed with, if it did (the task's failure is logged where it ends)."""
        if self._coldplug_task is None:
            return None
        [outcome] = await asyncio.gather(self._coldplug_task, return_exceptions=True)
        return outcome if isinstance(outcome, BaseException) else None

    async def stop(self) -> None:
        self._stopped = True
        if self._coldplug_task is not None:
            self._coldplug_task.cancel()
            await asyncio.gather(self._coldplug_task, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._close()

    @property
    def running(self) -> bool:
        return self._monitor is not None

    async def use(self, source: str, reason: str) -> bool:
        """Listen to ``source`` (``kernel`` or ``udev``) from now on. When that changes the group, the
        monitor is reopened on it first and the devices are enumerated again (ending in a ``Resync``).
        The last call wins; returns whether this call reopened the monitor."""
        pick_source(source)  # validates
        self.requested = source
        if self._loop is None or self._stopped:
            self.source = source  # not started: start() opens on it
            return False
        async with self._switching:
            if self._recovering or self.requested != source:
                return False  # the recovery (or a later call) opens on the requested group
            if not switch_needed(self.source, self._monitor is not None, source):
                return False
            previous = self.source
            self._close()
            try:
                self._open()
            except OSError as exc:
                self._lost(f"cannot open the {source} monitor: {exc}", overflow=False)
                return False
            self.stats.switches += 1
            log.info("udev source switched", source=source, previous=previous, reason=reason)
            await self._coldplug(f"switched to {source}: {reason}")
            return True

    def _open(self) -> None:
        import pyudev

        self.source = pick_source(self.requested, self.run_dir)
        if self._context is None:
            self._context = libudev.context()
        monitor = pyudev.Monitor.from_netlink(self._context, source=self.source)
        try:
            monitor.set_receive_buffer_size(self.buffer_size)
        except OSError as exc:
            log.warning("cannot set the uevent receive buffer", size=self.buffer_size, error=str(exc))
        monitor.start()
        fd = monitor.fileno()
        assert self._loop is not None
        self._loop.add_reader(fd, self._on_readable)
        self._monitor, self._fd = monitor, fd
        self.rcvbuf = _rcvbuf(fd)
        log.info("udev monitor opened", source=self.source, rcvbuf=self.rcvbuf)
        self.bus.publish(UdevMonitorState(state="opened", source=self.source, rcvbuf=self.rcvbuf,
                                          overflows=self.stats.overflows))

    def _close(self) -> None:
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
        self._fd = None
        self._monitor = None  # pyudev unrefs the libudev monitor, which closes the socket

    # ---- receiving -----------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        monitor = self._monitor
        if monitor is None:
            return
        for _ in range(self.batch):
            try:
                device = monitor._receive_device()
            except OSError as exc:
                overflow = exc.errno == errno.ENOBUFS
                self._lost("overflow" if overflow else f"receive failed: {exc}", overflow)
                return
            if device is None:
                return
            now = time.monotonic()
            try:
                props = dict(device.properties)
            except Exception as exc:  # a malformed message: drop it, but say so
                self.stats.errors += 1
                self.stats.last_error = repr(exc)
                log.warning("bad uevent dropped", error=repr(exc))
                continue
            self.stats.received += 1
            event = event_from_properties(props, source=self.source, received=now)
            self.stats.last_seqnum = event.seqnum
            self.bus.publish(event)

    def _lost(self, reason: str, overflow: bool) -> None:
        if overflow:
            self.stats.overflows += 1
        else:
            self.stats.errors += 1
            self.stats.last_error = reason
        log.warning("udev monitor lost events; reopening", reason=reason, overflows=self.stats.overflows)
        self.bus.publish(UdevMonitorState(state="lost", source=self.source, reason=reason,
                                          overflows=self.stats.overflows))
        self._close()
        if not self._recovering and not self._stopped:
            self._recovering = True
            self._task = spawn_task(self._recover(reason), name="udev:recover")

    async def _recover(self, reason: str) -> None:
        try:
            while not self._stopped:
                delay = self.backoff.next_delay()
                if delay:
                    await asyncio.sleep(delay)
                try:
                    self._open()
                except OSError as exc:
                    log.error("cannot reopen the udev monitor", error=str(exc))
                    continue
                self.stats.reopens += 1
                await self._coldplug(reason)
                return
        finally:
            self._recovering = False
            if (not self._stopped and self._monitor is not None and self.requested is not None
                    and self.source != self.requested):  # use() was called while this ran
                self._task = spawn_task(self._switch_to(self.requested, "asked for while recovering"),
                                        name="udev:switch")

    async def _switch_to(self, source: str, reason: str) -> None:
        await self.use(source, reason)

    # ---- coldplug --------------------------------------------------------------------------------------
    async def _coldplug(self, reason: str) -> None:
        started = time.monotonic()
        if self.coldplug_hook is not None:
            await self.coldplug_hook("enumerating")
        devices = await asyncio.to_thread(enumerate_devices)
        if self.coldplug_hook is not None:
            await self.coldplug_hook("enumerated")
        now = time.monotonic()
        for props in devices:
            self.bus.publish(event_from_properties(props, source=self.source, coldplug=True, received=now))
        self.stats.coldplugs += 1
        self.stats.coldplug_devices = len(devices)
        self.stats.coldplug_seconds = round(time.monotonic() - started, 4)
        log.info("coldplug done", devices=len(devices), seconds=self.stats.coldplug_seconds, reason=reason)
        self.bus.publish(Resync(source="udev", reason=f"coldplug ({reason})"))

    def status(self) -> dict[str, object]:
        s = self.stats
        return {
            "source": self.source, "open": self._monitor is not None, "rcvbuf": self.rcvbuf,
            "received": s.received, "coldplugs": s.coldplugs, "coldplug_devices": s.coldplug_devices,
            "coldplug_seconds": s.coldplug_seconds, "overflows": s.overflows, "errors": s.errors,
            "reopens": s.reopens, "last_error": s.last_error, "last_seqnum": s.last_seqnum,
            "requested": self.requested, "switches": s.switches,
            "udevd": dict(self.udevd_status()) if self.udevd_status is not None else None,
        }
