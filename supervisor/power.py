"""The very last step: reboot(2). Only PID 1 on a real host gets here; the sandbox exits instead."""

from __future__ import annotations

import ctypes
import os

from supervisor import clib

RB_AUTOBOOT = 0x01234567
RB_HALT_SYSTEM = 0xCDEF0123
RB_POWER_OFF = 0x4321FEDC

COMMANDS = {"reboot": RB_AUTOBOOT, "halt": RB_HALT_SYSTEM, "poweroff": RB_POWER_OFF}


def reboot_syscall(action: str) -> None:
    """Never returns on success."""
    libc = clib.libc()
    os.sync()
    if libc.reboot(ctypes.c_int(COMMANDS[action])) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"reboot({action}): {os.strerror(err)}")
