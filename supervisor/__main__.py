"""``python3 -m supervisor``: corral's PID 1 (the kernel's /init, or the sandbox's PID 1)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor import allocator, lean, watchdog
from supervisor.paths import Paths

if TYPE_CHECKING:
    from supervisor.app import Supervisor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m supervisor", description="corral's PID 1.")
    parser.add_argument("--sandbox", metavar="DIR", type=Path,
                        help="run inside `corral sandbox`: every path under DIR, exit instead of reboot(2)")
    parser.add_argument("--emergency-shell", default="/bin/sh",
                        help="command run on the console when start-up fails (default: /bin/sh)")
    parser.add_argument("--console-format", choices=["auto", "pretty", "json"], default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    allocator.tune()  # before the heap grows (supervisor.allocator)
    lean.setup()  # before anything imports pyroute2 or structlog (supervisor.lean)
    args = parse_args(argv)
    # a trial boot's watchdog, before anything that could hang (the sandbox: never; supervisor/watchdog.py)
    dog = watchdog.early(started) if args.sandbox is None else None
    os.environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if args.sandbox is not None:
        directory = args.sandbox.resolve()
        paths = Paths.sandbox(directory)
        mount_root = directory / "root"
    else:
        paths, mount_root = Paths(), Path("/")
    try:
        action = _serve(args, paths, mount_root, dog)
    except BaseException as exc:  # PID 1 must not exit: the last resort is a shell on the console
        _last_resort(args, f"supervisor crashed: {exc!r}")
        return
    if args.sandbox is not None:
        sys.exit(0)
    from supervisor.power import reboot_syscall

    try:
        reboot_syscall(action)
    except OSError as exc:
        _last_resort(args, str(exc))


def _serve(args: argparse.Namespace, paths: Paths, mount_root: Path,
           dog: watchdog.Watchdog | None) -> str:
    from supervisor import journal as journal_mod
    from supervisor import loopguard
    from supervisor.app import Options, Supervisor
    from supervisor.tasks import loop_exception_handler

    journal = journal_mod.setup(console=sys.stderr, console_format=args.console_format, console_thread=True)
    journal.console_mirror = True  # everything goes to the console while booting
    _raise_fd_limit()
    _check_allocator()
    options = Options(paths=paths, mount_root=mount_root, sandbox=args.sandbox is not None,
                      emergency_shell=tuple(shlex.split(args.emergency_shell)))
    supervisor = Supervisor(options=options, journal=journal)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(loop_exception_handler)
    try:
        with loopguard.from_environment():  # tests: a blocking call on the loop fails loudly
            return loop.run_until_complete(_run(supervisor, dog))
    finally:
        journal.close()


async def _run(supervisor: Supervisor, dog: watchdog.Watchdog | None) -> str:
    if dog is not None:
        dog.start()  # its pets come from the loop
    return await supervisor.run()


def _check_allocator() -> None:
    """Say so when PID 1 was started without ``allocator.ENV`` (then hostile configs grow its memory)."""
    import structlog

    missing = {k: v for k, v in allocator.ENV.items() if os.environ.get(k) != v}
    if missing:
        structlog.get_logger("supervisor").warning(
            "PID 1 started without its allocator settings; memory freed after big config documents may "
            "not go back to the kernel", missing=" ".join(f"{k}={v}" for k, v in missing.items()))


def _raise_fd_limit() -> None:
    """The soft RLIMIT_NOFILE up to the hard one, logged (supervisor.rlimits)."""
    import structlog

    from supervisor.rlimits import raise_nofile

    change = raise_nofile()
    log = structlog.get_logger("supervisor")
    if change.error is not None:
        log.warning("file descriptor limit not raised", soft=change.before, hard=change.hard,
                    error=change.error)
    else:
        log.info("file descriptor limit", soft=change.after, was=change.before, hard=change.hard)


def _last_resort(args: argparse.Namespace, reason: str) -> None:
    sys.stderr.write(f"corral: {reason}\n")
    if args.sandbox is not None:
        sys.exit(1)
    while True:  # real PID 1: hand the console to a shell; exec keeps PID 1 alive
        try:
            os.execv("/bin/sh", ["/bin/sh"])
        except OSError:
            time.sleep(60)


if __name__ == "__main__":
    main()
