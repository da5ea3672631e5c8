"""Bus events of the udev source and of the storage handler.

Like every event they are hints: a handler that receives one observes current state (sysfs,
``/proc/self/mountinfo``, blkid) before acting. A ``Resync`` whose ``source`` is ``udev`` follows the
source's start (coldplug) and every reopen of its monitor (receive-buffer overflow or an error): events
may have been lost, observe everything again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from supervisor.events import Event

Properties = tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class UEvent(Event):
    """A device uevent (any subsystem). Block devices come as the subclass ``BlockEvent``.

    ``source`` is ``kernel`` (straight from the kernel: no udevd runs, so no ``ID_FS_*``) or ``udev``
    (udevd's processed event). ``coldplug`` events were not received but enumerated from sysfs when
    the monitor was (re)opened; their ``action`` is ``add`` and ``seqnum`` is None. ``properties`` is
    the subset of the uevent's environment that handlers use (``ID_FS_*``, ``MODALIAS``, ``ID_SERIAL``,
    ``DISKSEQ``...); ``received`` is the ``time.monotonic()`` of reception (for latency figures)."""

    kind: ClassVar[str] = "udev.event"
    action: str  # add | remove | change | move | bind | unbind | online | offline
    subsystem: str
    devpath: str
    devname: str | None = None  # /dev/... when the device has a node
    devtype: str | None = None  # disk | partition | usb_device ...
    seqnum: int | None = None
    source: str = "kernel"
    coldplug: bool = False
    properties: Properties = ()
    received: float = 0.0

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.properties:
            if k == key:
                return v
        return default

    @property
    def props(self) -> dict[str, str]:
        return dict(self.properties)

    @property
    def modalias(self) -> str | None:
        return self.get("MODALIAS")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["properties"] = dict(self.properties)
        return data


@dataclass(frozen=True, kw_only=True)
class BlockEvent(UEvent):
    """A uevent of the ``block`` subsystem: disks and partitions (the storage handler's input)."""

    kind: ClassVar[str] = "udev.block"


@dataclass(frozen=True, kw_only=True)
class UdevMonitorState(Event):
    """The udev source's monitor: ``opened`` (``rcvbuf`` is the receive buffer the kernel granted) or
    ``lost`` (``reason``: overflow, or the error); a ``lost`` is followed by a reopen and a coldplug."""

    kind: ClassVar[str] = "udev.monitor"
    state: str  # opened | lost
    source: str  # kernel | udev
    reason: str = ""
    rcvbuf: int | None = None
    overflows: int = 0


@dataclass(frozen=True, kw_only=True)
class MountChanged(Event):
    """The storage handler mounted or unmounted ``path`` (or failed to mount it).

    ``state``: ``mounted``, ``unmounted`` (``reason`` says why: device removed, medium changed, rule
    removed, unmounted by someone else) or ``failed`` (``reason`` has the error; it is not retried
    until the device or the rule changes). ``on_remove`` is the rule's wish for the units that use the
    path when its device goes away: ``stop`` them, or ``ignore``."""

    kind: ClassVar[str] = "storage.mount"
    path: str
    state: str  # mounted | unmounted | failed
    device: str | None
    fstype: str | None = None
    rule: str | None = None  # the rule's key path: mounts[0], corral.state
    reason: str = ""
    on_remove: str = "stop"
    seconds: float | None = None  # how long the mount (with fsck) or unmount took


@dataclass(frozen=True, kw_only=True)
class StateStorage(Event):
    """The outcome of looking for the state partition: ``found`` / ``formatted`` (mounted at
    ``path``), ``ram`` (running from RAM: nothing persists) or ``emergency`` (``required`` and missing)."""

    kind: ClassVar[str] = "storage.state"
    outcome: str
    device: str | None = None
    path: str | None = None
    reason: str = ""
    seconds: float | None = None
