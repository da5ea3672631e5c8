"""The devices handler: recorded uevents in, ``modprobe -b <alias>`` out, once per alias.

The only stand-in is modprobe itself: a script that appends its arguments to a file. It runs through a
real ProcessManager; the full rescan reads the real sysfs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from handlers.devices import (
    NO_MODULE,
    DevicesHandler,
    ModuleSpec,
    modprobe_argv,
    parse_modules,
    plan_aliases,
    split_by_lookup,
)
from handlers.runner import HandlerRunner
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.kmod import Lookup
from supervisor.process import ProcessManager
from supervisor.sources.udev import event_from_properties, parse_uevent_message
from tests.test_udev_events import LOOP_ATTACH, PCI_ADD, USB_IFACE_ADD

USB_ALIAS = "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
PCI_ALIAS = "pci:v00008086d00000D57sv00000000sd00000000bc06sc00i00"
# The same stick's removal, and a second identical stick on another port.
USB_IFACE_REMOVE = USB_IFACE_ADD.replace(b"add@", b"remove@").replace(b"ACTION=add", b"ACTION=remove")
USB_SECOND_ADD = USB_IFACE_ADD.replace(b"1-2", b"1-3").replace(b"SEQNUM=4711", b"SEQNUM=4720")
# The kernel ends the cpu's MODALIAS with a newline (captured on the development host).
CPU_ADD = (b"add@/devices/system/cpu/cpu0\x00ACTION=add\x00DEVPATH=/devices/system/cpu/cpu0\x00"
           b"SUBSYSTEM=cpu\x00MODALIAS=cpu:type:x86,ven0002fam0019mod0001:feature:,0000,0001\n\x00SEQNUM=9260\x00")
CPU_ALIAS = "cpu:type:x86,ven0002fam0019mod0001:feature:,0000,0001"


class FakeModprobe:
    def __init__(self, directory: Path) -> None:
        self.log = directory / "modprobe.log"
        self.path = directory / "modprobe"
        self.path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {self.log}\n'
                             'case "$*" in *missing*|*pci:*) exit 1;; esac\nexit 0\n')
        self.path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def sysfs_aliases() -> set[str]:
    """Every MODALIAS in sysfs, read independently of the handler (uevent files under /sys/devices)."""
    found: set[str] = set()
    for root, _, files in os.walk("/sys/devices"):
        if "uevent" in files:
            try:
                text = Path(root, "uevent").read_text()
            except OSError:
                continue
            found.update(line[9:] for line in text.splitlines() if line.startswith("MODALIAS="))
    return found


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Bus, DevicesHandler, FakeModprobe]]:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    fake = FakeModprobe(tmp_path)
    handler = DevicesHandler(pm, bus, modprobe=[str(fake.path)])
    yield bus, handler, fake
    handler.close()
    await pm.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


def publish(bus: Bus, *messages: bytes, coldplug: bool = False) -> None:
    for msg in messages:
        bus.publish(event_from_properties(parse_uevent_message(msg), source="kernel", coldplug=coldplug))


def test_plan_aliases_is_pure_and_ordered() -> None:
    assert plan_aliases(["b", "a", "b", " ", "c\n"], ["c"]) == ["b", "a"]
    assert plan_aliases([], []) == []


async def test_recorded_hotplug_uevents_load_each_alias_once(
        world: tuple[Bus, DevicesHandler, FakeModprobe]) -> None:
    bus, handler, fake = world
    publish(bus, USB_IFACE_ADD, LOOP_ATTACH, USB_SECOND_ADD, PCI_ADD, USB_IFACE_REMOVE, CPU_ADD)
    await handler.reconcile(full=False)
    # modprobe runs concurrently: each alias once, in no particular order
    assert sorted(fake.calls()) == sorted([f"-b -- {USB_ALIAS}", f"-b -- {PCI_ALIAS}",
                                           "-b -- cpu:type:x86,ven0002fam0019mod0001:feature:,0000,0001"])
    # replugged: nothing again, also not the alias whose modprobe failed (pci exits 1 here)
    publish(bus, USB_IFACE_REMOVE, USB_IFACE_ADD, PCI_ADD)
    await handler.reconcile(full=False)
    assert len(fake.calls()) == 3
    status = handler.status()
    assert status["aliases"] == 3 and status["loaded"] == 2 and status["failed"] == 1 and status["scans"] == 0


async def test_coldplug_events_then_hotplug_through_the_runner(
        world: tuple[Bus, DevicesHandler, FakeModprobe]) -> None:
    bus, handler, fake = world
    runner = HandlerRunner(bus, handler, Backoff(initial=0.01, cap=0.05))
    runner.start(initial_full=False)
    publish(bus, PCI_ADD, CPU_ADD, coldplug=True)
    bus.publish(Resync(source="udev", reason="coldplug (start)"))
    publish(bus, USB_IFACE_ADD, USB_SECOND_ADD)  # hotplug, coalesced with the above or not
    for _ in range(500):
        if len(fake.calls()) >= 3 and handler.status()["running"] == 0:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await runner.stop()
    assert sorted(fake.calls()) == sorted([f"-b -- {PCI_ALIAS}", f"-b -- {USB_ALIAS}",
                                           "-b -- cpu:type:x86,ven0002fam0019mod0001:feature:,0000,0001"])
    assert handler.status()["scans"] == 0  # the udev resync came with its coldplug events: no rescan


async def test_lost_events_mean_a_sysfs_rescan(world: tuple[Bus, DevicesHandler, FakeModprobe]) -> None:
    bus, handler, fake = world
    publish(bus, USB_IFACE_ADD)
    bus.publish(Resync(source="bus", reason="queue overflow: 12 events dropped"))
    before = sysfs_aliases()
    await handler.reconcile(full=True)
    after = sysfs_aliases()
    calls = fake.calls()
    # the event's own alias, once, beside the rescan (the order between them is the loop's, not fixed)
    assert calls.count(f"-b -- {USB_ALIAS}") == 1, calls[:3]
    assert before, "this host's sysfs has no MODALIAS at all"
    # Devices may come and go meanwhile (other tests' loop devices, veths): every alias present
    # throughout was scanned, and nothing that was never there.
    scanned = {c.removeprefix("-b -- ") for c in calls if c != f"-b -- {USB_ALIAS}"}
    missed = (before & after) - {USB_ALIAS} - scanned
    unknown = scanned - (before | after)
    assert not missed and not unknown, f"in sysfs throughout, not scanned: {missed}; never seen: {unknown}"
    assert len(scanned) == len(calls) - 1, sorted(calls)  # once per alias
    assert handler.status()["scans"] == 1
    await handler.reconcile(full=True)  # again: every alias was tried already
    assert len(fake.calls()) == len(calls)


async def test_corral_modules_at_boot(world: tuple[Bus, DevicesHandler, FakeModprobe]) -> None:
    _, handler, fake = world
    specs, errors = parse_modules(["loop", "bonding mode=1 miimon=100", "missing_mod"])
    assert errors == []
    assert specs[1] == ModuleSpec("bonding", ("mode=1", "miimon=100"))
    results = await handler.load_modules(specs)
    assert results == {"loop": 0, "bonding": 0, "missing_mod": 1}
    assert fake.calls() == ["-- loop", "-- bonding mode=1 miimon=100", "-- missing_mod"]
    assert handler.status()["modules"] == {"loop": 0, "bonding": 0, "missing_mod": 1}


def test_parse_modules_errors_name_the_key() -> None:
    assert parse_modules(None) == ([], [])
    assert parse_modules("loop")[1] == ["corral.modules: expected a list, got str"]
    _, errors = parse_modules(["ok", 3, "", "-r", "../x"])
    assert errors == ["corral.modules[1]: expected a module name, got 3",
                      "corral.modules[2]: expected a module name, got ''",
                      "corral.modules[3]: '-r' is not a module name (letters, digits, '_', '-', '.', ':', "
                      "'+'; not starting with '-')",
                      "corral.modules[4]: '../x' is not a module name (letters, digits, '_', '-', '.', ':', "
                      "'+'; not starting with '-')"]


def test_no_config_value_becomes_a_modprobe_option() -> None:
    """getopt_long permutes: ``modprobe loop --config=/x`` reads /x. Parameters that look like options
    are refused, naming the entry; names and aliases are checked the same way."""
    specs, errors = parse_modules(["loop max_loop=8 --config=/etc/evil", "bonding -r", "nbd nbds_max=4",
                                   "fs-ext4", "char-major-10-200", "x\x00y", "loop a=\x1b[31m",
                                   "loop " + "a" * 5000])
    assert specs == [ModuleSpec("nbd", ("nbds_max=4",)), ModuleSpec("fs-ext4"),
                     ModuleSpec("char-major-10-200")]
    assert errors[0].startswith("corral.modules[0]: '--config=/etc/evil' is not a module parameter")
    assert errors[1].startswith("corral.modules[1]: '-r' is not a module parameter")
    assert errors[2].startswith("corral.modules[5]: 'x\\x00y' is not a module name")
    assert errors[3].startswith("corral.modules[6]: 'a=\\x1b[31m' is not a module parameter")
    assert errors[4] == "corral.modules[7]: longer than 4096 characters"
    assert len(errors) == 5


def test_modprobe_argv_ends_the_options_before_the_name() -> None:
    assert modprobe_argv(("modprobe",), "loop", ("max_loop=8",)) == ["modprobe", "--", "loop", "max_loop=8"]
    assert modprobe_argv(("modprobe", "--dry-run"), "-x", options=("-b",)) == [
        "modprobe", "--dry-run", "-b", "--", "-x"]


# ---- libkmod lookups: modprobe only for aliases that resolve to a module not in the kernel --------------
def test_split_by_lookup_is_pure() -> None:
    found = {"none": Lookup((), False), "builtin": Lookup(("button",), True),
             "module": Lookup(("virtio_net",), False)}
    spawn, settled = split_by_lookup(["none", "builtin", "module", "unlooked"], found)
    assert spawn == ["module", "unlooked"]  # a failed lookup: modprobe decides
    assert settled["none"].returncode == 1 and settled["none"].error == NO_MODULE
    assert settled["builtin"].returncode == 0
    assert split_by_lookup(["a", "b"], None) == (["a", "b"], {})  # no libkmod: modprobe for each


async def test_aliases_without_a_module_spawn_no_modprobe(tmp_path: Path) -> None:
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(asyncio.get_running_loop())
    fake = FakeModprobe(tmp_path)
    looked: list[list[str]] = []

    def resolve(aliases: Sequence[str]) -> dict[str, Lookup]:
        looked.append(list(aliases))
        return {USB_ALIAS: Lookup(("usb_storage",), False), PCI_ALIAS: Lookup((), False),
                CPU_ALIAS: Lookup(("kvm_amd",), True)}

    handler = DevicesHandler(pm, bus, modprobe=[str(fake.path)], resolve=resolve)
    try:
        publish(bus, USB_IFACE_ADD, PCI_ADD, CPU_ADD)
        await handler.reconcile(full=False)
        assert fake.calls() == [f"-b -- {USB_ALIAS}"]  # the only alias with a module not loaded
        assert sorted(looked[0]) == sorted([USB_ALIAS, PCI_ALIAS, CPU_ALIAS])
        status = handler.status()
        assert status["aliases"] == 3 and status["loaded"] == 2 and status["failed"] == 1
    finally:
        handler.close()
        await pm.stop_all(1.0)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)
