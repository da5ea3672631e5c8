"""Console rendering: plain when not a TTY, JSON for machines, colours on a TTY; mirror until ready."""

from __future__ import annotations

import io
import json

import structlog

from supervisor.journal import reset, setup


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_when_not_a_tty() -> None:
    out = io.StringIO()
    setup(console=out)
    try:
        log = structlog.get_logger("supervisor.net").bind(unit="net")
        log.info("link up", iface="eth0", note="two words")
    finally:
        reset()
    line = out.getvalue().rstrip("\n")
    ts, rest = line.split(" ", 1)
    assert ts.endswith("Z")
    assert rest == 'info    [supervisor.net] link up unit=net iface=eth0 note="two words"'
    assert "\x1b[" not in line


def test_plain_traceback_indented() -> None:
    out = io.StringIO()
    setup(console=out, console_format="plain")
    try:
        try:
            raise KeyError("boom")
        except KeyError:
            structlog.get_logger("x").exception("failed")
    finally:
        reset()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("error   [x] failed")
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-1] == "    KeyError: 'boom'"


def test_json_format() -> None:
    out = io.StringIO()
    setup(console=out, console_format="json")
    try:
        structlog.get_logger("supervisor.dev").bind(unit="devices").warning("disk added", dev="/dev/sdb")
    finally:
        reset()
    record = json.loads(out.getvalue())
    assert record["event"] == "disk added"
    assert record["level"] == "warning"
    assert record["logger"] == "supervisor.dev"
    assert record["unit"] == "devices" and record["dev"] == "/dev/sdb"


def test_pretty_on_a_tty() -> None:
    out = FakeTTY()
    setup(console=out)
    try:
        structlog.get_logger("supervisor.net").error("link down", iface="eth0")
    finally:
        reset()
    text = out.getvalue()
    assert "\x1b[" in text
    assert "link down" in text and "eth0" in text


def test_mirror_only_warnings_after_ready() -> None:
    out = io.StringIO()
    journal = setup(console=out, console_format="json")
    try:
        log = structlog.get_logger("supervisor")
        log.info("booting")
        journal.console_mirror = False
        log.info("ready and quiet")
        log.warning("still shown")
    finally:
        reset()
    shown = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert shown == ["booting", "still shown"]
    assert [r["event"] for r in journal.query()] == ["booting", "ready and quiet", "still shown"]


def test_childrens_output_reaches_the_console_only_from_warning_up() -> None:
    """A serial console at 115200 baud drains ~11 KB/s: dockerd's start-up chatter mirrored line by line
    held the boot back. It stays in the journal (corral logs -u NAME)."""
    out = io.StringIO()
    journal = setup(console=out, console_format="json")
    try:
        journal.log("loading plugin", logger="dockerd", unit="system-docker", stream="stderr")
        journal.log("IPSEC modules missing", level="warning", logger="dockerd", unit="system-docker",
                    stream="stderr")
        structlog.get_logger("supervisor").info("boot phase done", phase="units")
    finally:
        reset()
    shown = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert shown == ["IPSEC modules missing", "boot phase done"]
    assert len(journal.query()) == 3


def test_no_console() -> None:
    journal = setup(console=None)
    try:
        structlog.get_logger("x").error("only in the journal")
        assert [r["event"] for r in journal.query()] == ["only in the journal"]
    finally:
        reset()
