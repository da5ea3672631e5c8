"""udev source, pure parts: recorded uevent messages -> typed events."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from supervisor.events.udev import BlockEvent, UEvent
from supervisor.sources.udev import event_from_properties, parse_uevent_message, pick_source

# Captured on the development host (kernel 6.18, no udevd) with a NETLINK_KOBJECT_UEVENT socket.
LOOP_ATTACH = (b"change@/devices/virtual/block/loop0\x00ACTION=change\x00"
               b"DEVPATH=/devices/virtual/block/loop0\x00SUBSYSTEM=block\x00MAJOR=7\x00MINOR=0\x00DEVNAME=loop0\x00DEVTYPE=disk\x00DISKSEQ=596\x00"
               b"SEQNUM=5201\x00")
PCI_ADD = (b"add@/devices/pci0000:00/0000:00:00.0\x00ACTION=add\x00"
           b"DEVPATH=/devices/pci0000:00/0000:00:00.0\x00SUBSYSTEM=pci\x00SYNTH_UUID=0\x00PCI_CLASS=60000\x00PCI_ID=8086:0D57\x00PCI_SUBSYS_ID=0000:0000\x00"
           b"PCI_SLOT_NAME=0000:00:00.0\x00MODALIAS=pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00\x00"
           b"SEQNUM=9262\x00")
# A USB stick plugged into a laptop (the interface's add), as the kernel sends it.
USB_IFACE_ADD = (b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0\x00ACTION=add\x00"
                 b"DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0\x00SUBSYSTEM=usb\x00"
                 b"DEVTYPE=usb_interface\x00PRODUCT=781/5567/100\x00TYPE=0/0/0\x00INTERFACE=8/6/80\x00"
                 b"MODALIAS=usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00\x00SEQNUM=4711\x00")


def libudev_message(props: dict[str, str]) -> bytes:
    """udevd's netlink format: "libudev\\0", magic (big-endian), header size, properties offset/length."""
    body = b"".join(f"{k}={v}".encode() + b"\x00" for k, v in props.items())
    header_size = 40
    sizes = struct.pack("=IIIIIII", header_size, header_size, len(body), 0, 0, 0, 0)
    header = b"libudev\x00" + struct.pack("!I", 0xFEEDCAFE) + sizes
    return header + body


def test_kernel_message_parsed_into_a_block_event() -> None:
    props = parse_uevent_message(LOOP_ATTACH)
    assert props["ACTION"] == "change" and props["DISKSEQ"] == "596"
    event = event_from_properties(props, source="kernel", received=12.5)
    assert isinstance(event, BlockEvent)
    assert (event.action, event.subsystem, event.devname, event.devtype, event.seqnum) == (
        "change", "block", "/dev/loop0", "disk", 5201)
    assert event.devpath == "/devices/virtual/block/loop0" and event.received == 12.5
    assert event.props == {"DISKSEQ": "596", "MAJOR": "7", "MINOR": "0"}  # the kept subset
    assert event.kind == "udev.block" and not event.coldplug


def test_modalias_events_are_plain_uevents() -> None:
    event = event_from_properties(parse_uevent_message(PCI_ADD), source="kernel")
    assert type(event) is UEvent and event.action == "add" and event.subsystem == "pci"
    assert event.modalias == "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00"
    assert event.get("PCI_ID") is None  # not in the kept subset
    usb = event_from_properties(parse_uevent_message(USB_IFACE_ADD), source="kernel")
    assert usb.modalias == "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
    assert usb.devtype == "usb_interface" and usb.get("INTERFACE") == "8/6/80" and usb.devname is None


def test_libudev_message_keeps_udev_properties() -> None:
    msg = libudev_message({"ACTION": "add", "DEVPATH": "/devices/virtual/block/loop3", "SUBSYSTEM": "block",
                           "DEVNAME": "/dev/loop3", "DEVTYPE": "disk", "SEQNUM": "77", "ID_FS_TYPE": "ext4",
                           "ID_FS_LABEL": "DATA", "ID_FS_UUID": "1-2", "ID_SERIAL": "QEMU_HARDDISK_1",
                           "USEC_INITIALIZED": "123"})
    event = event_from_properties(parse_uevent_message(msg), source="udev")
    assert isinstance(event, BlockEvent) and event.source == "udev" and event.devname == "/dev/loop3"
    assert event.props == {"ID_FS_TYPE": "ext4", "ID_FS_LABEL": "DATA", "ID_FS_UUID": "1-2",
                           "ID_SERIAL": "QEMU_HARDDISK_1"}
    assert event.to_dict()["properties"]["ID_FS_LABEL"] == "DATA"


def test_coldplug_events_are_adds_without_seqnum() -> None:
    props = {"DEVPATH": "/devices/virtual/block/loop1", "SUBSYSTEM": "block", "DEVNAME": "/dev/loop1",
             "SEQNUM": "5"}
    event = event_from_properties(props, source="kernel", coldplug=True)
    assert event.action == "add" and event.coldplug and event.seqnum is None


def test_bad_messages_are_rejected() -> None:
    with pytest.raises(ValueError, match="not a uevent"):
        parse_uevent_message(b"hello\x00A=1\x00")
    with pytest.raises(ValueError, match="magic"):
        parse_uevent_message(b"libudev\x00" + bytes(32))


def test_source_kind_follows_udevd(tmp_path: Path) -> None:
    assert pick_source(None, tmp_path) == "kernel"
    (tmp_path / "control").touch()
    assert pick_source(None, tmp_path) == "udev"
    assert pick_source("kernel", tmp_path) == "kernel"
    with pytest.raises(ValueError):
        pick_source("netlink", tmp_path)
