"""osdisk/bootmenu.py: the installed disk's grub.cfg, parsed by GRUB's own grub-script-check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from image import run
from osdisk import bootmenu

CHECK = shutil.which("grub-script-check")


@pytest.mark.skipif(CHECK is None, reason="grub-script-check (grub-common) not installed")
@pytest.mark.parametrize("extra", ["", "corral.password=s3cret rancher.debug"])
def test_grub_parses_the_config(tmp_path: Path, extra: str) -> None:
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(bootmenu.grub_cfg(extra))
    assert CHECK is not None
    result = subprocess.run([CHECK, str(cfg)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(CHECK is None, reason="grub-script-check (grub-common) not installed")
def test_grub_script_check_does_fail_on_a_broken_script(tmp_path: Path) -> None:
    cfg = tmp_path / "grub.cfg"  # the check above means something: a missing "fi" is caught
    cfg.write_text(bootmenu.grub_cfg().replace("fi\n", "", 1))
    assert CHECK is not None
    assert subprocess.run([CHECK, str(cfg)], capture_output=True, timeout=30).returncode != 0


def test_the_trial_slot_is_booted_once_and_only_when_saved() -> None:
    cfg = bootmenu.grub_cfg()
    env = "($esp)/grub/grubenv"
    assert "search --no-floppy --label --set=esp CORRAL_EFI\n" in cfg
    assert f"load_env --file {env} default_slot trial_slot trial_pending trial_version\n" in cfg
    # the trial clears itself and records trial_pending before booting, and boots only when that is saved
    save = cfg.index(f"if save_env --file {env} trial_slot trial_pending; then")
    assert cfg.index("  set trial_slot=\n") < save < cfg.index('    set slot="${next}"')
    assert cfg.index('set slot="${default_slot}"') < save


def test_only_the_trial_boot_carries_the_trial_marker() -> None:
    cfg = bootmenu.grub_cfg()
    env = "($esp)/grub/grubenv"
    # set only once the trial's save worked, i.e. only when the first entry boots the trial slot
    save = cfg.index(f"if save_env --file {env} trial_slot trial_pending; then")
    marker = cfg.index('    set trial_arg="corral.trial=1"\n')
    assert cfg.index("set trial_arg=\n") < save < marker < cfg.index("export trial_arg\n")
    assert cfg.count("${trial_arg}") == 1  # the first entry's: not the default's, nor the manual ones
    first = cfg.index('menuentry "corral (slot ${slot})"')
    assert first < cfg.index("${trial_arg}") < cfg.index('menuentry "corral (slot ${default_slot}')
    assert bootmenu.kernel_append("B", trial=bootmenu.TRIAL_MARKER).split()[:2] == \
        ["corral.slot=B", "corral.trial=1"]


def test_every_entry_boots_a_slot_by_label_with_the_slot_on_the_command_line() -> None:
    cfg = bootmenu.grub_cfg("corral.password=x")
    assert "search --no-floppy --label --set=slotdev CORRAL_${slot}\n" in cfg
    assert "linux ($slotdev)/vmlinuz corral.slot=${slot} ${trial_arg} console=tty0 console=ttyS0,115200 " \
           "corral.password=x panic=10\n" in cfg
    for slot in bootmenu.SLOTS:
        assert f"search --no-floppy --label --set=slotdev CORRAL_{slot}\n" in cfg
        assert f"corral.slot={slot} " in cfg
    assert cfg.count("initrd ($slotdev)/initrd\n") == 4
    assert "set fallback=1\n" in cfg and "serial --unit=0 --speed=115200\n" in cfg


def test_the_command_line_is_the_qemu_runs_with_the_screen_and_a_reboot_on_panic() -> None:
    base = [t for t in run.BASE_APPEND.split() if not t.startswith("panic=")]
    assert bootmenu.CONSOLE_APPEND.split() == ["console=tty0", *base]
    assert bootmenu.kernel_append("B").split() == ["corral.slot=B", "console=tty0", *base, "panic=10"]


def test_extra_options_that_would_break_the_script_are_refused() -> None:
    for bad in ("a'b", 'a"b', "a$b", "a\nb", "x;y", "{"):
        with pytest.raises(ValueError, match="must not hold"):
            bootmenu.grub_cfg(bad)
    with pytest.raises(ValueError, match="one of A, B"):
        bootmenu.slot_label("C")
