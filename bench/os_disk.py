"""Install, upgrade and boot-to-ready from an installed disk against kernel+initrd, under QEMU TCG (issue 15's
"Measure"), with the integration harness (integration/guest.py: the same machines, serial log and ssh as
the guest tests).

Each sample takes four boots, one QEMU at a time:

1. install: a live boot (kernel+initrd, a 64 MiB state disk, a blank 2 GiB target and the ISO as the live
   medium, as integration/installed.py makes the session's installed disk) in which
   ``corral install --device /dev/vdb --config FILE --json`` is timed from the ssh command's start to its
   end (the fixture's clock), with the report's own per-step seconds; poweroff, and the target kept as
   a qcow2;
2. disk: that installed disk booted alone (SeaBIOS, GRUB, slot A) to "corral V ready";
3. kernel: the same build handed to QEMU as -kernel/-initrd, its state disk an ext4 labelled
   CORRAL_STATE made on the host with the size of the installed state partition (so both sides mount an
   empty, formatted state filesystem at their first boot, and neither formats nor waits for one);
4. upgrade: in the disk boot (2.), ``corral os upgrade --image <the second build's corral-upgrade.tar>
   --json`` (from an ext4 disk attached to every boot), ``corral reboot`` (QEMU runs with -no-reboot:
   the reset ends it and the same disk is started again, as the machine's own reset would) and the new
   version's ready line: from the upgrade command's start to that line, split into the write, the reboot
   and the boot.

Disk and kernel boots alternate (which goes first turns round each sample); both clocks run from QEMU's
start to the ready line on the serial console (the harness's ``ready_seconds``). The serial output's size
is sampled every 50 ms, which times the markers on the way: GRUB's banner, the kernel's "Run /init",
PID 1's "starting"; PID 1's own "phase=state seconds=" is read from the log. Every sample is printed with
the load average; then medians, min/max and the ratio disk/kernel.

    .venv/bin/python -m bench.os_disk [--samples 3] [--json] [--keep DIR] [--v2 DIR]

The first build is ``python -m image build --iso`` (from cache); the second is the same sources built with
``--version 9.9.9`` into .cache/image/bench-v2 (as integration/test_guest_upgrade.py's bundles_disk makes
it), or ``--v2 DIR``, a build output made earlier, used as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from bench._stats import loadavg
from integration import guest
from integration.guest import Guest, GuestError, GuestSpec, SshKey
from integration.installed import CONFIG_PATH, TARGET_SIZE, installed_config
from osdisk import bundle

REPO = Path(__file__).resolve().parent.parent
VERSION2 = "9.9.9"
V2_OUT = REPO / ".cache" / "image" / "bench-v2"
BUNDLES = "/run/bundles"  # where the bundles' disk is mounted in the guest (PID 1's namespaces)
# The installed disk's state partition: the 2 GiB target less the BIOS boot partition, the ESP and the two
# slots (osdisk/layout.py) and the GPT's copies at the end.
STATE_MIB = 2048 - 1 - 64 - 512 - 512 - 1
BOOT_TIMEOUT = max(guest.BOOT_TIMEOUT, 600.0)
POLL = 0.05
MARKERS: dict[str, re.Pattern[bytes]] = {
    "grub": re.compile(rb"GNU GRUB"),  # the firmware has handed over to GRUB (disk side only)
    "init": re.compile(rb"Run /init as init process"),
    "pid1": re.compile(rb"corral \S+ starting"),
    "ready": guest.READY,
}
STATE_PHASE = re.compile(rb"phase=state seconds=([0-9.]+)")
KERNEL_INIT = re.compile(rb"\[\s*([0-9.]+)\] Run /init as init process")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")  # the log's colours: between a key, its "=" and its value


# ---- pure parts: when a serial line arrived, and the summaries ----------------------------------------


def arrival(points: Sequence[tuple[float, int]], offset: int) -> float | None:
    """The time at which byte ``offset`` of the serial output had arrived: the first sample (seconds,
    bytes so far) whose size is past it; None when it never was."""
    for seconds, size in points:
        if size > offset:
            return seconds
    return None


def stages(log: bytes, points: Sequence[tuple[float, int]]) -> dict[str, float]:
    """Each marker's first line's arrival (seconds from QEMU's start), for the markers the log has."""
    found: dict[str, float] = {}
    for name, pattern in MARKERS.items():
        m = pattern.search(log)
        if m is not None:
            seen = arrival(points, m.end() - 1)
            if seen is not None:
                found[name] = seen
    return found


def state_phase(log: bytes) -> float | None:
    """PID 1's own time for its state phase (finding and mounting the state partition), from its log."""
    m = STATE_PHASE.search(ANSI.sub(b"", log))
    return float(m.group(1)) if m else None


def kernel_init(log: bytes) -> float | None:
    """The kernel's own clock (seconds since it started) at "Run /init": the marker's arrival less this is
    the time before the kernel ran (the firmware and the boot loader, or QEMU loading -kernel/-initrd)."""
    m = KERNEL_INIT.search(log)
    return float(m.group(1)) if m else None


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def row(name: str, values: Sequence[float]) -> str:
    if not values:
        return f"  {name:<22} (none)"
    s = spread(values)
    return (f"  {name:<22} median {s['median']:7.1f} s   min {s['min']:7.1f}   max {s['max']:7.1f}   "
            f"n={s['n']}")


# ---- the harness's guests, timed --------------------------------------------------------------------


class SerialClock:
    """Samples how much the guest's serial console has printed, every ``POLL`` seconds from QEMU's start:
    the host's arrival time of any byte of the log (:func:`arrival`)."""

    def __init__(self, g: Guest) -> None:
        self.g = g
        self.points: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.points.append((time.monotonic() - self.g.started, self.g.serial.size))
            self._stop.wait(POLL)

    def stop(self) -> dict[str, Any]:
        """Stop sampling -> the boot's markers and PID 1's state phase."""
        self._stop.set()
        self._thread.join(5)
        log = self.g.serial.path.read_bytes()
        found: dict[str, Any] = stages(log, self.points)
        found["state_phase"] = state_phase(log)
        kernel = kernel_init(log)
        if kernel is not None and "init" in found:
            found["before_kernel"] = round(found["init"] - kernel, 2)
        return found


def timed_boot(workdir: Path, spec: GuestSpec, key: SshKey) -> tuple[Guest, dict[str, Any]]:
    """One boot to ready (no second attempt: a retried boot is not the same sample) -> the guest, still
    running, and its markers; ``ready`` is the harness's own ``ready_seconds``."""
    g = Guest(workdir, spec, key)
    clock = SerialClock(g)
    try:
        g.wait_ready()
    except BaseException:
        clock.stop()
        g.stop()
        raise
    found = clock.stop()
    assert g.ready_seconds is not None
    found["ready"] = g.ready_seconds
    return g, found


@contextmanager
def running(g: Guest) -> Iterator[Guest]:
    try:
        yield g
    finally:
        g.stop()


def install(workdir: Path, image_out: Path, iso: Path, key: SshKey) -> tuple[Path, float, dict[str, Any]]:
    """The live boot and ``corral install`` (see the module's text) -> the installed disk (qcow2), the
    install's seconds and its report."""
    spec = GuestSpec(state_disk="64M", disks=[TARGET_SIZE], images=[iso], out=image_out,
                     boot_timeout=BOOT_TIMEOUT)
    with running(guest.boot(workdir / "live", spec, key)) as g:
        g.wait_ssh()
        config = "#cloud-config\n" + yaml.safe_dump(installed_config(key), sort_keys=False)
        g.host(f"sh -c {shlex.quote(f'cat > {CONFIG_PATH}')}", input=config)
        started = time.monotonic()
        done = g.host(f"corral install --device /dev/vdb --config {CONFIG_PATH} --json", check=False,
                      timeout=1200)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            raise GuestError(f"corral install failed ({done.returncode}): {done.stdout}{done.stderr}")
        report = json.loads(done.stdout)
        g.sudo("corral poweroff", check=False)
        g.wait_exit(300)
    raw = Path(g.machine.disks[1].path)
    disk = workdir / "installed.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(disk)], check=True,
                   timeout=600)
    raw.unlink()
    return disk, seconds, report


