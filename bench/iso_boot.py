"""Boot to "ready" under QEMU TCG: the hybrid ISO (booted by SeaBIOS from a CD-ROM, GRUB loading the kernel
and initrd) against the same kernel and initrd handed to QEMU (-kernel/-initrd), alternated in one run.

Both clocks start when QEMU is started; the stages are bench/boot_timeline.py's markers on the serial
console. Prints each boot with the load average, then the medians and their ratio at "ready".
`python -m bench.iso_boot [--boots 2] [--out .cache/image/out]`; builds the image and the ISO first (from
cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.boot_timeline import STAGES, Boot, boot_once
from image import iso
from image.run import DEFAULT_OUT, Machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.iso_boot",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=2, help="boots of each kind (default 2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the image build output")
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "image", "build", "--iso", "-o", str(args.out)], check=True)
    out = args.out.resolve()
    machines = {
        "kernel": Machine(kernel=out / "vmlinuz", initrd=out / "initrd", ssh_port=None, serial="stdio"),
        "iso": Machine(kernel=None, initrd=None, cdrom=out / iso.ISO_NAME, ssh_port=None, serial="stdio"),
    }
    boots: list[Boot] = []
    for i in range(args.boots):
        for kind in ("kernel", "iso") if i % 2 == 0 else ("iso", "kernel"):
            load = os.getloadavg()[0]
            boot = boot_once("corral", machines[kind])
            boot.kind = kind
            boots.append(boot)
            got = ", ".join(f"{s} {boot.stages[s]:.1f}" for s in STAGES if s in boot.stages)
            print(f"boot {i + 1} {kind:<6} (load {load:.1f} -> {os.getloadavg()[0]:.1f}): {got}", flush=True)
    medians: dict[str, float] = {}
    for kind in ("kernel", "iso"):
        ready = [b.stages["ready"] for b in boots if b.kind == kind and "ready" in b.stages]
        init = [b.stages["init"] for b in boots if b.kind == kind and "init" in b.stages]
        if ready:
            medians[kind] = statistics.median(ready)
            print(f"{kind:<6}: /init median {statistics.median(init):.1f} s, "
                  f"ready median {medians[kind]:.1f} s (n={len(ready)})")
    if len(medians) == 2:
        print(f"ratio of medians at ready (iso / kernel+initrd): {medians['iso'] / medians['kernel']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
