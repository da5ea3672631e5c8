"""corral install's judgement of a disk (osdisk/install.py): pure, with a fake /sys/class/block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osdisk import install
from osdisk.install import DeviceFacts, InstallError


class FakeTools:
    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], stdin: bytes | None = None, timeout: float | None = None) -> str:
        self.calls.append(argv)
        return self.answers.get(argv[-1], "")


def sys_block(root: Path) -> Path:
    block = root / "sys"
    for name, dev, part in (("vdb", "254:16", False), ("vdb1", "254:17", True), ("vdb2", "254:18", True),
                            ("vdc", "254:32", False)):
        d = block / name
        d.mkdir(parents=True)
        (d / "dev").write_text(dev + "\n")
        if part:
            (d / "partition").write_text("1\n")
            (block / "vdb" / name).mkdir(parents=True)
            (block / "vdb" / name / "partition").write_text("1\n")
    return block


MOUNTINFO = ("24 1 0:6 / /dev rw - devtmpfs devtmpfs rw\n"
             "40 24 254:18 / /mnt/data rw,relatime - ext4 /dev/vdb2 rw\n")
EXT4 = json.dumps({"signatures": [{"device": "vdb2", "offset": "0x438", "type": "ext4", "label": "data"}]})
GPT = json.dumps({"signatures": [{"device": "vdb", "offset": "0x200", "type": "gpt", "label": None}]})


def test_a_blank_disk_has_no_refusal(tmp_path: Path) -> None:
    facts = install.inspect("/dev/vdc", FakeTools({}), mountinfo=MOUNTINFO, swaps="",  # type: ignore[arg-type]
                            sys_block=sys_block(tmp_path))
    assert install.refusals(facts) == []


def test_mounted_partitions_swap_and_signatures_are_named(tmp_path: Path) -> None:
    tools = FakeTools({"/dev/vdb": GPT, "/dev/vdb2": EXT4})
    swaps = "Filename Type Size Used Priority\n/dev/vdb1 partition 1024 0 -2\n"
    facts = install.inspect("/dev/vdb", tools, mountinfo=MOUNTINFO, swaps=swaps,  # type: ignore[arg-type]
                            sys_block=sys_block(tmp_path))
    assert install.refusals(facts) == [
        "vdb2 is mounted on /mnt/data",
        "vdb1 is swap",
        "vdb: gpt partition table at offset 0x200",
        "vdb2: ext4 labelled 'data' at offset 0x438",
    ]
    assert ["wipefs", "--no-act", "--json", "/dev/vdb1"] in tools.calls  # every partition is looked at


def test_a_partition_or_no_device_is_refused_even_with_force(tmp_path: Path) -> None:
    block = sys_block(tmp_path)
    with pytest.raises(InstallError, match="is a partition: give the whole disk"):
        install.inspect("/dev/vdb1", FakeTools({}), mountinfo="", swaps="", sys_block=block)  # type: ignore[arg-type]
    with pytest.raises(InstallError, match="not a block device"):
        install.inspect("/dev/nope", FakeTools({}), mountinfo="", swaps="", sys_block=block)  # type: ignore[arg-type]


def test_refusals_list_in_use_first() -> None:
    facts = DeviceFacts("/dev/sda", signatures=("sda: dos partition table at offset 0x1fe",),
                        in_use=("sda1 is mounted on /",))
    assert install.refusals(facts) == ["sda1 is mounted on /", "sda: dos partition table at offset 0x1fe"]
