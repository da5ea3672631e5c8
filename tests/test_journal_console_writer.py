"""The console writer: emitting never waits for a slow (or stuck) console; bounded; drained on demand."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading

import pytest

from supervisor.journal import Journal
from supervisor.journal.console_writer import ConsoleWriter


class StuckConsole(io.StringIO):
    """A console whose writes block until ``release`` (a full UART buffer), or fail when ``broken``."""

    def __init__(self) -> None:
        super().__init__()
        self.open = threading.Event()
        self.broken = False

    def write(self, s: str) -> int:
        self.open.wait()
        if self.broken:
            raise OSError(5, "Input/output error")
        return super().write(s)


def test_writes_queue_while_the_console_is_stuck_and_come_out_in_order() -> None:
    console = StuckConsole()
    writer = ConsoleWriter(console)
    for i in range(100):
        writer.write(f"line {i}\n")  # would block for good if it wrote itself
    assert writer.pending == 100
    assert not writer.drain(0.05)
    console.open.set()
    assert writer.drain(10)
    assert console.getvalue() == "".join(f"line {i}\n" for i in range(100))
    assert writer.pending == 0


def test_bounded_lines_beyond_the_limit_are_dropped_and_counted_then_said() -> None:
    console = StuckConsole()
    writer = ConsoleWriter(console, limit=3)
    for i in range(10):
        writer.write(f"line {i}\n")
    # one line may already be in the thread's hands; the queue holds at most 3 more
    assert 6 <= writer.dropped_total <= 7
    console.open.set()
    assert writer.drain(10)
    writer.write("after\n")
    assert writer.drain(10)
    lines = console.getvalue().splitlines()
    assert lines[0] == "line 0" and lines[-1] == "after"
    # each notice counts the lines dropped since the one before (the thread may free a slot midway)
    notices = [line for line in lines if line.startswith("corral: ")]
    said = " console lines dropped (the console was too slow; the journal has them)"
    assert notices and all(n.endswith(said) for n in notices)
    assert sum(int(n.split()[1]) for n in notices) == writer.dropped_total
    assert len(lines) == 10 - writer.dropped_total + len(notices) + 1
    with pytest.raises(ValueError):
        ConsoleWriter(console, limit=0)


def test_a_broken_console_loses_lines_not_the_writer() -> None:
    console = StuckConsole()
    console.open.set()
    console.broken = True
    writer = ConsoleWriter(console)
    writer.write("lost\n")
    assert writer.drain(10)
    console.broken = False
    writer.write("seen\n")
    assert writer.drain(10)
    assert console.getvalue() == "seen\n"


def test_journal_with_a_console_thread_emits_at_once_and_drains_on_close() -> None:
    console = StuckConsole()
    journal = Journal(console=console, console_format="plain", console_thread=True)
    journal.log("hello", unit="u")
    journal.log("world", level="warning")
    assert journal.query()[-1]["event"] == "world"  # stored although the console is stuck
    assert not journal.drain_console(0.05)
    console.open.set()
    journal.close()
    out = console.getvalue()
    assert "hello" in out and "unit=u" in out and out.index("hello") < out.index("world")


def test_journal_without_a_console_thread_writes_synchronously() -> None:
    console = io.StringIO()
    journal = Journal(console=console, console_format="plain")
    journal.log("now")
    assert "now" in console.getvalue()
    assert journal.drain_console(0)


SCRIPT = textwrap.dedent("""
    import sys
    from supervisor import journal as journal_mod

    journal = journal_mod.setup(console=sys.stderr, console_format="plain", console_thread=True)
    for i in range(5000):  # about 1 MiB: far more than a pipe holds
        journal.log("a line for a console nobody reads", i=i, padding="x" * 150)
    print("emitted", flush=True)
    sys.stdout.close()
    journal.drain_console(0.1)  # gives up: nobody reads the console
""")


def test_pid1_journal_does_not_block_on_a_console_nobody_reads() -> None:
    """PID 1's setup: stderr is a pipe nobody drains (a stuck serial line). Without the console thread the
    64 KiB pipe fills and emitting blocks for good; with it, every record is emitted."""
    with subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout is not None
            line = _readline(proc.stdout, timeout=60)
        finally:
            proc.kill()
    assert line == "emitted\n"


def _readline(stream: io.TextIOBase | object, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)  # type: ignore[attr-defined]
    reader.start()
    reader.join(timeout)
    return result[0] if result else "<nothing: emitting blocked>"