def upgrade(g: Guest, workdir: Path, spec: GuestSpec) -> dict[str, Any]:
    """In the disk boot ``g``: the upgrade, the reboot and the new version's boot (see the module's text)."""
    g.wait_ssh()
    g.host(f"sh -c 'mkdir -p {BUNDLES} && mount -o ro /dev/vdb {BUNDLES}'")
    started = time.monotonic()
    done = g.sudo(f"corral os upgrade --image {BUNDLES}/v2.tar --json", timeout=900)
    written = time.monotonic()
    report = json.loads(done.stdout)
    g.sudo("corral reboot", check=False)
    g.wait_exit(300)
    down = time.monotonic()
    new, found = timed_boot(workdir, spec, g.key)
    with running(new):
        if new.version != VERSION2:
            raise GuestError(f"after the upgrade: corral {new.version} ready, not {VERSION2}")
        ready = new.started + found["ready"]
    return {"total": ready - started, "write": written - started, "reboot": down - written,
            "boot": ready - down, "boot_stages": found,
            "steps": {s["step"]: s["seconds"] for s in report.get("steps", [])}}


# ---- the builds --------------------------------------------------------------------------------------


def second_build(out: Path) -> None:
    argv = [sys.executable, "-m", "image", "build", "-o", str(out), "--version", VERSION2]
    subprocess.run(argv, cwd=REPO, check=True, timeout=3600, stdout=sys.stderr)


