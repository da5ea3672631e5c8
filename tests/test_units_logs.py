"""The units' output in the journal (units/logs.py): dockerd's timestamps on each line."""

from __future__ import annotations

from units.logs import parse_timestamp


def test_parse_log_timestamps() -> None:
    assert parse_timestamp("2024-05-01T12:00:00.123456789Z hello world") == (
        1714564800123456789, "hello world")
    assert parse_timestamp("2024-05-01T12:00:00Z x") == (1714564800000000000, "x")
    assert parse_timestamp("no stamp here") == (None, "no stamp here")
