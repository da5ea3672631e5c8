"""The kernel's softdog for a trial boot (docs/install.md, "A trial boot, and the automatic rollback").

GRUB boots a trial with ``corral.trial=1`` on the kernel command line (osdisk/bootmenu.py). On such a
boot PID 1's first act (:func:`early`, in ``python3 -m supervisor`` before the imports and mounts that
could hang) loads ``softdog`` (through libkmod, in-process: the reaper that spawns children does not run
yet) with a margin of ``MARGIN`` seconds and opens ``/dev/watchdog``. From then on a PID 1 that hangs
-- in its imports, before its loop runs, or with its loop blocked -- stops the pets, and the kernel
reboots the machine ``MARGIN`` seconds later; the next boot is the default slot.

The pets come from PID 1's loop (:meth:`Watchdog.start`, every ``PET_INTERVAL`` s) until ``deadline``:
``EARLY_LIMIT`` after PID 1's start, so a boot whose loop runs but whose early steps never reach the
``slots`` phase stops being petted too. The ``slots`` phase (supervisor/boot/slots.py) takes the same
open watchdog over (:func:`adopt`, :meth:`Watchdog.arm`): the trial's own clock
(``corral.upgrade.trial_timeout``) rules from then on, and the pets go on until the trial is marked
good or cancelled (closed with the magic 'V') or the machine reboots. A boot with the marker that is no
trial after all (GRUB's environment block says so) closes it.

The softdog is a module in Debian's kernel (``CONFIG_SOFT_WATCHDOG=m``): the kernel command line alone
cannot load or arm it before PID 1 runs. A hang in the kernel before PID 1 starts is caught only by a
hardware watchdog. The sandbox never arms one (it shares the host's kernel): ``python3 -m supervisor``
calls :func:`early` only outside it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from osdisk.bootmenu import TRIAL_MARKER

DEVICE = Path("/dev/watchdog")
CMDLINE = Path("/proc/cmdline")
MODULE = "softdog"
MARGIN = 120  # seconds without a pet before the softdog reboots (PID 1's imports under a loaded TCG host)
PET_INTERVAL = 10.0  # seconds between pets
EARLY_LIMIT = 900.0  # seconds from PID 1's start: pets stop unless the slots phase took the watchdog over
CMDLINE_MAX = 65536


def trial_marked(cmdline: str) -> bool:
    """The kernel command line of a trial's boot (GRUB's marker, a word of its own)."""
    return TRIAL_MARKER in cmdline.split()


def load_softdog() -> str:
    """``softdog`` loaded with ``MARGIN`` (blocking): "" when done, else why not."""
    from supervisor import kmod

    return kmod.insert(MODULE, f"soft_margin={MARGIN}")


class Watchdog:
    """``/dev/watchdog`` (``path``, injectable for tests), open only during a trial: pets from the loop
    until ``deadline`` (time.monotonic(); None: no limit); closed with the magic 'V'."""

    def __init__(self, path: Path = DEVICE) -> None:
        self.path = path
        self.fd: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None
        self.notes: list[str] = []  # what the early arming found, journalled once the loop runs

    @property
    def is_open(self) -> bool:
        return self.fd is not None

    def open(self, load: Callable[[], str] = load_softdog) -> str:
        """Load the module and open the device (blocking); "" when open, else why not."""
        why = load()
        if why:
            self.notes.append(f"softdog not loaded: {why}")
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            return f"no watchdog ({self.path}): {exc.strerror or exc}"
        self._write(b"k")
        return ""

    def start(self) -> None:
        """Pet from the running loop (once; nothing when the device is not open)."""
        from supervisor.tasks import spawn_task

        log = _log()
        for note in self.notes:
            log.warning(note)
        self.notes.clear()
        if self.fd is not None and self.task is None:
            if self.deadline is not None:
                left = self.deadline - time.monotonic()
                log.info(f"trial boot: the watchdog reboots unless the slots phase starts within "
                         f"{left:.0f} s", margin=MARGIN)
            self.task = spawn_task(self._pet(), name="watchdog")

    async def arm(self, modprobe: Callable[[], Awaitable[str]]) -> None:
        """The ``slots`` phase's trial: take the open watchdog over (no deadline: the trial's clock rules),
        or, when the early arming did not open it, ``modprobe`` softdog and open it now."""
        self.deadline = None
        if self.fd is None:
            why = await modprobe()
            if why:
                _log().warning(f"softdog not loaded; a hung PID 1 loop will not reboot by itself: {why}")
            try:
                self.fd = await asyncio.to_thread(os.open, self.path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as exc:
                _log().warning("no watchdog; a hung PID 1 loop will not reboot by itself", error=str(exc))
                return
        self.start()

    async def _pet(self) -> None:
        stopped = False
        while self.fd is not None:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                if not stopped:
                    _log().error(f"trial boot: the slots phase did not start within {EARLY_LIMIT:g} s; "
                                 f"the watchdog is no longer petted and reboots in {MARGIN} s")
                    stopped = True
            else:
                self._write(b"k")  # a character device write: it does not wait
            await asyncio.sleep(PET_INTERVAL)

    def _write(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, data)
        except OSError as exc:
            self.notes.append(f"watchdog write failed: {exc}")

    def disarm(self) -> None:
        """Stop the pets and close the device with the magic 'V' (the softdog stops)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.write(fd, b"V")
            finally:
                os.close(fd)


_early: list[Watchdog] = []  # the one early() opened in this process, until the slots phase adopts it


def early(started: float, cmdline: Path = CMDLINE, path: Path = DEVICE,
          load: Callable[[], str] = load_softdog) -> Watchdog | None:
    """PID 1's first act: on a trial's boot (``cmdline`` has the marker) the watchdog, open, to be petted
    from the loop until ``started`` (time.monotonic()) + ``EARLY_LIMIT``; None on any other boot.
    Blocking (the loop does not run yet)."""
    try:
        with cmdline.open("rb") as f:
            text = f.read(CMDLINE_MAX).decode(errors="replace")
    except OSError:
        return None
    if not trial_marked(text):
        return None
    dog = Watchdog(path)
    dog.deadline = started + EARLY_LIMIT
    why = dog.open(load)
    if why:
        dog.notes.append(f"trial boot: {why}; a PID 1 that hangs before the slots phase will not reboot")
    _early[:] = [dog]
    return dog


def adopt() -> Watchdog:
    """The watchdog :func:`early` opened in this process (handed over once), else a new closed one."""
    return _early.pop() if _early else Watchdog()


def _log() -> Any:
    import structlog  # not at the top: early() runs before PID 1 imports anything heavy

    return structlog.get_logger("supervisor.watchdog")
