"""ACPI events: the kernel's acpi_event messages decoded by pyroute2, and the power button -> poweroff."""

from __future__ import annotations

import asyncio
import struct

from pyroute2.netlink.event.acpi_event import MarshalAcpiEvent

from supervisor.bus import Bus
from supervisor.sources.acpi import AcpiEvent, act_on_power_events, event_from_message, power_action


def acpi_message(device_class: bytes, bus_id: bytes, family: int = 27) -> bytes:
    """What the kernel's acpi_bus_generate_netlink_event() sends: nlmsghdr, genlmsghdr, one attribute."""
    payload = struct.pack("20s15sxII", device_class, bus_id, 0x80, 1)  # struct acpi_genl_event
    attr = struct.pack("HH", 4 + len(payload), 1) + payload
    genl = struct.pack("BBH", 1, 1, 0)  # ACPI_GENL_CMD_EVENT, version 1
    body = genl + attr
    return struct.pack("IHHII", 16 + len(body), family, 0, 0, 0) + body


def test_a_power_button_message_as_the_kernel_sends_it_decodes_to_an_event() -> None:
    marshal = MarshalAcpiEvent()
    marshal.msg_map[27] = marshal.msg_map[1]  # the family id the kernel assigned at boot
    (msg,) = marshal.parse(acpi_message(b"button/power", b"LNXPWRBN:00"))
    event = event_from_message(msg)
    assert event is not None
    assert (event.device_class, event.bus_id) == ("button/power", "LNXPWRBN:00")
    assert power_action(event) == "poweroff"


def test_only_the_power_button_powers_off() -> None:
    assert power_action(AcpiEvent(device_class="button/power", bus_id="PNP0C0C:00")) == "poweroff"
    assert power_action(AcpiEvent(device_class="button/sleep", bus_id="PNP0C0E:00")) is None
    assert power_action(AcpiEvent(device_class="button/lid", bus_id="PNP0C0D:00")) is None
    assert power_action(AcpiEvent(device_class="ac_adapter", bus_id="ACPI0003:00")) is None
    assert event_from_message({"header": {}}) is None


async def test_a_press_on_the_bus_requests_poweroff_once_per_press() -> None:
    bus = Bus()
    asked: list[str] = []
    task = asyncio.ensure_future(act_on_power_events(bus, asked.append))
    await asyncio.sleep(0)
    bus.publish(AcpiEvent(device_class="button/sleep", bus_id="PNP0C0E:00"))
    bus.publish(AcpiEvent(device_class="button/power", bus_id="LNXPWRBN:00"))
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert asked == ["poweroff"]
