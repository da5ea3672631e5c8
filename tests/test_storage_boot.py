"""The boot wiring (supervisor/boot/storage.py) on a real Supervisor object: the devices phase (modules,
udev source, coldplug) and the state phase (no state device here: RAM), with a recording modprobe."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from storage.observe import Observer, Prober
from supervisor.app import Options, Supervisor
from supervisor.boot.storage import StorageServices, start_devices, start_storage
from supervisor.cli.storage import render
from supervisor.journal import Journal
from supervisor.paths import Paths
from tests.test_udev_devices import FakeModprobe, sysfs_aliases

CONFIG = """#cloud-config
corral:
  modules: [loop, "bonding mode=1"]
mounts:
  - [LABEL=NO_SUCH_LABEL_HERE, /mnt/never]
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the udev monitor's 32 MiB buffer needs root")
async def test_boot_phases_wire_the_handlers(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text(CONFIG)
    # Built as PID 1 builds it, before its loop runs (the config store reads the schema from disk).
    sup = await asyncio.to_thread(Supervisor, Options(paths=paths, sandbox=True, cmdline=""), Journal())
    loop = asyncio.get_running_loop()
    sup.processes.attach(loop)
    try:
        await asyncio.to_thread(sup.config.load)
        fake = FakeModprobe(tmp_path)
        services = StorageServices()
        await start_devices(sup.ctx, services, modprobe=(str(fake.path),))
        observer = Observer(Prober(sup.processes), scope=lambda d: False)  # no host disk is looked at
        assert not await start_storage(sup.ctx, services, target=tmp_path / "state", observer=observer)
        assert set(sup.runners.by_name) >= {"devices", "storage"}
        for _ in range(500):
            status = services.status()
            if status["devices"]["running"] == 0 and len(fake.calls()) >= 2 + len(sysfs_aliases()):
                break
            await asyncio.sleep(0.01)
        calls = fake.calls()
        assert calls[:2] == ["-- loop", "-- bonding mode=1"]
        scanned = {c.removeprefix("-b -- ") for c in calls[2:]}
        now = sysfs_aliases()  # devices may have come or gone since coldplug (other tests' loops)
        assert len(scanned) == len(calls) - 2 and len(scanned ^ now) <= 8
        assert status["state"]["outcome"] == "ram"
        assert status["udev"]["open"] and status["udev"]["coldplugs"] == 1
        # In the sandbox, rule paths live under its directory.
        assert [r["path"] for r in status["storage"]["rules"]] == [str(tmp_path / "mnt/never")]
        assert "running from RAM" in render(status)
    finally:
        await sup.runners.stop_all()
        await sup.stops.stop_all()
        await sup.processes.stop_all(1.0)
        loop.remove_signal_handler(signal.SIGCHLD)
