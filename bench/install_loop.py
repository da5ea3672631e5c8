"""`corral install`'s steps on the build host (root): the build's bundle (`.cache/image/out/bundle`, or
--bundle) installed to a sparse 2 GiB loop disk, N times, with the step times and the load average of each
sample. The host's kernel neither scans a loop disk's GPT nor has vfat: each partition is its own loop
device and the ESP is written with mtools (as integration/test_osdisk_disk.py does); every other step
(wipefs, sfdisk, mkfs, GRUB's BIOS code, the verified bundle into slot A, the config) is the real one.
Under QEMU TCG the same steps are slower: integration/test_guest_install.py runs them in a guest.

    sudo .venv/bin/python -m bench.install_loop --samples 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._stats import loadavg
from image import bootfiles
from osdisk import bundle, disk, install, layout

REPO = Path(__file__).resolve().parent.parent


def esp_with_mtools(path: str, files: dict[str, bytes], tools: disk.Tools) -> None:
    staging = Path(tempfile.mkdtemp())
    try:
        disk.write_files(staging, files)
        for top in staging.iterdir():
            subprocess.run(["mcopy", "-s", "-i", path, str(top), "::/"], check=True, capture_output=True)
    finally:
        shutil.rmtree(staging)


def one(work: Path, source: bundle.Bundle, boot_files: Path) -> tuple[float, dict[str, float]]:
    image = work / "disk.img"
    with open(image, "wb") as f:
        f.truncate(2 << 30)
    dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    parts: list[str] = []

    def partition_paths(lay: layout.Layout) -> dict[int, str]:
        out = {}
        for p in lay.partitions:
            parts.append(subprocess.run(["losetup", "-f", "--show", "-o", str(p.start), "--sizelimit",
                                         str(p.size), str(image)], check=True, capture_output=True,
                                        text=True).stdout.strip())
            out[p.number] = parts[-1]
        return out

    try:
        started = time.monotonic()
        install.check_source(source, [])
        checked = time.monotonic() - started
        report = install.install(dev, source, b"#cloud-config\nhostname: bench\n", lambda s, d: None,
                                 boot_files=boot_files, partition_paths=partition_paths)
        total = time.monotonic() - started
    finally:
        for d in [*parts, dev]:
            subprocess.run(["losetup", "-d", d], check=False, capture_output=True)
        image.unlink()
    return total, {"check": checked, **{s["step"]: s["seconds"] for s in report.steps}}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--bundle", type=Path, default=REPO / ".cache" / "image" / "out" / "bundle")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (loop devices)", file=sys.stderr)
        return 2
    disk.write_esp = esp_with_mtools  # type: ignore[assignment]
    source = bundle.read(args.bundle)
    totals = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        work = Path(tmp)
        bootfiles.install(work / "root")
        for i in range(args.samples):
            load = loadavg()
            total, steps = one(work, source, work / "root" / bootfiles.DEST)
            totals.append(total)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            print(f"sample {i + 1}: {total:.2f} s (load {load:.1f}): {detail}", flush=True)
    print(f"corral {source.version}: median {statistics.median(totals):.2f} s over {len(totals)} samples "
          f"(load now {loadavg():.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
