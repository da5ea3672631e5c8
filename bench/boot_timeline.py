"""Boot timeline under QEMU TCG: corral's image against the same image whose /init is a shell script doing
the same work (image/baseline/init: mounts, modules by MODALIAS, DHCP, the system dockerd, the preloaded
images, the same system containers), alternated in one run.

Each boot is timed from QEMU's start by the host's clock at the moment each marker line appears on the
serial console:

  stage       corral's line                              the baseline's line
  /init       "Run /init as init process" (kernel)       same
  pid1        "corral VERSION starting"                  "baseline: init"
  dockerd     "boot phase done ... phase=system-docker"  "baseline: dockerd"
  units       "boot phase done ... phase=units"          "baseline: units"
  ready       "corral VERSION ready"                     "baseline ready"

Both clocks start at QEMU's spawn; the kinds alternate (the order turned round at every boot) and each
boot is printed with the load average at its end. Prints the medians (and min/max) per stage over N
boots each and the ratio of the medians at "ready".
`python -m bench.boot_timeline [--boots 5] [--out .cache/image/out]`; builds the image first (from cache).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench._stats import alternate, loadavg
from image.run import DEFAULT_OUT, Machine, qemu_argv

REPO = Path(__file__).resolve().parent.parent
BASELINE_INIT = REPO / "image" / "baseline" / "init"
STAGES = ("init", "pid1", "dockerd", "units", "ready")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARKERS: dict[str, dict[str, re.Pattern[str]]] = {
    "corral": {
        "init": re.compile(r"Run /init as init process"),
        "pid1": re.compile(r"corral \S+ starting"),
        "dockerd": re.compile(r"boot phase done.*phase=system-docker\b(?!-)"),
        "units": re.compile(r"boot phase done.*phase=units"),
        "ready": re.compile(r"corral \S+ ready"),
    },
    "baseline": {
        "init": re.compile(r"Run /init as init process"),
        "pid1": re.compile(r"baseline: init"),
        "dockerd": re.compile(r"baseline: dockerd"),
        "units": re.compile(r"baseline: units"),
        "ready": re.compile(r"baseline ready"),
    },
}
TIMEOUT = 420.0


@dataclass
class Boot:
    kind: str
    stages: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def baseline_initrd(initrd: Path, dest: Path) -> Path:
    """A copy of ``initrd`` with an uncompressed cpio segment appended holding the baseline's /init: the
    kernel unpacks concatenated archives in order, and a later file replaces an earlier one."""
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        shutil.copy2(BASELINE_INIT, stage / "init")
        (stage / "init").chmod(0o755)
        segment = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=stage,
                                 input=b"init\n", capture_output=True, check=True).stdout
    shutil.copyfile(initrd, dest)
    with open(dest, "ab") as f:
        f.write(b"\0" * (-f.tell() % 512) + segment)
    return dest


def boot_once(kind: str, machine: Machine) -> Boot:
    boot = Boot(kind)
    markers = MARKERS[kind]
    start = time.monotonic()
    proc = subprocess.Popen(qemu_argv(machine), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    killer = threading.Timer(TIMEOUT, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            now = time.monotonic() - start
            line = ANSI.sub("", raw.decode(errors="replace")).rstrip()
            boot.log.append(f"{now:8.3f} {line}")
            for stage, pattern in markers.items():
                if stage not in boot.stages and pattern.search(line):
                    boot.stages[stage] = now
            if "ready" in boot.stages:
                break
    finally:
        killer.cancel()
        proc.kill()
        proc.wait()
    return boot


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<10} (never)"
    return (f"{name:<10} median {statistics.median(values):7.2f} s   min {min(values):7.2f}   "
            f"max {max(values):7.2f}   (n={len(values)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.boot_timeline",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5, help="boots of each kind (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the image build output")
    parser.add_argument("--keep-logs", type=Path, help="write each boot's timestamped serial log here")
    args = parser.parse_args(argv)
    # Built from the sources as they are (a no-op in about a second when nothing changed).
    subprocess.run([sys.executable, "-m", "image", "build", "-o", str(args.out)], check=True)
    if shutil.which("qemu-system-x86_64") is None:
        print("qemu-system-x86_64 not found (apt-get install qemu-system-x86)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="boot-timeline.") as tmp:
        kernel, initrd = args.out / "vmlinuz", args.out / "initrd"
        machines = {
            "corral": Machine(kernel=kernel, initrd=initrd, ssh_port=None, serial="stdio"),
            "baseline": Machine(kernel=kernel, initrd=baseline_initrd(initrd, Path(tmp) / "initrd.baseline"),
                                ssh_port=None, serial="stdio"),
        }
        boots: list[Boot] = []
        for i, kind in alternate(("corral", "baseline"), args.boots):
            boot = boot_once(kind, machines[kind])
            boots.append(boot)
            got = ", ".join(f"{s} {boot.stages[s]:.1f}" for s in STAGES if s in boot.stages)
            print(f"boot {i + 1} {kind:<8}: {got}   load {loadavg():.2f}", flush=True)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                (args.keep_logs / f"{i + 1}-{kind}.log").write_text("\n".join(boot.log) + "\n")
    print(f"\nBoot timeline under QEMU TCG (seconds from QEMU's start), {args.boots} boots each, alternated")
    medians: dict[str, float] = {}
    for kind in ("corral", "baseline"):
        print(f"\n{kind}:")
        for stage in STAGES:
            values = [b.stages[stage] for b in boots if b.kind == kind and stage in b.stages]
            print("  " + _row(stage, values))
            if stage == "ready" and values:
                medians[kind] = statistics.median(values)
    if len(medians) == 2:
        ratio = medians["corral"] / medians["baseline"]
        print(f"\nratio of medians at ready (corral / baseline): {ratio:.2f}  (target <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