def bundles_disk(v2: Path, work: Path) -> Path:
    """An ext4 image holding the second build's bundle as ``v2.tar``."""
    stage = work / "bundles"
    stage.mkdir()
    shutil.copyfile(v2 / bundle.ARCHIVE_NAME, stage / "v2.tar")
    size = (stage / "v2.tar").stat().st_size
    image = work / "bundles.img"
    with image.open("wb") as f:
        f.truncate(size + size // 4 + (64 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "bundles", "-d", str(stage), str(image)], check=True,
                   capture_output=True, timeout=600)
    shutil.rmtree(stage)
    return image


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class Run:
    samples: list[dict[str, Any]] = field(default_factory=list)

    def values(self, *path: str) -> list[float]:
        out = []
        for s in self.samples:
            value: Any = s
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                out.append(float(value))
        return out

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, path in (("install", ("install", "seconds")), ("disk_ready", ("disk", "ready")),
                           ("kernel_ready", ("kernel", "ready")), ("upgrade", ("upgrade", "total")),
                           ("upgrade_write", ("upgrade", "write")), ("upgrade_reboot", ("upgrade", "reboot")),
                           ("upgrade_boot", ("upgrade", "boot"))):
            values = self.values(*path)
            if values:
                result[name] = spread(values)
        if "disk_ready" in result and "kernel_ready" in result:
            result["ratio_disk_kernel"] = round(result["disk_ready"]["median"] /
                                                result["kernel_ready"]["median"], 2)
        return result


