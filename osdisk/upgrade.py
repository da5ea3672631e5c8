"""``corral os upgrade --image FILE|URL``: a new version into the inactive slot, then the next boot once
(docs/install.md).

1. get the bundle: a bundle tar (``corral-upgrade.tar``) or a bundle directory, from a file, or a tar by
   http(s) (streamed to the staging directory on the state partition, at most ``MAX_DOWNLOAD`` bytes,
   a timeout on each read);
2. verify it: its signature when ``corral.upgrade.trusted_keys`` is set (unsigned is refused then),
   every file's sha256 and size against its manifest. Nothing has touched the disk yet;
3. write it whole into the slot that is not running (``corral.slot=`` on this boot's command line;
   osdisk/disk.py ``write_slot``);
4. make that slot the next boot, once (osdisk/bootdisk.py ``set_next_once``): the boot selection makes
   it the default only when that boot is good.

A power cut before step 4 leaves the default slot as it was; the slot half written is never selected."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from osdisk import bootdisk, bundle, disk, layout, selection

STAGING_PARENT = Path("/var/lib/corral")  # the state partition: room for a 100 MiB bundle, unlike /run
MAX_DOWNLOAD = 2 * bundle.MAX_PAYLOAD + (1 << 20)
READ_TIMEOUT = 60.0
CHUNK = 1 << 20

Progress = Callable[[str, str], None]


class UpgradeError(RuntimeError):
    pass


@dataclass
class UpgradeReport:
    source: str
    version: str = ""
    slot: str = ""
    running_slot: str = ""
    signed: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "version": self.version, "slot": self.slot,
                "running_slot": self.running_slot, "signed": self.signed, "next_boot_once": self.slot,
                "steps": self.steps}


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def download(url: str, dest: Path, limit: int = MAX_DOWNLOAD, timeout: float = READ_TIMEOUT) -> None:
    """Stream ``url`` into ``dest``: at most ``limit`` bytes, ``timeout`` seconds per read."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = 0
            while chunk := response.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise UpgradeError(f"{url}: larger than {limit} bytes: not a bundle")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise UpgradeError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise UpgradeError(f"{url}: {reason}") from None


@contextlib.contextmanager
def staged(source: str, staging_parent: Path = STAGING_PARENT) -> Iterator[bundle.Bundle]:
    """The bundle ``source`` names, unpacked (a tar) into a staging directory removed afterwards, or read
    where it is (a directory)."""
    if not is_url(source) and Path(source).is_dir():
        yield bundle.read(Path(source))
        return
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".upgrade-", dir=staging_parent))
    try:
        archive = Path(source)
        if is_url(source):
            archive = staging / "download.tar"
            download(source, archive)
        elif not archive.is_file():
            raise UpgradeError(f"{source}: no such file")
        unpacked = staging / "bundle"
        unpacked.mkdir()
        yield bundle.unpack(archive, unpacked)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def running_slot(cmdline: str | None = None) -> str:
    text = cmdline if cmdline is not None else Path("/proc/cmdline").read_text()
    slot = selection.slot_of_cmdline(text)
    if slot is None:
        raise UpgradeError("this boot is not from an installed disk (no corral.slot= on the kernel command "
                           "line): install first (corral install)")
    return slot


def slot_device(slot: str) -> str:
    """The partition of ``slot`` (found by its label, CORRAL_A or CORRAL_B)."""
    found = bootdisk.find_by_label(layout.slot_label(slot))
    if found is None:
        raise UpgradeError(f"no partition labelled {layout.slot_label(slot)}: is this an installed disk?")
    return found


def upgrade(source: str, trusted_keys: Sequence[str], progress: Progress, tools: disk.Tools | None = None,
            cmdline: str | None = None, staging_parent: Path = STAGING_PARENT,
            slot_device: Callable[[str], str] = slot_device,
            next_once: Callable[[str, str], object] = bootdisk.set_next_once) -> UpgradeReport:
    """Steps 1-4 of the module's text; ``slot_device`` and ``next_once`` stand in for the boot disk's
    adapter in tests."""
    tools = tools or disk.Tools()
    report = UpgradeReport(source)
    report.running_slot = running_slot(cmdline)
    report.slot = layout.other_slot(report.running_slot)

    def step(name: str, detail: str, started: float) -> None:
        report.steps.append({"step": name, "detail": detail, "seconds": round(time.monotonic() - started, 2)})

    started = time.monotonic()
    progress("fetch", source)
    with staged(source, staging_parent) as new:
        step("fetch", source, started)
        started = time.monotonic()
        progress("verify", "signature and sha256" if trusted_keys else "sha256 (no trusted keys set)")
        try:
            bundle.verify(new, trusted_keys)
        except bundle.BundleError as exc:
            raise UpgradeError(f"refused, nothing written: {exc}") from None
        report.version, report.signed = new.version, new.signed
        step("verify", f"corral {new.version}", started)
        started = time.monotonic()
        target = slot_device(report.slot)
        progress(f"slot {report.slot}", f"corral {new.version} -> {target}")
        disk.write_slot(target, new, tools, layout.slot_label(report.slot))
        step(f"slot {report.slot}", target, started)
    started = time.monotonic()
    progress("next boot", f"slot {report.slot} once")
    next_once(report.slot, report.version)
    step("next boot", f"slot {report.slot} once", started)
    return report

