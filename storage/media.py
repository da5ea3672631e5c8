"""Labelled media for the disk datasources (NoCloud's ``cidata``, ConfigDrive's ``config-2``): the block
device found by its filesystem label, mounted read-only on a private mount point, the files wanted read
with the bounds of any config file, unmounted. The config datasources (supervisor/config/datasources.py)
call ``LabelledMedia.read`` on the config worker thread: everything here blocks, and nothing spawns a
process (labels come from udev's database or libblkid, mounting is mount(2)).

A medium read is kept for the life of PID 1 (cloud-init reads its datasource once per boot too): a reload
or ``config set`` reads the kept files, not the disk. A label not found is looked for again at each load.

Boot reads the config before the devices phase loads the disk drivers: ``read`` then answers ``pending``
for a label it cannot find, and the ``datasources`` phase calls ``start_waiting(seconds)`` and loads the
config again, which waits up to that long (once per boot) for the labelled device to appear."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from storage import libblkid
from storage.observe import (
    BlockDevice,
    FsFacts,
    ProbeKey,
    facts_from_blkid,
    facts_from_udev,
    probe_key,
    read_block_devices,
)
from storage.rules import MS_RDONLY
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.fetched import MediumRead
from supervisor.config.yamlload import read_config_file
from supervisor.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount_raw, umount

POLL = 0.25
"""Seconds between two looks at the block devices while waiting for a label."""

Probe = Callable[[str], tuple[int, dict[str, str]]]
Mounter = Callable[[str, Path, str], None]


def _mount_ro(device: str, target: Path, fstype: str) -> None:
    mount_raw(device, target, fstype, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


class LabelledMedia:
    """Finds, mounts and reads labelled media (a ``MediaReader``). ``mount_dir`` holds the private mount
    points (mode 0700); the other arguments are for tests."""

    def __init__(self, mount_dir: Path, *, sys_root: Path = Path("/sys"),
                 udev_data: Path | None = Path("/run/udev/data"), probe: Probe = libblkid.probe,
                 mount: Mounter = _mount_ro, unmount: Callable[[Path], None] = umount,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.mount_dir = mount_dir
        self.sys_root = sys_root
        self.udev_data = udev_data
        self._probe = probe
        self._mount = mount
        self._unmount = unmount
        self._sleep = sleep
        self._wait: float | None = None  # None: boot has not said how long to wait yet
        self._waited = False
        self._pending = False
        self._facts: dict[ProbeKey, FsFacts | None] = {}
        self._read: dict[tuple[tuple[str, ...], tuple[str, ...]], MediumRead] = {}

    def start_waiting(self, seconds: float) -> bool:
        """From now on a label not found is waited for, up to ``seconds`` once, then reported missing.
        True when a read answered ``pending`` (boot should load the config again)."""
        self._wait = max(0.0, seconds)
        return self._pending

    def read(self, labels: Sequence[str], names: Sequence[str]) -> MediumRead:
        key = (tuple(labels), tuple(names))
        if key in self._read:
            return self._read[key]
        if self._wait is None:
            found = self.find(labels)
            if found is None:
                self._pending = True
                return MediumRead(pending=True)
        else:
            wait = 0.0 if self._waited else self._wait
            self._waited = True
            found = self.find(labels, wait)
            if found is None:
                return MediumRead(problem=f"no device labelled {' or '.join(labels)}"
                                  + (f" after waiting {wait:g} s" if wait else ""))
        result = self.read_medium(found, names)
        self._read[key] = result
        return result

    # ---- finding --------------------------------------------------------------------------------------
    def find(self, labels: Sequence[str], wait: float = 0.0) -> tuple[BlockDevice, FsFacts] | None:
        """The first block device (by kernel name) whose filesystem label is one of ``labels``, looking
        again every ``POLL`` seconds for up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            found = self._scan(labels)
            if found is not None or time.monotonic() >= deadline:
                return found
            self._sleep(POLL)

    def _scan(self, labels: Sequence[str]) -> tuple[BlockDevice, FsFacts] | None:
        devices, udev_props = read_block_devices(self.sys_root, self.udev_data)
        for dev in devices:
            facts = self._facts_of(dev, udev_props.get(dev.devname))
            if facts is not None and facts.type and facts.label in labels:
                return dev, facts
        return None

    def _facts_of(self, dev: BlockDevice, props: dict[str, str] | None) -> FsFacts | None:
        facts = facts_from_udev(props) if props else None
        if facts is not None:
            return facts
        key = probe_key(dev)
        if key not in self._facts:  # each medium probed once (its key changes with the medium)
            try:
                status, values = self._probe(dev.devname)
            except OSError:
                self._facts[key] = None  # gone, or no medium: not this one
            else:
                self._facts[key] = facts_from_blkid(values) if status == libblkid.FOUND else FsFacts()
        return self._facts[key]

    # ---- reading --------------------------------------------------------------------------------------
    def read_medium(self, found: tuple[BlockDevice, FsFacts], names: Sequence[str]) -> MediumRead:
        """Mount the device read-only, read ``names`` (missing ones are left out), unmount."""
        dev, facts = found
        fstype, label = facts.type or "auto", facts.label
        target = self.mount_dir / dev.name
        try:
            self.mount_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.mount_dir, 0o700)
            target.mkdir(mode=0o700, exist_ok=True)
            self._mount(dev.devname, target, fstype)
        except OSError as exc:
            with contextlib.suppress(OSError):
                target.rmdir()
            return MediumRead(device=dev.devname, label=label, fstype=fstype,
                              problem=f"cannot mount {fstype}: {exc.strerror or exc}")
        files: dict[str, str] = {}
        errors: list[ConfigError] = []
        try:
            for name in names:
                source = f"{dev.devname}:{name}"
                try:
                    text, errs = read_config_file(target / name, source)
                except FileNotFoundError:
                    continue
                errors.extend(errs)
                if text is not None:
                    files[name] = text
        finally:
            try:
                self._unmount(target)
                target.rmdir()
            except OSError as exc:  # a medium held mounted is harmless (read-only); say so
                why = f"cannot unmount {target}: {exc.strerror or exc}"
                errors.append(ConfigError(dev.devname, DOCUMENT, why))
        return MediumRead(device=dev.devname, label=label, fstype=fstype, files=files, errors=errors)