def one_sample(sample: dict[str, Any], i: int, work: Path, out: Path, iso: Path, bundles: Path, key: SshKey,
               say: TextIO) -> None:
    """Fill ``sample`` part by part (what was measured stays when a later part fails)."""
    load = loadavg()
    disk, seconds, report = install(work, out, iso, key)
    steps = {s["step"]: s["seconds"] for s in report.get("steps", [])}
    # before the report's first step: the CLI's start, the config's check, the live medium found and
    # mounted, the bundle's sha256 checked (osdisk.install.check_source)
    before = seconds - sum(steps.values())
    sample["install"] = {"seconds": round(seconds, 2), "before_steps": round(before, 2), "steps": steps,
                         "load": load}
    print(f"sample {i + 1} install {seconds:7.1f} s   load {load:.2f} -> {loadavg():.2f}   before the steps "
          f"{before:.1f}, steps: " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()), file=say,
          flush=True)
    disk_spec = GuestSpec(boot_disk=disk, images=[bundles], boot_timeout=BOOT_TIMEOUT)
    for side in ("disk", "kernel") if i % 2 == 0 else ("kernel", "disk"):
        load = loadavg()
        if side == "disk":
            g, found = timed_boot(work / "disk", disk_spec, key)
            with running(g):
                _boot_line(sample, i, side, found, load, say)
                load = loadavg()
                up = upgrade(g, work / "upgraded", disk_spec)
            sample["upgrade"] = {**up, "load": load}
            print(f"sample {i + 1} upgrade {up['total']:6.1f} s   (write {up['write']:.1f}, reboot "
                  f"{up['reboot']:.1f}, boot {up['boot']:.1f})   load {load:.2f} -> {loadavg():.2f}   steps: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in up["steps"].items()), file=say, flush=True)
        else:
            state = guest.make_ext4(work / "kernel-state.img", "CORRAL_STATE", STATE_MIB << 20)
            spec = GuestSpec(state_disk=state, images=[bundles], out=out, boot_timeout=BOOT_TIMEOUT)
            g, found = timed_boot(work / "kernel", spec, key)
            g.stop()
            state.unlink()
            _boot_line(sample, i, side, found, load, say)


def _boot_line(sample: dict[str, Any], i: int, side: str, found: dict[str, Any], load: float,
               say: TextIO) -> None:
    found["load"] = load
    sample[side] = found
    print(f"sample {i + 1} {side:<7} ready {found['ready']:6.1f} s   load {load:.2f} -> {loadavg():.2f}   "
          + ", ".join(f"{k} {found[k]:.1f}" for k in ("grub", "before_kernel", "init", "pid1") if k in found)
          + (f", state phase {found['state_phase']:.2f}" if found.get("state_phase") is not None else ""),
          file=say, flush=True)


def report(run: Run, say: TextIO) -> None:
    print("\nUnder QEMU TCG, seconds (median, min, max over the samples):", file=say)
    print(row("install", run.values("install", "seconds")), file=say)
    print(row("  before the steps", run.values("install", "before_steps")), file=say)
    steps = {k for s in run.samples if "install" in s for k in s["install"]["steps"]}
    for step in sorted(steps):
        print(row(f"  {step}", run.values("install", "steps", step)), file=say)
    for side in ("disk", "kernel"):
        print(row(f"{side} -> ready", run.values(side, "ready")), file=say)
        for stage in ("grub", "before_kernel", "init", "pid1", "state_phase"):
            print(row(f"  {stage}", run.values(side, stage)), file=say)
    print(row("upgrade -> ready", run.values("upgrade", "total")), file=say)
    for part in ("write", "reboot", "boot"):
        print(row(f"  {part}", run.values("upgrade", part)), file=say)
    summary = run.summary()
    if "ratio_disk_kernel" in summary:
        parts = ("install", "disk", "kernel", "upgrade")
        loads = [s[k]["load"] for s in run.samples for k in parts if k in s]
        print(f"  ratio of medians at ready, disk / kernel+initrd: {summary['ratio_disk_kernel']:.2f}   "
              f"(load average {min(loads):.2f}-{max(loads):.2f} over the run)", file=say)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.os_disk",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3, help="samples (4 boots each; default 3)")
    parser.add_argument("--json", action="store_true", help="the samples and medians as JSON on stdout "
                        "(the progress goes to stderr)")
    parser.add_argument("--keep", type=Path, help="keep the serial logs and disks here (default: a temporary "
                        "directory, removed)")
    parser.add_argument("--v2", type=Path, help=f"the second build (version {VERSION2}) made earlier, used "
                        f"as it is (default: built into {V2_OUT.relative_to(REPO)})")
    args = parser.parse_args(argv)
    say = sys.stderr if args.json else sys.stdout
    reason = guest.unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    out, why = guest.build_image()
    iso, why_iso = guest.build_iso(out) if out is not None else (None, why)
    if out is None or iso is None:
        print(f"the image or its ISO could not be built: {why or why_iso}", file=sys.stderr)
        return 2
    v2 = args.v2
    if v2 is None:
        second_build(V2_OUT)
        v2 = V2_OUT
    if guest.image_version(v2) != VERSION2:
        print(f"{v2}: not a build of version {VERSION2}", file=sys.stderr)
        return 2
    base = (args.keep or Path(tempfile.mkdtemp(prefix="bench-os-disk."))).resolve()  # QEMU runs in its dir
    base.mkdir(parents=True, exist_ok=True)
    key = guest.make_ssh_key(base / "ssh")
    bundles = bundles_disk(v2, base)
    run = Run()
    try:
        for i in range(args.samples):
            sample: dict[str, Any] = {"sample": i + 1}
            run.samples.append(sample)
            try:
                one_sample(sample, i, base / f"sample{i + 1}", out, iso, bundles, key, say)
            except (GuestError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                sample["failed"] = str(exc)[-3000:]
                print(f"sample {i + 1} failed (load {loadavg():.2f}): {sample['failed']}", file=say,
                      flush=True)
        report(run, say)
        if args.json:
            print(json.dumps({"samples": run.samples, "summary": run.summary()}, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs and disks kept in {base}", file=say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
