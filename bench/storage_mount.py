"""Disk appears -> mounted at its rule's path: corral (a sandboxed PID 1: udev source, storage handler)
against doing the same by hand (blkid probe + mount(2)), alternated in one run.

A sample starts just before `losetup` is run to attach the image (the same event for both sides: the
kernel sends the uevent while losetup configures the device, so corral may start its work before
losetup has returned) and ends when the mount is visible in the mounting process's /proc/PID/mountinfo
(polled every 0.2 ms). Both sides pay the same losetup. The samples alternate (corral, by hand; by hand,
corral; ...) and each is printed with the load average at its time. corral's side
includes the uevent, its level-triggered observation (only the device the uevent named, plus the mount
table), a probe (libblkid in a worker thread: the same probe as `blkid -p`, without a process) and
mount(2); the peer runs the `blkid -p` command and mount(2) only, with no event to wait for. At the
end, the storage handler's counters show how many observations were full (every block device) and
partial (only the devices uevents named)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._stats import Samples, alternate
from integration.sandbox import Sandbox
from integration.test_storage import Loops
from supervisor.mounts import MS_NODEV, MS_NOSUID, MountSpec, mount, umount

SAMPLES = 50
MS_RDONLY = 1


def wait_mounted(pid: int | str, target: str, present: bool = True, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    needle = f" {target} "
    while time.monotonic() < deadline:
        if (needle in Path(f"/proc/{pid}/mountinfo").read_text()) == present:
            return
        time.sleep(0.0002)
    raise TimeoutError(f"{target} {'not mounted' if present else 'still mounted'}")


def by_hand(loops: Loops, image: Path, target: Path) -> float:
    """Attach, probe with blkid, mount(2): what a person (or a script) would do."""
    start = time.perf_counter()
    dev = loops.attach(image, read_only=True)
    probe = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True, check=True)
    fstype = next(line.split("=", 1)[1] for line in probe.stdout.splitlines() if line.startswith("TYPE="))
    mount(MountSpec(dev, str(target), fstype, MS_NOSUID | MS_NODEV | MS_RDONLY), target)
    wait_mounted("self", str(target))
    return time.perf_counter() - start


def by_corral(sb: Sandbox, loops: Loops, image: Path, target: str) -> float:
    start = time.perf_counter()
    loops.attach(image, read_only=True)
    wait_mounted(sb.pid1, target)
    return time.perf_counter() - start


def main() -> None:
    if os.environ.get("CORRAL_BENCH_NS") != "1":  # our own mounts go in a private mount namespace
        os.environ["CORRAL_BENCH_NS"] = "1"
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, "-m", "bench.storage_mount"]
        os.execvp(argv[0], argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        loops = Loops(root / "images")
        # One labelled disk and one rule per sample, for each side: no unmounting between samples.
        ours_images = [loops.image(f"c{i}.img", f"CB{i}") for i in range(SAMPLES)]
        hand_images = [loops.image(f"h{i}.img", f"HB{i}") for i in range(SAMPLES)]
        rules = [{"match": {"label": f"CB{i}"}, "path": f"/mnt/b{i}", "options": "ro"}
                 for i in range(SAMPLES)]
        sb = Sandbox(root / "sb", config={"mounts": rules})
        mounted: list[Path] = []
        results = Samples()
        try:
            sb.wait_ready()
            for i, side in alternate(("corral", "by hand"), SAMPLES):
                if side == "corral":
                    took = by_corral(sb, loops, ours_images[i], str(sb.dir / f"mnt/b{i}"))
                else:
                    target = root / f"hand{i}"
                    target.mkdir()
                    took = by_hand(loops, hand_images[i], target)
                    mounted.append(target)
                results.record(side, took, label=f"{i + 1:2d}")
            counters = sb.request("storage.status")["storage"]["counters"]
        finally:
            for target in mounted:
                umount(target)
            sb.stop()
            time.sleep(1)  # the sandbox's mount namespace lets go of its disks
            loops.cleanup()
    print("corral: losetup -> uevent -> observe -> libblkid -> mount; by hand: losetup -> blkid -> mount")
    print("\n".join(results.report("corral", "by hand")))
    print("corral's storage handler: " + ", ".join(f"{k} {counters[k]}" for k in (
        "reconciles", "passes", "full_observations", "partial_observations", "blkid_probes", "blkid_cached")))


if __name__ == "__main__":
    main()
