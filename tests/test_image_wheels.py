"""image.wheels: the Python lock pins, moves a pin the index no longer serves, and --frozen refuses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from image.debs import DebsError, PinsGone, request_hash
from image.wheels import Fetcher, format_lock, parse_lock, pin, wheel_path

SERVED = {"structlog": {"26.1.0", "25.4.0"}, "PyYAML": {"6.0.4"}}
VENV = {"structlog": "26.1.0", "PyYAML": "6.0.4"}


def _index(calls: list[list[str]]) -> Fetcher:
    """A stand-in for ``pip download``: writes a wheel file for every pin the index serves."""
    def download(pins: Sequence[str], cache: Path) -> str | None:
        calls.append(list(pins))
        bad = [p for p in pins if p.split("==")[1] not in SERVED[p.split("==")[0]]]
        if bad:
            return f"ERROR: No matching distribution found for {bad[0]}"
        for p in pins:
            name, version = p.split("==")
            (cache / f"{name.lower()}-{version}-py3-none-any.whl").write_text("")
        return None
    return download


def test_lock_round_trip_and_errors_name_the_line() -> None:
    text = format_lock({"structlog": "26.1.0", "PyYAML": "6.0.4"}, "abc")
    assert text.splitlines()[2:] == ["PyYAML==6.0.4", "structlog==26.1.0"]
    assert parse_lock(text) == ("abc", {"PyYAML": "6.0.4", "structlog": "26.1.0"})
    with pytest.raises(DebsError, match=r"python.lock: line 1: expected 'name==version'"):
        parse_lock("structlog>=1\n")


def test_pins_come_from_the_venv_and_wheels_are_cached(tmp_path: Path) -> None:
    lock, cache, calls = tmp_path / "python.lock", tmp_path / "wheels", []
    pins, moves = pin(["structlog", "PyYAML"], lock, cache=cache, download=_index(calls),
                      installed=VENV.get)
    assert pins == VENV and lock.exists()
    assert [str(m) for m in moves] == ["PyYAML (new) -> 6.0.4", "structlog (new) -> 26.1.0"]
    assert wheel_path(cache, "PyYAML", "6.0.4") is not None
    calls.clear()
    assert pin(["structlog", "PyYAML"], lock, cache=cache, download=_index(calls),
               installed=VENV.get) == (VENV, [])
    assert calls == []  # offline once cached


def test_a_pin_the_index_dropped_moves_to_the_venv_version(tmp_path: Path) -> None:
    lock, cache = tmp_path / "python.lock", tmp_path / "wheels"
    names = ["structlog", "PyYAML"]
    lock.write_text(format_lock({"structlog": "0.0.1", "PyYAML": "6.0.4"}, request_hash(names)))
    _, moves = pin(names, lock, cache=cache, download=_index([]), installed=VENV.get)
    assert [str(m) for m in moves] == ["structlog 0.0.1 -> 26.1.0"]
    assert parse_lock(lock.read_text())[1] == {"structlog": "26.1.0", "PyYAML": "6.0.4"}


def test_frozen_names_the_dropped_pin_and_keeps_the_lock(tmp_path: Path) -> None:
    lock, cache = tmp_path / "python.lock", tmp_path / "wheels"
    names = ["structlog", "PyYAML"]
    text = format_lock({"structlog": "0.0.1", "PyYAML": "6.0.4"}, request_hash(names))
    lock.write_text(text)
    with pytest.raises(PinsGone, match=r"structlog==0\.0\.1"):
        pin(names, lock, frozen=True, cache=cache, download=_index([]), installed=VENV.get)
    assert lock.read_text() == text
