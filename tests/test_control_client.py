"""The blocking client (the CLI's): Ctrl-C ends a wait for the supervisor at once, whenever it comes.

`corral logs -f` once went on for more than 10 s after SIGINT: a signal that arrives after Python last
looked for signals and before ``recv`` starts does not interrupt the ``recv``, so the KeyboardInterrupt
waited for the next record. A signal raised in another thread is handled the same way (the C handler
runs, the main thread's ``recv`` is not interrupted), which makes that window reproducible here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.control import client

REPO = Path(__file__).resolve().parents[1]
RECORD = {"ts": "2024-05-01T12:00:00.000000Z", "level": "info", "logger": "x", "event": "first"}


class QuietSupervisor:
    """Answers one streaming request with ``items``, then says nothing until ``release`` (or 30 s)."""

    def __init__(self, path: Path, items: list[object]) -> None:
        self.path = path
        self.items = items
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.sent_header = threading.Event()
        self.release = threading.Event()
        self.said_more = False
        self.request: dict[str, object] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            self.request = json.loads(lines.readline())
            lines = [{"ok": True, "stream": True}, *({"item": i} for i in self.items)]
            conn.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
            self.sent_header.set()
            self.release.wait(30)
            self.said_more = True
            with contextlib.suppress(OSError):  # the client may be gone
                conn.sendall(b'{"item": "late"}\n{"end": true}\n')

    def close(self) -> None:
        self.release.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="corral-client-"))
    yield directory
    for p in directory.iterdir():
        p.unlink()
    directory.rmdir()


def test_a_signal_handled_just_before_the_wait_still_ends_it(sockdir: Path) -> None:
    assert threading.current_thread() is threading.main_thread()
    quiet = QuietSupervisor(sockdir / "s.sock", [RECORD])

    def interrupt() -> None:
        quiet.sent_header.wait(10)
        time.sleep(0.2)  # let the main thread block waiting for the next line
        signal.raise_signal(signal.SIGINT)  # handled in this thread: the main thread's wait goes on

    items: list[object] = []
    poker = threading.Thread(target=interrupt)
    poker.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            for item in client.SyncClient(quiet.path).stream("logs", follow=True):
                items.append(item)
        assert not quiet.said_more  # ended by the signal, not by the supervisor's next line
    finally:
        poker.join(10)
        quiet.close()
    assert items == [RECORD]
    assert signal.set_wakeup_fd(-1) == -1  # the wakeup fd was given back


def test_signal_wakeup_restores_the_previous_fd_and_is_off_in_threads() -> None:
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        signal.set_wakeup_fd(w)
        with client.SignalWakeup() as wakeup:
            assert wakeup.fd is not None and wakeup._write_fd is not None
            assert signal.set_wakeup_fd(wakeup._write_fd) == wakeup._write_fd  # ours while in use
        assert signal.set_wakeup_fd(-1) == w  # then the previous one again
        seen: list[int | None] = []

        def in_thread() -> None:
            with client.SignalWakeup() as other:
                seen.append(other.fd)

        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        assert seen == [None]
    finally:
        os.close(r)
        os.close(w)


def test_lines_longer_than_a_read_and_several_in_one(sockdir: Path) -> None:
    big = {"event": "x" * 300_000}
    quiet = QuietSupervisor(sockdir / "s.sock", [big, RECORD, big])
    try:
        stream = client.SyncClient(quiet.path).stream("logs")
        assert [next(stream), next(stream), next(stream)] == [big, RECORD, big]
        quiet.release.set()
        assert list(stream) == ["late"]
    finally:
        quiet.close()


@pytest.mark.parametrize("follow", [True, False])
def test_ctrl_c_ends_corral_logs_waiting_for_a_record(sockdir: Path, follow: bool) -> None:
    """The real CLI in a process of its own, SIGINT while it waits for the next record: exit code 130,
    before the supervisor says anything more."""
    quiet = QuietSupervisor(sockdir / "s.sock", [RECORD])
    argv = [sys.executable, "-m", "supervisor.cli", "--socket", str(quiet.path), "logs", "-o", "json"]
    with subprocess.Popen([*argv, *(["-f"] if follow else [])], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert json.loads(proc.stdout.readline()) == RECORD  # printed: now it waits
            proc.send_signal(signal.SIGINT)
            assert proc.wait(20) == 130
            assert not quiet.said_more
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
            quiet.close()
    args = quiet.request["args"]
    assert isinstance(args, dict) and args["follow"] is follow
