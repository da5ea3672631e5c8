"""An installed disk for the QEMU tests (the session's ``installed_disk`` fixture, integration/conftest.py).

One live boot (kernel + initrd, SeaBIOS) with four virtio disks: ``vda`` the live OS's own state disk
(formatted and mounted at boot), ``vdb`` a blank 2 GiB disk (the target), ``vdc`` the ISO (the live
medium ``corral install`` copies the running version from) and ``vdd`` a disk holding an ext4
filesystem. In that one boot, before installing:

- ``corral install --device /dev/vdd`` (a filesystem) and ``--device /dev/vda`` (mounted) are refused;
- with ``corral.upgrade.trusted_keys`` set (``corral config set``), the live medium's unsigned bundle is
  refused; a copy of it
  with one byte of the initrd changed is refused with the keys unset; ``vdb`` is still blank after;

then ``corral install --device /dev/vdb --config FILE --json`` (timed), and poweroff. The outcome of
every command is kept in :class:`InstalledDisk` for the tests to judge. ``vdb`` becomes a qcow2 base
image; each test boots its own overlay (:meth:`InstalledDisk.overlay`), on BIOS or UEFI."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from integration.guest import Guest, GuestError, GuestSpec, SshKey, boot, make_ext4

TARGET_SIZE = "2G"
HOSTNAME = "corral-installed"
# a key nobody holds: with it trusted, the live medium's unsigned bundle must be refused
STRANGER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnJGgNHS9Ti1C7UkSX1CqC2sg5gUqE7vFSvUp1DWqTi stranger"
CONFIG_PATH = "/run/install-config.yml"
TAMPERED = "/run/tampered"
RECORD = "installed.json"
KEY_DIR = "ssh"  # the key the disk's config trusts, kept for CORRAL_INSTALLED_DISK (integration/conftest.py)


@dataclass
class Outcome:
    argv: str
    returncode: int
    stdout: str
    stderr: str


@dataclass
class InstalledDisk:
    base: Path  # qcow2, never booted itself
    version: str
    config: dict[str, Any]
    install_seconds: float  # corral install's own run, from the ssh command's start to its end
    report: dict[str, Any]  # corral install --json's output
    refusals: dict[str, Outcome] = field(default_factory=dict)
    target_after_refusals: str = ""  # wipefs's listing of vdb after the refused installs (empty: blank)
    live_log: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "config": self.config, "install_seconds": self.install_seconds,
                "report": self.report, "refusals": {k: vars(v) for k, v in self.refusals.items()},
                "target_after_refusals": self.target_after_refusals}

    def overlay(self, dest: Path) -> Path:
        """A new qcow2 overlay of the base (the base stays as installed)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.base), "-F", "qcow2",
                        str(dest)], check=True, timeout=60)
        return dest


def _run(g: Guest, command: str, timeout: float = 300) -> Outcome:
    done = g.host(command, check=False, timeout=timeout)
    return Outcome(command, done.returncode, done.stdout, done.stderr)


def installed_config(key: SshKey) -> dict[str, Any]:
    return {"hostname": HOSTNAME, "ssh_authorized_keys": [key.public]}


def make_installed_disk(workdir: Path, image_out: Path, iso: Path, key: SshKey,
                        boot_timeout: float) -> InstalledDisk:
    workdir.mkdir(parents=True, exist_ok=True)
    data = make_ext4(workdir / "data.img", "data")
    spec = GuestSpec(state_disk="64M", disks=[TARGET_SIZE], images=[iso, data], out=image_out,
                     boot_timeout=boot_timeout)
    g = boot(workdir / "live", spec, key)
    try:
        g.wait_ssh()
        refusals = {
            "filesystem": _run(g, "corral install --device /dev/vdd"),
            "mounted": _run(g, "corral install --device /dev/vda"),
        }
        # the user's config, not the seed's user-data: a datasource's key could not be unset after
        g.sudo(f"corral config set corral.upgrade.trusted_keys {shlex.quote(json.dumps([STRANGER_KEY]))}")
        refusals["unsigned"] = _run(g, "corral install --device /dev/vdb")
        g.sudo("corral config unset corral.upgrade.trusted_keys")
        tamper = ("import os, pathlib, shutil, subprocess; from osdisk.install import find_live_medium; "
                  "d = pathlib.Path('/run/iso'); d.mkdir(); "
                  "subprocess.run(['mount', '-t', 'iso9660', '-o', 'ro', find_live_medium(), "
                  "str(d)], check=True); t = pathlib.Path('" + TAMPERED + "'); t.mkdir(); "
                  "[shutil.copyfile(d / 'boot' / n, t / n) for n in ('vmlinuz', 'initrd', 'manifest.json')]; "
                  "subprocess.run(['umount', str(d)], check=True); "
                  "f = os.open(t / 'initrd', os.O_RDWR); b = os.pread(f, 1, 4096); "
                  "os.pwrite(f, bytes([b[0] ^ 1]), 4096); os.close(f)")
        g.host(f"python3 -c {shlex.quote(tamper)}", timeout=300)
        refusals["tampered"] = _run(g, f"corral install --device /dev/vdb --image {TAMPERED}")
        g.host(f"rm -rf {TAMPERED}")
        target_after = g.host("wipefs --no-act /dev/vdb", check=False).stdout.strip()
        config = installed_config(key)
        g.host(f"sh -c {shlex.quote(f'cat > {CONFIG_PATH}')}",
               input="#cloud-config\n" + yaml.safe_dump(config, sort_keys=False))
        started = time.monotonic()
        done = g.host(f"corral install --device /dev/vdb --config {CONFIG_PATH} --json", check=False,
                      timeout=1200)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise GuestError(f"corral install failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                             f"{g.serial.tail(40)}")
        report = json.loads(done.stdout)
        g.sudo("corral poweroff", check=False)
        g.wait_exit(300)
    finally:
        g.stop()
    raw = Path(g.machine.disks[1].path)
    base = workdir / "installed.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(base)],
                   check=True, timeout=600)
    raw.unlink()
    made = InstalledDisk(base=base, version=str(report["version"]), config=config, install_seconds=seconds,
                         report=report, refusals=refusals, target_after_refusals=target_after,
                         live_log=g.serial.path)
    (workdir / KEY_DIR).mkdir(exist_ok=True)
    for path in (key.private, key.private.with_suffix(".pub")):
        shutil.copyfile(path, workdir / KEY_DIR / path.name)
    (workdir / KEY_DIR / key.private.name).chmod(0o600)
    (workdir / RECORD).write_text(json.dumps(made.to_dict(), indent=2))
    return made


def load_installed_disk(directory: Path) -> InstalledDisk:
    """An installed disk an earlier session made (``CORRAL_INSTALLED_DISK=DIR``: its ``installed.json``
    and ``installed.qcow2``), to boot it again without a live install."""
    data = json.loads((directory / RECORD).read_text())
    return InstalledDisk(base=directory / "installed.qcow2", version=data["version"], config=data["config"],
                         install_seconds=data["install_seconds"], report=data["report"],
                         refusals={k: Outcome(**v) for k, v in data["refusals"].items()},
                         target_after_refusals=data["target_after_refusals"])
