"""`corral sandbox`: the very same supervisor as PID 1 in new pid, mount, net, uts and ipc namespaces.

Everything it keeps lives under DIR: DIR/root (its /proc, /sys, /dev, /run mounts), DIR/var/lib/corral
(config), DIR/var/log/corral (journal), DIR/run/corral/control.sock (reachable from the host, so the
`corral` CLI works with CORRAL_SOCKET pointing at it). The host's network, mounts and docker are never
touched: the mounts happen in a private mount namespace, the network is a fresh namespace with only lo."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from supervisor import allocator
from supervisor.paths import Paths

NAMESPACES = [
    "--pid", "--fork", "--mount-proc", "--mount", "--net", "--uts", "--ipc", "--propagation", "private",
]


def prepare(directory: Path, config: Path | None = None, cmdline: str = "") -> Paths:
    """Lay out DIR for a sandbox run; a given config file becomes its cloud-config.yml."""
    paths = Paths.sandbox(directory)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (directory / "root").mkdir(exist_ok=True)
    paths.cmdline_file.write_text(cmdline + "\n")
    if config is not None:
        shutil.copyfile(config, paths.config_dir / "cloud-config.yml")
    return paths


def argv(directory: Path, emergency_shell: str | None = None, python: str = sys.executable) -> list[str]:
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    env = shutil.which("env") or "/usr/bin/env"  # PID 1's allocator settings (supervisor.allocator)
    settings = [f"{key}={value}" for key, value in allocator.ENV.items()]
    cmd = [unshare, *NAMESPACES, "--", env, *settings, python, "-m", "supervisor", "--sandbox",
           str(directory)]
    if emergency_shell is not None:
        cmd += ["--emergency-shell", emergency_shell]
    return cmd


def wait_ready(paths: Paths, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Wait until the control socket exists (the supervisor serves it once handlers are up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paths.control_socket.exists():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def main_sandbox(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("corral: sandbox needs root (it makes namespaces and mounts)", file=sys.stderr)
        return 1
    directory = Path(args.dir).resolve()
    config = Path(args.config) if args.config else None
    if config is not None and not config.is_file():
        print(f"corral: {config}: no such config file", file=sys.stderr)
        return 1
    paths = prepare(directory, config, args.cmdline or "")
    cmd = argv(directory, getattr(args, "emergency_shell", None))
    if not getattr(args, "detach", False):
        print(f"corral sandbox in {directory}; in another shell: export CORRAL_SOCKET={paths.control_socket}",
              file=sys.stderr)
        print("Ctrl-C shuts it down cleanly.", file=sys.stderr)
        os.execv(cmd[0], cmd)
    log_path = directory / "console.log"
    with open(log_path, "ab") as console:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                start_new_session=True)
    if not wait_ready(paths, 60, proc):
        print(f"corral: sandbox did not become ready; see {log_path}", file=sys.stderr)
        return 1
    print(f"CORRAL_SOCKET={paths.control_socket}")
    print(f"pid={proc.pid} console={log_path}")
    return 0
