"""The boot selection of an installed disk, as pure decisions over GRUB's environment block.

The block's keys (docs/install.md, "Upgrade and rollback"):

| key | set by | meaning |
|---|---|---|
| ``default_slot`` | install, PID 1 (a good trial), ``os rollback`` | the slot GRUB boots |
| ``trial_slot`` | ``os upgrade`` (:func:`next_once`) | boot this slot once; GRUB clears it |
| ``trial_pending`` | GRUB, booting the trial | the slot on trial, until marked good or reported |
| ``trial_version`` | ``os upgrade`` | the version on trial (for the report) |
| ``trial_reason`` | PID 1 of the trial, when it gives up | why the trial failed |
| ``trial_boot`` | PID 1 of the trial | its boot id: the journal records kept when it is rolled back |

Each function returns the changes to make (key -> value, None to unset) for ``grubenv.update``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

SLOTS = ("A", "B")
Changes = dict[str, str | None]
NO_REPORT = ("the trial boot never reported: the kernel or PID 1 failed before the state partition was "
             "mounted, or the machine was reset")


class SelectionError(Exception):
    """A change that the slots' state does not allow (the message says why)."""


def other(slot: str) -> str:
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


def slot_of_cmdline(cmdline: str) -> str | None:
    """``corral.slot=X`` of the kernel command line (the last wins), or None (a live or QEMU boot)."""
    found = None
    for word in cmdline.split():
        if word.startswith("corral.slot="):
            found = word.partition("=")[2]
    return found if found in SLOTS else None


@dataclass(frozen=True)
class BootEnv:
    default_slot: str = "A"
    trial_slot: str = ""
    trial_pending: str = ""
    trial_version: str = ""
    trial_reason: str = ""
    trial_boot: str = ""

    @classmethod
    def of(cls, env: Mapping[str, str]) -> BootEnv:
        """As GRUB reads it: a default_slot other than B is A; a trial or pending slot other than A or B
        is none."""
        def slot(key: str) -> str:
            return env.get(key, "") if env.get(key, "") in SLOTS else ""

        return cls(default_slot="B" if env.get("default_slot") == "B" else "A", trial_slot=slot("trial_slot"),
                   trial_pending=slot("trial_pending"), trial_version=env.get("trial_version", ""),
                   trial_reason=env.get("trial_reason", ""), trial_boot=env.get("trial_boot", ""))

    def next_slot(self) -> str:
        """The slot the next boot starts."""
        return self.trial_slot or self.default_slot


def next_once(slot: str, version: str) -> Changes:
    """``os upgrade`` wrote ``version`` into ``slot``: boot it once (the default stays as it is)."""
    if slot not in SLOTS:
        raise SelectionError(f"slot {slot!r}: a slot is one of {', '.join(SLOTS)}")
    return {"trial_slot": slot, "trial_version": version, "trial_reason": None, "trial_boot": None}


def rollback(env: BootEnv, active: str | None, complete: Mapping[str, bool]) -> tuple[str, Changes]:
    """``os rollback``: the slot other than the running one (else than the default) becomes the default,
    and a boot-once not yet taken is cancelled. Refused when that slot holds no complete version."""
    current = active or env.default_slot
    target = other(current)
    if not complete.get(target, False):
        raise SelectionError(f"slot {target} holds no complete version: nothing to roll back to")
    return target, {"default_slot": target, "trial_slot": ""}


class BootKind(enum.Enum):
    NOT_INSTALLED = "not-installed"  # no corral.slot: a live, ISO or QEMU kernel+initrd boot
    NORMAL = "normal"
    TRIAL = "trial"  # this boot is the trial: mark it good at ready, or give up at the limit
    ROLLED_BACK = "rolled-back"  # the trial of the other slot failed: report it, keep its journal


@dataclass(frozen=True)
class BootVerdict:
    kind: BootKind
    slot: str | None = None
    failed_slot: str = ""
    version: str = ""  # the trial's version
    reason: str = ""  # why the trial failed (ROLLED_BACK)
    failed_boot: str = ""  # the failed boot's id, when it said (ROLLED_BACK)


def classify(slot: str | None, env: BootEnv) -> BootVerdict:
    """What this boot is, from ``corral.slot`` and the environment block read early in the boot."""
    if slot is None:
        return BootVerdict(BootKind.NOT_INSTALLED)
    if env.trial_pending == slot:
        return BootVerdict(BootKind.TRIAL, slot, version=env.trial_version)
    if env.trial_pending:
        return BootVerdict(BootKind.ROLLED_BACK, slot, failed_slot=env.trial_pending,
                           version=env.trial_version, reason=env.trial_reason or NO_REPORT,
                           failed_boot=env.trial_boot)
    return BootVerdict(BootKind.NORMAL, slot)


_TRIAL_KEYS: Changes = {"trial_pending": "", "trial_version": None, "trial_reason": None, "trial_boot": None}


def mark_good(slot: str) -> Changes:
    """The trial reached ready with every system unit up: it is the default now."""
    return {"default_slot": slot, **_TRIAL_KEYS}


def trial_started(boot_id: str) -> Changes:
    """The trial's PID 1 says which boot it is (its journal records carry the id)."""
    return {"trial_boot": boot_id}


def give_up(reason: str) -> Changes:
    """The trial ran out of time: why, for the boot of the default slot to report."""
    return {"trial_reason": reason.replace("\n", " ")[:300]}


def reported() -> Changes:
    """The failed trial was reported (status, journal kept): the block forgets it."""
    return dict(_TRIAL_KEYS)


class TrialStep(enum.Enum):
    WAIT = "wait"
    GOOD = "good"
    EXPIRED = "expired"


def trial_step(ready: bool, elapsed: float, limit: float) -> TrialStep:
    """A trial boot's state: good once ready (all system units up) within the limit, expired after it."""
    if ready:
        return TrialStep.GOOD
    return TrialStep.EXPIRED if elapsed >= limit else TrialStep.WAIT
