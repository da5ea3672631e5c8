"""osdisk/grubenv.py against the real grub-editenv (grub-common): what one writes the other reads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from osdisk import grubenv

EDITENV = shutil.which("grub-editenv")
needs_editenv = pytest.mark.skipif(EDITENV is None, reason="grub-editenv (grub-common) not installed")


def _editenv(path: Path, *args: str) -> str:
    assert EDITENV is not None
    return subprocess.run([EDITENV, str(path), *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout


@needs_editenv
def test_a_block_grub_editenv_wrote_is_read(tmp_path: Path) -> None:
    env = tmp_path / "grubenv"
    _editenv(env, "create")
    _editenv(env, "set", "default_slot=B", "trial_slot=", "trial_version=1.2.3")
    _editenv(env, "set", "odd=back\\slash\nnew line")
    assert grubenv.read(env) == {"default_slot": "B", "trial_slot": "", "trial_version": "1.2.3",
                                 "odd": "back\\slash\nnew line"}


@needs_editenv
def test_the_block_written_is_byte_for_byte_grub_editenvs(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    values = {"default_slot": "A", "trial_pending": "B", "odd": "a\\b\nc"}
    grubenv.write(ours, values)
    _editenv(theirs, "create")
    for name, value in values.items():
        _editenv(theirs, "set", f"{name}={value}")
    assert ours.read_bytes() == theirs.read_bytes()
    assert len(ours.read_bytes()) == grubenv.SIZE
    listed = _editenv(ours, "list")
    assert listed == "default_slot=A\ntrial_pending=B\nodd=a\\b\nc\n"


@needs_editenv
def test_update_keeps_the_others_in_order_and_grub_editenv_agrees(tmp_path: Path) -> None:
    env = tmp_path / "grubenv"
    _editenv(env, "create")
    _editenv(env, "set", "default_slot=A", "trial_slot=B", "keep=me")
    grubenv.update(env, {"trial_slot": None, "default_slot": "B", "trial_pending": "B"})
    assert _editenv(env, "list") == "default_slot=B\nkeep=me\ntrial_pending=B\n"


def test_update_of_a_missing_file_makes_a_block(tmp_path: Path) -> None:
    env = tmp_path / "grubenv"
    assert grubenv.update(env, {"default_slot": "A"}) == {"default_slot": "A"}
    assert grubenv.read(env) == {"default_slot": "A"}


def test_not_a_block_is_refused_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "grubenv"
    bad.write_bytes(b"default_slot=A\n")
    with pytest.raises(grubenv.EnvBlockError, match=f"{bad}: not a GRUB environment block"):
        grubenv.read(bad)
    short = grubenv.render({"a": "b"})[:100]
    with pytest.raises(grubenv.EnvBlockError, match="100 bytes"):
        grubenv.parse(short)


def test_too_much_for_the_block_or_a_bad_name_is_refused() -> None:
    with pytest.raises(grubenv.EnvBlockError, match="more than the block"):
        grubenv.render({"big": "x" * 1000})
    with pytest.raises(grubenv.EnvBlockError, match="not a variable name"):
        grubenv.render({"a=b": "c"})
