"""An installed disk for the QEMU tests (the session's ``installed_disk`` fixture, integration/conftest.py).

One live boot: the ISO as a CD-ROM on SeaBIOS (no -kernel/-initrd: GRUB from the ISO boots it, as on a
machine; ``corral install`` finds it as ``/dev/sr0`` and copies the running version from it), with three
virtio disks: ``vda`` the live OS's own state disk (ext4 labelled CORRAL_STATE, made on the host with
the user's config in it: the ssh key, since the ISO's grub.cfg gives no config), ``vdb`` a blank 2 GiB
disk (the target) and ``vdc`` a disk holding an ext4 filesystem. That boot is also
test_guest_iso.py's "ISO as a CD-ROM on BIOS" (its serial log and QEMU command line are kept). In that
one boot, before installing:

- ``corral install --device /dev/vdd`` (a filesystem) and ``--device /dev/vda`` (mounted) are refused;
- with ``corral.upgrade.trusted_keys`` set (``corral config set``), the live medium's unsigned bundle is
  refused; a copy of it
  with one byte of the initrd changed is refused with the keys unset; ``vdb`` is still blank after;

then ``corral install --device /dev/vdb --config FILE --json`` (timed), and poweroff. The outcome of
every command is kept in :class:`InstalledDisk` for the tests to judge. ``vdb`` becomes a qcow2 base
image; each test boots its own overlay (:meth:`InstalledDisk.overlay`), on BIOS or UEFI.

``CORRAL_INSTALLED_DISK=DIR`` (integration/conftest.py) reuses an earlier session's ``DIR``
(:func:`load_installed_disk`): its record, its qcow2 base and the live boot's serial log."""

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

from image import run as run_mod
from integration.guest import Guest, GuestError, GuestSpec, SshKey, boot, make_ext4
from supervisor.config.generations import CLOUD_CONFIG, Generations

TARGET_SIZE = "2G"
HOSTNAME = "corral-installed"
# a key nobody holds: with it trusted, the live medium's unsigned bundle must be refused
STRANGER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnJGgNHS9Ti1C7UkSX1CqC2sg5gUqE7vFSvUp1DWqTi stranger"
CONFIG_PATH = "/run/install-config.yml"
TAMPERED = "/run/tampered"
RECORD = "installed.json"
LIVE_DIR = "live"  # the live boot's directory under the fixture's: serial.log, qemu.argv
LIVE_STATE_SIZE = 64 << 20
STATE_CONFIG_DIR = "var/lib/corral/conf"  # on the state disk (osdisk/install.py CONFIG_DIR)
FIND_MEDIUM = "from osdisk.install import find_live_medium; print(find_live_medium())"
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
    live_log: Path | None = None  # the live boot's serial console (GRUB's menu, the kernel's messages)
    live_argv: list[str] = field(default_factory=list)  # its QEMU command line
    live_version: str = ""  # what its "corral <version> ready" line named
    live_medium: str = ""  # find_live_medium() in the live OS: the CD-ROM corral install read

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "config": self.config, "install_seconds": self.install_seconds,
                "report": self.report, "refusals": {k: vars(v) for k, v in self.refusals.items()},
                "target_after_refusals": self.target_after_refusals, "live_argv": self.live_argv,
                "live_version": self.live_version, "live_medium": self.live_medium}

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


def live_state_disk(path: Path, key: SshKey) -> Path:
    """The live boot's state disk: ext4 labelled CORRAL_STATE holding the user's config (a committed
    generation, as ``corral install --config`` writes it) that authorizes ``key``: the ISO's fixed
    grub.cfg passes no config, and the image's config lists no datasource but its seed."""
    stage = path.with_name(path.name + ".d")
    config = "#cloud-config\n" + yaml.safe_dump({"ssh_authorized_keys": [key.public]}, sort_keys=False)
    Generations(stage / STATE_CONFIG_DIR).commit({CLOUD_CONFIG: config.encode()})
    run_mod.make_disk(path, LIVE_STATE_SIZE)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "CORRAL_STATE", "-d", str(stage), str(path)], check=True,
                   capture_output=True, timeout=60)
    shutil.rmtree(stage)
    return path


def make_installed_disk(workdir: Path, image_out: Path, iso: Path, key: SshKey,
                        boot_timeout: float) -> InstalledDisk:
    workdir.mkdir(parents=True, exist_ok=True)
    data = make_ext4(workdir / "data.img", "data")
    state = live_state_disk(workdir / "live-state.img", key)
    spec = GuestSpec(iso=iso, iso_as="cdrom", state_disk=state, disks=[TARGET_SIZE], images=[data],
                     out=image_out, boot_timeout=boot_timeout)
    g = boot(workdir / LIVE_DIR, spec, key)
    try:
        g.wait_ssh()
        medium = g.host(f"python3 -c {shlex.quote(FIND_MEDIUM)}").stdout.strip()
        refusals = {
            "filesystem": _run(g, "corral install --device /dev/vdc"),
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
                         live_log=g.serial.path, live_argv=list(g.argv), live_version=g.version or "",
                         live_medium=medium)
    (workdir / KEY_DIR).mkdir(exist_ok=True)
    for path in (key.private, key.private.with_suffix(".pub")):
        shutil.copyfile(path, workdir / KEY_DIR / path.name)
    (workdir / KEY_DIR / key.private.name).chmod(0o600)
    (workdir / RECORD).write_text(json.dumps(made.to_dict(), indent=2))
    return made


def load_installed_disk(directory: Path) -> InstalledDisk:
    """An installed disk an earlier session made (``CORRAL_INSTALLED_DISK=DIR``: its ``installed.json``,
    ``installed.qcow2`` and the live boot's ``live/serial.log``), to boot it again without a live
    install."""
    data = json.loads((directory / RECORD).read_text())
    log = directory / LIVE_DIR / "serial.log"
    return InstalledDisk(base=directory / "installed.qcow2", version=data["version"], config=data["config"],
                         install_seconds=data["install_seconds"], report=data["report"],
                         refusals={k: Outcome(**v) for k, v in data["refusals"].items()},
                         target_after_refusals=data["target_after_refusals"],
                         live_log=log if log.is_file() else None, live_argv=data.get("live_argv", []),
                         live_version=data.get("live_version", ""), live_medium=data.get("live_medium", ""))
