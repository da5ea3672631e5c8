"""The state partition decision (pure): found, format (zeroed candidates only), wait, RAM, emergency."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.observe import BlockDevice, FsFacts
from storage.rules import Problems, StateRule, parse_state
from storage.state import (
    CheckZero,
    Emergency,
    Format,
    Found,
    RunFromRAM,
    Wait,
    decide_state,
    is_zeroed,
)


def rule(**raw: object) -> StateRule:
    problems = Problems()
    parsed = parse_state(raw, ("corral", "state"), problems)
    assert parsed is not None, problems.errors
    return parsed


def dev(name: str, *, label: str | None = None, fstype: str | None = None, uuid: str | None = None,
        pttype: str | None = None, fs: FsFacts | bool | None = True, minor: int = 0) -> BlockDevice:
    facts = FsFacts(type=fstype, label=label, uuid=uuid, pttype=pttype) if fs is True else fs or None
    return BlockDevice(name, f"/dev/{name}", 254, minor, 4096, fs=facts)


STATE = dev("vda1", label="CORRAL_STATE", fstype="ext4")
RANCHER = dev("vdb1", label="RANCHER_STATE", fstype="ext4", minor=17)
BLANK = dev("vdc", minor=32)
ROOTISH = dev("vdd", fstype="xfs", label="data", minor=48)


def test_found_by_default_label_corral_first_then_rancher() -> None:
    assert decide_state(StateRule(), [RANCHER, STATE], 0, {}) == Found(STATE, "ext4")
    assert decide_state(StateRule(), [RANCHER, BLANK], 0, {}) == Found(RANCHER, "ext4")
    only_rancher = rule(dev="LABEL=RANCHER_STATE")
    assert decide_state(only_rancher, [STATE], 5, {}) == \
        RunFromRAM("state device LABEL=RANCHER_STATE not found")


def test_found_by_uuid_or_path_with_configured_fstype() -> None:
    by_uuid = dev("sda2", fstype="btrfs", uuid="c0ffee-11")
    assert decide_state(rule(dev="UUID=C0FFEE-11"), [by_uuid], 0, {}) == Found(by_uuid, "btrfs")
    assert decide_state(rule(dev="/dev/vdd", fstype="xfs"), [ROOTISH], 0, {}) == Found(ROOTISH, "xfs")


def test_zeroed_candidate_is_checked_then_formatted() -> None:
    r = rule(autoformat=["/dev/vdc"])
    assert decide_state(r, [BLANK], 0, {}) == CheckZero("/dev/vdc")
    assert decide_state(r, [BLANK], 0, {"/dev/vdc": True}) == Format("/dev/vdc", "CORRAL_STATE")
    formatted = dev("vdc", label="CORRAL_STATE", fstype="ext4", minor=32)
    assert decide_state(r, [formatted], 0, {"/dev/vdc": True}, formatted="/dev/vdc") == \
        Found(formatted, "ext4", formatted=True)
    assert decide_state(rule(dev="LABEL=MINE", autoformat=["/dev/vdc"]), [BLANK], 0, {"/dev/vdc": True}) == \
        Format("/dev/vdc", "MINE")


def test_formatted_device_is_used_even_when_dev_is_a_uuid() -> None:
    r = rule(dev="UUID=not-this-one", autoformat=["/dev/vdc"])
    formatted = dev("vdc", label="CORRAL_STATE", fstype="ext4", uuid="new", minor=32)
    assert decide_state(r, [formatted], 0, {}, formatted="/dev/vdc") == \
        Found(formatted, "ext4", formatted=True)


@pytest.mark.parametrize(("device", "why"), [
    (dev("vdc", fstype="ext4", label="data", minor=32), "/dev/vdc has a filesystem (ext4); not formatted"),
    (dev("vdc", pttype="gpt", minor=32), "/dev/vdc has a partition table (gpt); not formatted"),
    (dev("vdc", fs=FsFacts(ambivalent=True), minor=32), "/dev/vdc has several signatures; not formatted"),
    (dev("vdc", fs=None, minor=32), "/dev/vdc could not be probed; not formatted"),
])
def test_data_is_never_formatted(device: BlockDevice, why: str) -> None:
    r = rule(autoformat=["/dev/vdc"], required=True, wait=0)
    decision = decide_state(r, [device], 0, {"/dev/vdc": True})
    assert isinstance(decision, Emergency)
    assert why in decision.reason


def test_nonzero_first_mib_is_never_formatted() -> None:
    r = rule(autoformat=["/dev/vdc"])
    decision = decide_state(r, [BLANK], 0, {"/dev/vdc": False})
    assert decision == RunFromRAM("state device LABEL=CORRAL_STATE (or LABEL=RANCHER_STATE) not found; "
                                  "/dev/vdc has data in its first MiB; not formatted")


def test_second_candidate_when_first_has_data_and_failed_mkfs_is_not_retried() -> None:
    other = dev("vde", minor=64)
    r = rule(autoformat=["/dev/vdc", "/dev/vde"])
    assert decide_state(r, [BLANK, other], 0, {"/dev/vdc": False}) == CheckZero("/dev/vde")
    assert decide_state(r, [BLANK, other], 0, {"/dev/vdc": False, "/dev/vde": True}) == \
        Format("/dev/vde", "CORRAL_STATE")
    d = decide_state(r, [BLANK, other], 0, {"/dev/vdc": False, "/dev/vde": True},
                     format_failed={"/dev/vde": "mkfs exit 1"})
    assert isinstance(d, RunFromRAM) and "/dev/vde: mkfs failed (mkfs exit 1)" in d.reason


def test_wait_then_ram_or_emergency() -> None:
    r = rule(wait=10)
    assert decide_state(r, [ROOTISH], 3, {}) == Wait(7)
    assert decide_state(r, [ROOTISH], 10, {}) == RunFromRAM(
        "state device LABEL=CORRAL_STATE (or LABEL=RANCHER_STATE) not found after 10 s")
    required = rule(required=True, autoformat=["/dev/vdx"])
    assert required.wait == 10
    assert decide_state(required, [], 2, {}) == Wait(8)
    decision = decide_state(required, [], 10, {})
    assert decision == Emergency("corral.state is required: state device LABEL=CORRAL_STATE (or "
                                 "LABEL=RANCHER_STATE) not found after 10 s; /dev/vdx absent")


def test_labelled_device_without_filesystem_type_is_refused() -> None:
    odd = dev("vdf", fs=FsFacts(label="CORRAL_STATE"), minor=80)
    decision = decide_state(rule(required=True, wait=0), [odd], 0, {})
    assert isinstance(decision, Emergency) and "/dev/vdf has no filesystem" in decision.reason


def test_is_zeroed_reads_the_first_mib(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(4 << 20)
    assert is_zeroed(str(image))
    with open(image, "r+b") as f:
        f.seek((1 << 20) + 10)  # beyond the first MiB: still "zeroed"
        f.write(b"x")
    assert is_zeroed(str(image))
    with open(image, "r+b") as f:
        f.seek((1 << 20) - 1)
        f.write(b"x")
    assert not is_zeroed(str(image))
    small = tmp_path / "small.img"
    small.write_bytes(bytes(1000))
    assert is_zeroed(str(small))
