"""supervisor/watchdog.py: a trial boot's watchdog, opened as PID 1's first act and handed over to the
slots phase (supervisor/boot/slots.py). The host has no /dev/watchdog to spare (and the tests share its
kernel): the device is a plain file here, so what PID 1 writes to it is read back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from osdisk import bootdisk, bootmenu
from supervisor import watchdog
from supervisor.boot.slots import BootSlots

TRIAL_CMDLINE = "corral.slot=B corral.trial=1 console=tty0 console=ttyS0,115200 panic=10\n"


@pytest.fixture(autouse=True)
def _no_early_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watchdog, "_early", [])
    monkeypatch.setattr(watchdog, "PET_INTERVAL", 0.01)


def _loader(calls: list[str]) -> Callable[[], str]:
    def load() -> str:
        calls.append("softdog")
        return ""
    return load


def _cmdline(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cmdline"
    path.write_text(text)
    return path


def _device(tmp_path: Path) -> Path:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    return path


def test_the_marker_is_a_word_of_its_own() -> None:
    assert watchdog.trial_marked(TRIAL_CMDLINE)
    assert watchdog.trial_marked(bootmenu.kernel_append("A", trial=bootmenu.TRIAL_MARKER))
    for other in ("", "corral.slot=B panic=10", "corral.trial=0", "corral.trial=10", "xcorral.trial=1",
                  "corral.trial", bootmenu.kernel_append("A")):
        assert not watchdog.trial_marked(other), other


def test_no_marker_no_watchdog(tmp_path: Path) -> None:
    loads: list[str] = []
    dog = watchdog.early(time.monotonic(), _cmdline(tmp_path, "corral.slot=A panic=10"), _device(tmp_path),
                         load=_loader(loads))
    assert dog is None and loads == []
    assert (tmp_path / "watchdog").read_bytes() == b""
    assert not watchdog.adopt().is_open  # nothing to hand over: a new, closed one
    assert watchdog.early(0.0, tmp_path / "absent", _device(tmp_path)) is None


def test_a_trial_boot_opens_it_at_once_with_a_deadline_and_hands_it_over_once(tmp_path: Path) -> None:
    loads: list[str] = []
    started = time.monotonic()
    dog = watchdog.early(started, _cmdline(tmp_path, TRIAL_CMDLINE), _device(tmp_path),
                         load=_loader(loads))
    assert dog is not None and dog.is_open and loads == ["softdog"]
    assert (tmp_path / "watchdog").read_bytes() == b"k"  # petted at once, before any loop runs
    assert dog.deadline == started + watchdog.EARLY_LIMIT
    assert watchdog.adopt() is dog
    assert watchdog.adopt() is not dog  # handed over once
    dog.disarm()
    assert (tmp_path / "watchdog").read_bytes() == b"kV" and not dog.is_open


def test_a_trial_boot_without_a_device_says_why_once_the_loop_runs(tmp_path: Path) -> None:
    dog = watchdog.early(time.monotonic(), _cmdline(tmp_path, TRIAL_CMDLINE), tmp_path / "none",
                         load=lambda: "softdog: No such file or directory")
    assert dog is not None and not dog.is_open
    assert any("softdog not loaded: softdog: No such file" in n for n in dog.notes)
    assert any("will not reboot" in n for n in dog.notes)

    async def run() -> None:
        dog.start()
        assert dog.task is None  # nothing to pet

    asyncio.run(run())
    assert dog.notes == []


def _deadline(dog: watchdog.Watchdog) -> float | None:
    return dog.deadline


def _pets(path: Path) -> int:
    return path.read_bytes().count(b"k")


async def _petted(path: Path, count: int) -> None:
    """Until ``path`` holds ``count`` pets (the test's timeout ends it otherwise)."""
    for _ in range(100_000):
        if _pets(path) >= count:
            return
        await asyncio.sleep(0.01)


def test_the_loop_pets_until_the_deadline_then_stops(tmp_path: Path) -> None:
    device = _device(tmp_path)
    dog = watchdog.early(time.monotonic(), _cmdline(tmp_path, TRIAL_CMDLINE), device, load=lambda: "")
    assert dog is not None

    async def run() -> None:
        dog.start()
        await _petted(device, 4)
        dog.deadline = time.monotonic() - 1  # the slots phase never came
        await asyncio.sleep(0.05)
        stopped = _pets(device)
        await asyncio.sleep(0.1)
        assert _pets(device) == stopped  # no pets after the deadline: the softdog reboots
        assert dog.is_open  # open, not closed with 'V'
        dog.disarm()

    asyncio.run(run())
    assert device.read_bytes().endswith(b"V")


def test_arm_takes_the_early_watchdog_over_without_loading_anything(tmp_path: Path) -> None:
    device = _device(tmp_path)
    dog = watchdog.early(time.monotonic(), _cmdline(tmp_path, TRIAL_CMDLINE), device, load=lambda: "")
    assert dog is not None
    probes: list[str] = []

    async def modprobe() -> str:
        probes.append("modprobe")
        return ""

    async def run() -> None:
        dog.start()
        task = dog.task
        dog.deadline = time.monotonic() - 1  # past: only the hand-over keeps the pets going
        await dog.arm(modprobe)
        assert dog.task is task and _deadline(dog) is None  # the same pets, no limit of their own any more
        before = _pets(device)
        await _petted(device, before + 3)
        dog.disarm()

    asyncio.run(run())
    assert probes == []


def test_arm_opens_it_when_the_early_step_did_not(tmp_path: Path) -> None:
    device = _device(tmp_path)
    dog = watchdog.Watchdog(device)

    async def modprobe() -> str:
        return ""

    async def run() -> None:
        await dog.arm(modprobe)
        assert dog.is_open and dog.task is not None
        await _petted(device, 2)
        dog.disarm()

    asyncio.run(run())


def _ctx(tmp_path: Path) -> Any:
    """What BootSlots uses of the boot context; not the sandbox (the device is a plain file)."""
    stops: list[str] = []
    return SimpleNamespace(
        paths=SimpleNamespace(state_dir=tmp_path / "state", log_dir=tmp_path / "log"),
        sandbox=False, journal=SimpleNamespace(boot_id="b00t"), setting=lambda key, default: default,
        stops=SimpleNamespace(add=lambda name, fn: stops.append(name)), degrade=lambda s, r: None,
        processes=None)


def _slots(tmp_path: Path, cmdline: str, env: dict[str, str | None]) -> tuple[BootSlots, Path]:
    location = bootdisk.Location.directories(tmp_path / "osdisk")
    (tmp_path / "osdisk/esp/grub").mkdir(parents=True)
    bootdisk.update_env(location, env)
    device = _device(tmp_path)
    dog = watchdog.early(time.monotonic(), _cmdline(tmp_path, cmdline), device, load=lambda: "")
    assert dog is not None
    slots = BootSlots(cast(Any, _ctx(tmp_path)), cmdline, lambda action: None, time.monotonic(),
                      location=location)
    assert slots.watchdog is dog  # adopted: the one PID 1 opened first
    return slots, device


def test_the_slots_phase_of_a_trial_keeps_the_early_watchdog_open(tmp_path: Path) -> None:
    slots, device = _slots(tmp_path, TRIAL_CMDLINE, {"default_slot": "A", "trial_pending": "B",
                                                     "trial_version": "2.0"})

    async def run() -> None:
        slots.watchdog.start()
        await slots.start()
        assert slots.trial == "pending" and slots.watchdog.is_open and slots.watchdog.deadline is None
        slots.cancel_trial()  # os rollback during the trial: closed with 'V'

    asyncio.run(run())
    assert device.read_bytes().endswith(b"V") and not slots.watchdog.is_open


def test_the_slots_phase_of_a_boot_that_is_no_trial_closes_it(tmp_path: Path) -> None:
    slots, device = _slots(tmp_path, TRIAL_CMDLINE, {"default_slot": "B"})

    async def run() -> None:
        slots.watchdog.start()
        await slots.start()

    asyncio.run(run())
    assert slots.trial == "" and not slots.watchdog.is_open
    assert device.read_bytes().endswith(b"V")


def test_libkmod_insert_says_why_a_module_cannot_be_loaded() -> None:
    from supervisor import kmod

    why = kmod.insert("corral_no_such_module")  # nothing is loaded: no such module exists
    assert why in {"libkmod cannot be loaded", "libkmod: no context"} or \
        why.startswith("corral_no_such_module: "), why
