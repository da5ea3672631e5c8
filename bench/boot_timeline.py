"""Boot timeline under QEMU TCG: corral's image against the same image whose /init is a shell script doing
the same work (image/baseline/init: mounts, modules by MODALIAS, DHCP, the system dockerd, the preloaded
images, the same system containers), alternated in one run.

Each boot is timed from QEMU's start by the host's clock at the moment each marker line appears on the
serial console:

  stage       corral's line                              the baseline's line
  /init       "Run /init as init process" (kernel)       same
  pid1        "corral VERSION starting"                  "baseline: init"
  spawn       "boot phase done ... system-docker-start"  "baseline: dockerd spawned"
  dockerd     "boot phase done ... phase=system-docker"  "baseline: dockerd"
  units       "boot phase done ... phase=units"          "baseline: units"
  ready       "corral VERSION ready"                     "baseline ready"

The machine has no disk, so the baseline has no state partition, and corral is told not to wait for one
(``corral.state.wait=0`` on its kernel command line, ``--state-wait``): the image waits up to 30 s for
`make run`'s state disk (image/config/10-image.yml), which a boot without one waits out. Both "ready"s
include the user dockerd's shipped images (corral's ready waits for them: docs/supervisor.md).

Both clocks start at QEMU's spawn; the kinds alternate (the order turned round at every boot) and each
boot is printed with the load average at its end. Prints the medians (and min/max) per stage over N
boots each and the ratio of the medians at "ready".
`python -m bench.boot_timeline [--boots 5] [--out .cache/image/out]`; builds the image first (from cache).

With ``--importtime DIR`` corral's boots start PID 1 under ``python3 -X importtime`` (the kernel command
line's ``corral_importtime=/dev/ttyS1``, image/init) with a second serial port for its report; each line
is stamped with the host's clock as it arrives, written to DIR and summarised (bench/_importtime.py).
The report costs the guest time of its own: time such boots for where the imports go, not for the ratio.
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
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import _importtime
from bench._stats import alternate, loadavg
from image.run import DEFAULT_OUT, Machine, qemu_argv

REPO = Path(__file__).resolve().parent.parent
BASELINE_INIT = REPO / "image" / "baseline" / "init"
STAGES = ("init", "pid1", "spawn", "dockerd", "units", "ready")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARKERS: dict[str, dict[str, re.Pattern[str]]] = {
    "corral": {
        "init": re.compile(r"Run /init as init process"),
        "pid1": re.compile(r"corral \S+ starting"),
        "spawn": re.compile(r"boot phase done.*phase=system-docker-start\b"),
        "dockerd": re.compile(r"boot phase done.*phase=system-docker\b(?!-)"),
        "units": re.compile(r"boot phase done.*phase=units"),
        "ready": re.compile(r"corral \S+ ready"),
    },
    "baseline": {
        "init": re.compile(r"Run /init as init process"),
        "pid1": re.compile(r"baseline: init"),
        "spawn": re.compile(r"baseline: dockerd spawned"),
        "dockerd": re.compile(r"baseline: dockerd$"),
        "units": re.compile(r"baseline: units"),
        "ready": re.compile(r"baseline ready"),
    },
}
TIMEOUT = 420.0
IMPORTTIME_PARAM = "corral_importtime=/dev/ttyS1"  # image/init: the report to the second serial port


@dataclass
class Boot:
    kind: str
    stages: dict[str, float] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    importtime: list[tuple[float, str]] = field(default_factory=list)  # (host clock, line) of the report


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


def with_importtime(machine: Machine, report: Path) -> Machine:
    """``machine`` booting PID 1 under ``-X importtime``, its report on a second serial port to ``report``."""
    return replace(machine, append=f"{machine.append} {IMPORTTIME_PARAM}".strip(),
                   extra_args=(*machine.extra_args, "-serial", f"file:{report}"))


def _follow(path: Path, start: float, into: list[tuple[float, str]], stop: threading.Event) -> None:
    """Append each line QEMU writes to ``path`` with the time it is seen (polled every 20 ms)."""
    pending = b""
    while not path.exists() and not stop.wait(0.02):
        pass
    with open(path, "rb") as f:
        while True:
            chunk = f.read()
            now = time.monotonic() - start
            pending += chunk
            *lines, pending = pending.split(b"\n")
            into.extend((now, ln.decode(errors="replace").rstrip("\r")) for ln in lines)
            if not chunk and stop.wait(0.02):
                return


def boot_once(kind: str, machine: Machine, importtime: Path | None = None, timeout: float = TIMEOUT) -> Boot:
    """One boot to its ready line; with ``importtime`` (a path for the report), under ``-X importtime``."""
    boot = Boot(kind)
    markers = MARKERS[kind]
    if importtime is not None:
        importtime.unlink(missing_ok=True)
        machine = with_importtime(machine, importtime)
    start = time.monotonic()
    proc = subprocess.Popen(qemu_argv(machine), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    stop = threading.Event()
    follower = None
    if importtime is not None:
        follower = threading.Thread(target=_follow, args=(importtime, start, boot.importtime, stop),
                                    daemon=True)
        follower.start()
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
        stop.set()
        if follower is not None:
            follower.join(5)
    return boot


def _write_importtime(boot: Boot, path: Path) -> None:
    """The report with each line's host time, and its summary (also printed)."""
    path.write_text("".join(f"{t:8.3f} {line}\n" for t, line in boot.importtime))
    imports = _importtime.parse(boot.importtime)
    lines = [f"{path.name}: " + ", ".join(f"{s} {boot.stages[s]:.1f} s" for s in STAGES if s in boot.stages),
             *_importtime.summary(imports, until=boot.stages.get("spawn"))]
    path.with_suffix(".summary").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


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
    parser.add_argument("--importtime", type=Path, metavar="DIR",
                        help="corral's boots under python3 -X importtime; the reports and summaries go here")
    parser.add_argument("--state-wait", type=float, default=0.0, metavar="SECONDS",
                        help="corral.state.wait on corral's kernel command line (default 0: the machine has "
                             "no disk, and the baseline looks for none)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT, metavar="SECONDS",
                        help=f"a boot not ready after this is given up (default {TIMEOUT:g})")
    parser.add_argument("--only", choices=("corral", "baseline"),
                        help="boot one kind only (with --importtime)")
    args = parser.parse_args(argv)
    # Built from the sources as they are (a no-op in about a second when nothing changed).
    subprocess.run([sys.executable, "-m", "image", "build", "-o", str(args.out)], check=True)
    if shutil.which("qemu-system-x86_64") is None:
        print("qemu-system-x86_64 not found (apt-get install qemu-system-x86)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="boot-timeline.") as tmp:
        kernel, initrd = args.out / "vmlinuz", args.out / "initrd"
        machines = {
            "corral": Machine(kernel=kernel, initrd=initrd, ssh_port=None, serial="stdio",
                              append=f"corral.state.wait={args.state_wait:g}"),
            "baseline": Machine(kernel=kernel, initrd=baseline_initrd(initrd, Path(tmp) / "initrd.baseline"),
                                ssh_port=None, serial="stdio"),
        }
        boots: list[Boot] = []
        kinds = (args.only,) if args.only else ("corral", "baseline")
        if args.importtime:
            args.importtime.mkdir(parents=True, exist_ok=True)
        for i, kind in alternate(kinds, args.boots):
            report = args.importtime / f"{i + 1}-{kind}.raw" if args.importtime and kind == "corral" else None
            boot = boot_once(kind, machines[kind], report, args.timeout)
            boots.append(boot)
            got = ", ".join(f"{s} {boot.stages[s]:.1f}" for s in STAGES if s in boot.stages)
            print(f"boot {i + 1} {kind:<8}: {got}   load {loadavg():.2f}", flush=True)
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                (args.keep_logs / f"{i + 1}-{kind}.log").write_text("\n".join(boot.log) + "\n")
            if report is not None:
                _write_importtime(boot, report.with_suffix(".importtime"))
    print(f"\nBoot timeline under QEMU TCG (seconds from QEMU's start), {args.boots} boots each, alternated")
    medians: dict[tuple[str, str], float] = {}
    for kind in kinds:
        print(f"\n{kind}:")
        for stage in STAGES:
            values = [b.stages[stage] for b in boots if b.kind == kind and stage in b.stages]
            print("  " + _row(stage, values))
            if values:
                medians[kind, stage] = statistics.median(values)
    ratios = [f"{stage} {medians['corral', stage] / medians['baseline', stage]:.2f}" for stage in STAGES
              if ("corral", stage) in medians and ("baseline", stage) in medians]
    if ratios:
        print(f"\nratio of medians (corral / baseline): {', '.join(ratios)}  (target at ready <= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
