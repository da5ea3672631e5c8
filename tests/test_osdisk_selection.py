"""osdisk/selection.py: the boot selection's pure decisions (what a boot is, what each step writes)."""

from __future__ import annotations

import pytest

from osdisk import selection
from osdisk.selection import BootEnv, BootKind, TrialStep


def test_slot_of_cmdline() -> None:
    assert selection.slot_of_cmdline("console=ttyS0 corral.slot=B panic=10") == "B"
    assert selection.slot_of_cmdline("corral.slot=A corral.slot=B") == "B"
    assert selection.slot_of_cmdline("console=ttyS0") is None
    assert selection.slot_of_cmdline("corral.slot=C") is None


def test_the_env_is_read_as_grub_reads_it() -> None:
    env = BootEnv.of({"default_slot": "x", "trial_slot": "C", "trial_pending": "B"})
    assert (env.default_slot, env.trial_slot, env.trial_pending) == ("A", "", "B")
    assert BootEnv.of({"default_slot": "B"}).next_slot() == "B"
    assert BootEnv.of({"default_slot": "B", "trial_slot": "A"}).next_slot() == "A"


def test_classify_each_kind_of_boot() -> None:
    assert selection.classify(None, BootEnv(trial_pending="B")).kind is BootKind.NOT_INSTALLED
    assert selection.classify("A", BootEnv()).kind is BootKind.NORMAL
    trial = selection.classify("B", BootEnv(trial_pending="B", trial_version="2.0"))
    assert (trial.kind, trial.slot, trial.version) == (BootKind.TRIAL, "B", "2.0")
    back = selection.classify("A", BootEnv(trial_pending="B", trial_version="2.0", trial_reason="late",
                                           trial_boot="abc"))
    assert (back.kind, back.failed_slot, back.version, back.reason, back.failed_boot) == \
        (BootKind.ROLLED_BACK, "B", "2.0", "late", "abc")
    silent = selection.classify("A", BootEnv(trial_pending="B"))
    assert silent.reason == selection.NO_REPORT  # PID 1 of the trial never got to say why


def test_next_once_and_mark_good_and_report() -> None:
    assert selection.next_once("B", "2.0") == {"trial_slot": "B", "trial_version": "2.0",
                                               "trial_reason": None, "trial_boot": None}
    with pytest.raises(selection.SelectionError, match="one of A, B"):
        selection.next_once("C", "2.0")
    good = selection.mark_good("B")
    assert good["default_slot"] == "B" and good["trial_pending"] == ""
    assert good["trial_version"] is None and good["trial_reason"] is None
    assert selection.reported()["trial_pending"] == ""
    assert "default_slot" not in selection.reported()  # the fallback keeps the default as it is
    assert selection.give_up("a\nb")["trial_reason"] == "a b"


def test_rollback_makes_the_other_slot_the_default_and_cancels_a_boot_once() -> None:
    target, changes = selection.rollback(BootEnv(default_slot="B"), "B", {"A": True, "B": True})
    assert target == "A" and changes == {"default_slot": "A", "trial_slot": ""}
    # on a trial boot of B (default still A), rollback means A: the other of the running slot
    target, _ = selection.rollback(BootEnv(default_slot="A", trial_pending="B"), "B", {"A": True})
    assert target == "A"
    with pytest.raises(selection.SelectionError, match="slot B holds no complete version"):
        selection.rollback(BootEnv(), "A", {"A": True, "B": False})
    target, _ = selection.rollback(BootEnv(default_slot="B"), None, {"A": True})  # not booted from a slot
    assert target == "A"


def test_trial_step() -> None:
    assert selection.trial_step(False, 10, 600) is TrialStep.WAIT
    assert selection.trial_step(True, 10, 600) is TrialStep.GOOD
    assert selection.trial_step(False, 600, 600) is TrialStep.EXPIRED
