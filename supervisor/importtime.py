"""``python3 -X importtime -m supervisor.importtime``: PID 1 with the interpreter's import report kept
apart from its console. For measurement only, never by default: image/init starts PID 1 this way when the
kernel command line has ``corral_importtime=FILE`` (``bench/boot_timeline.py --importtime`` gives
``/dev/ttyS1``, a second serial port that QEMU writes to a file on the host).

init starts it with fd 2 on FILE (``-X importtime`` writes to C's stderr, from the interpreter's first
import on) and fd 3 on the console. Here Python's ``sys.stderr`` (the journal's console, the last
resort's message) goes back to the console and fd 3 is closed (its copy is not inheritable, so no child
gets it); the rest is ``python3 -m supervisor``. The report is written as the imports happen, so a
boot's first seconds are in it whatever comes later."""

from __future__ import annotations

import os
import sys

CONSOLE_FD = 3
"""The console, as image/init hands it over (``3>&2 2>FILE``)."""


def divert(console_fd: int = CONSOLE_FD) -> None:
    """``sys.stderr`` on a private copy of ``console_fd`` (which is closed); fd 2 keeps the report."""
    console = os.dup(console_fd)
    os.close(console_fd)
    sys.stderr = open(console, "w", buffering=1, encoding=sys.stderr.encoding,  # noqa: SIM115 (for life)
                      errors="backslashreplace")


def main() -> None:
    divert()
    from supervisor.__main__ import main as pid1

    pid1()


if __name__ == "__main__":
    main()
