"""The installed disk's ``grub.cfg`` (a pure function of the kernel command line; install writes it to
the ESP's ``/grub/grub.cfg``).

At each boot GRUB reads its environment block (``/grub/grubenv`` on the partition labelled
``CORRAL_EFI``, osdisk/grubenv.py) and picks the slot:

* ``trial_slot`` is A or B (``corral os upgrade`` set it): boot that slot **once**: before booting it,
  ``trial_slot`` is cleared and ``trial_pending`` set to the slot and saved (when the save fails the
  trial is not booted at all: a trial that could repeat forever is worse than none);
* else ``default_slot`` (A unless it says B).

The slot's partition is found by its filesystem label (``CORRAL_A``/``CORRAL_B``). The kernel gets
``corral.slot=<slot>`` (PID 1 reads it to know a trial boot from a fallback), ``corral.trial=1`` on the
trial's boot only (PID 1 arms the watchdog as its first act: supervisor/watchdog.py), the console on the
serial port and the screen as image/iso.py gives it, and ``panic=10``: a kernel panic, or PID 1
exiting, reboots after 10 s, and that next boot is ``default_slot`` again. GRUB's menu is on the serial
port and the screen, with an entry per slot to pick one by hand for one boot (nothing is saved).
"""

from __future__ import annotations

SLOTS = ("A", "B")
ESP_LABEL = "CORRAL_EFI"
ENV_PATH = "/grub/grubenv"  # on the ESP
CFG_PATH = "/grub/grub.cfg"  # on the ESP
# image/run.py's BASE_APPEND with console=tty0 first (as image/iso.py): ttyS0 last is /dev/console. The
# QEMU runs' panic=-1 (halt: QEMU ends) becomes panic=10 here (a real machine reboots); a test checks it
# against image/run.py, which is not part of the installed OS.
CONSOLE_APPEND = "console=tty0 console=ttyS0,115200"
PANIC_APPEND = "panic=10"
MENU_TIMEOUT = 1  # seconds
TRIAL_MARKER = "corral.trial=1"  # on the trial's command line only (supervisor/watchdog.py reads it)


def slot_label(slot: str) -> str:
    """The filesystem label of a slot's partition (``CORRAL_A``)."""
    if slot not in SLOTS:
        raise ValueError(f"slot {slot!r}: a slot is one of {', '.join(SLOTS)}")
    return f"CORRAL_{slot}"


def kernel_append(slot: str, extra: str = "", trial: str = "") -> str:
    """The kernel command line of a slot's boot (GRUB expands ``$slot`` in the default entry, and
    ``trial``, ``${trial_arg}`` there: the trial marker on a trial's boot, else nothing)."""
    return " ".join(p for p in (f"corral.slot={slot}", trial, CONSOLE_APPEND, extra.strip(), PANIC_APPEND)
                    if p)


def _entry(title: str, label: str, slot: str, extra: str, trial: str = "") -> str:
    return (
        f'menuentry "{title}" {{\n'
        f"  search --no-floppy --label --set=slotdev {label}\n"
        f"  linux ($slotdev)/vmlinuz {kernel_append(slot, extra, trial)}\n"
        "  initrd ($slotdev)/initrd\n"
        "}\n"
    )


def grub_cfg(extra_append: str = "", timeout: int = MENU_TIMEOUT) -> str:
    """The text of ``grub.cfg``. ``extra_append`` (kernel options of the installation, e.g. from
    ``corral install``) goes on every entry's command line; it must not hold GRUB's quotes or specials."""
    if any(c in extra_append for c in "'\"\n$\\;{}"):
        raise ValueError("extra kernel options must not hold quotes, '$', '\\', ';', braces or a newline")
    env = f"($esp){ENV_PATH}"
    return (
        "# corral installed disk: boot slot A or B (made by osdisk/bootmenu.py; see docs/install.md)\n"
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        f"set timeout={timeout}\n"
        "set default=0\n"
        f"search --no-floppy --label --set=esp {ESP_LABEL}\n"
        "set default_slot=A\n"
        "set trial_slot=\n"
        f"load_env --file {env} default_slot trial_slot trial_pending trial_version\n"
        'if [ "${default_slot}" != "B" ]; then\n'
        "  set default_slot=A\n"
        "fi\n"
        'set slot="${default_slot}"\n'
        'if [ "${trial_slot}" = "A" ]; then\n'
        "  set next=A\n"
        'elif [ "${trial_slot}" = "B" ]; then\n'
        "  set next=B\n"
        "else\n"
        "  set next=\n"
        "fi\n"
        "set trial_arg=\n"
        'if [ -n "${next}" ]; then\n'
        "  set trial_slot=\n"
        '  set trial_pending="${next}"\n'
        f"  if save_env --file {env} trial_slot trial_pending; then\n"
        '    set slot="${next}"\n'
        f'    set trial_arg="{TRIAL_MARKER}"\n'
        "  fi\n"
        "fi\n"
        "export slot\n"
        "export default_slot\n"
        "export trial_arg\n"
        "set fallback=1\n"  # the chosen slot's entry failed (no kernel there): boot the default slot
        + _entry("corral (slot ${slot})", "CORRAL_${slot}", "${slot}", extra_append, "${trial_arg}")
        + _entry("corral (slot ${default_slot}, the default)", "CORRAL_${default_slot}", "${default_slot}",
                 extra_append)
        + "".join(_entry(f"corral slot {s}, this boot only", slot_label(s), s, extra_append) for s in SLOTS)
    )
