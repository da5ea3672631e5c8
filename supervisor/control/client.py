"""Clients of the control socket: asyncio functions, and a blocking ``SyncClient`` for the CLI.

Every failure is a ``ControlError`` (the supervisor refused the command) or its subclass
``ControlUnavailable`` (the supervisor could not be reached, refused the connection, or broke the
protocol); the reason is one line for a person.

A busy supervisor is retried, with a backoff (``retry_delays``) for as long as the client's timeout
(``DEFAULT_TIMEOUT`` when it has none): a connect that fails with EAGAIN (the listen backlog is full;
connect on a unix socket never waits for room) and a reply with code ``busy`` (the server was at its
connection limit and closed the connection unread, so the command did not run). ECONNREFUSED is not
retried: on a unix socket it means nobody listens (a stale socket file), not a full queue."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import random
import select
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from supervisor.backoff import Backoff
from supervisor.control import protocol
from supervisor.control.protocol import ControlError, ControlUnavailable

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "ControlError",
    "ControlUnavailable",
    "SyncClient",
    "request",
    "request_sync",
    "stream",
    "stream_sync",
]

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
RETRY_FIRST = 0.005  # seconds before the first retry of a busy supervisor
RETRY_CAP = 0.5  # the longest pause between retries


def retry_delays(first: float = RETRY_FIRST, cap: float = RETRY_CAP) -> Iterator[float]:
    """Pauses between retries of a busy supervisor: the project's backoff (doubling, capped), each
    jittered down to half so that clients refused together do not come back together."""
    backoff = Backoff(initial=first, cap=cap, first=first, reset_after=math.inf)
    while True:
        yield backoff.next_delay() * random.uniform(0.5, 1.0)


def _busy(exc: ControlError) -> bool:
    return exc.code == protocol.BUSY


def _full_queue(path: Path | str, waited: float) -> ControlUnavailable:
    return ControlUnavailable(f"cannot reach the supervisor at {path}: its connection queue stayed full "
                              f"for {waited:.1f} s")


def connect_error(path: Path | str, exc: OSError) -> ControlUnavailable:
    """A connection failure, said so that the person knows what to do."""
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError) or exc.errno in (
        errno.ENOENT,
        errno.ECONNREFUSED,
        errno.ENOTDIR,
    ):
        return ControlUnavailable(f"cannot reach the supervisor at {path} (is corral running?)")
    if isinstance(exc, PermissionError):
        return ControlUnavailable(
            f"permission denied: cannot open {path} (the control socket is root-only; run as root)"
        )
    return ControlUnavailable(f"cannot reach the supervisor at {path}: {exc.strerror or exc}")


def _closed() -> ControlUnavailable:
    return ControlUnavailable("the supervisor closed the connection")


def _stream_header(cmd: str, header: Mapping[str, Any]) -> None:
    if header.get("ok") is True and header.get("stream") is True:
        return
    if header.get("ok") is True:
        raise ControlUnavailable(f"the supervisor answered {cmd!r} without a stream")
    protocol.parse_reply(header)  # raises the error


def _stream_message(message: Mapping[str, Any]) -> tuple[bool, Any]:
    """(True, item) for an item, (False, None) at the end; raises for an error."""
    if "item" in message:
        return True, message["item"]
    if message.get("end") is True:
        return False, None
    protocol.parse_reply(message)  # raises for ok: false
    raise ControlUnavailable("unexpected message in a stream from the supervisor")


# --- asyncio ----------------------------------------------------------------------------------
# asyncio is imported where it is used: the CLI's blocking client never loads it (20 ms of its start).


async def _open(socket_path: Path | str, request: bytes, patience: float = DEFAULT_TIMEOUT
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, send ``request`` and return the streams. A full listen backlog (EAGAIN) is retried for
    ``patience`` seconds (asyncio's own connect would take EAGAIN for a connection in progress and hand
    back an unconnected socket). The request is sent on the bare socket: a refusal may close the
    connection before it is read, and the reply must still be read then (an asyncio transport drops
    what it had received when a write fails)."""
    import asyncio

    started = time.monotonic()
    delays = retry_delays()
    loop = asyncio.get_running_loop()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(socket_path))
        except BlockingIOError:
            sock.close()
            waited = time.monotonic() - started
            if waited >= patience:
                raise _full_queue(socket_path, waited) from None
            await asyncio.sleep(next(delays))
            continue
        except OSError as exc:
            sock.close()
            raise connect_error(socket_path, exc) from None
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await loop.sock_sendall(sock, request)
            return await asyncio.open_unix_connection(sock=sock, limit=protocol.MAX_REPLY)
        except BaseException:
            sock.close()
            raise


async def _retrying_busy(attempt: Callable[[], Awaitable[T]], patience: float = DEFAULT_TIMEOUT) -> T:
    """``attempt()``, again after a pause while the supervisor answers ``busy``, for ``patience`` s."""
    import asyncio

    started = time.monotonic()
    delays = retry_delays()
    while True:
        try:
            return await attempt()
        except ControlError as exc:
            if not _busy(exc) or time.monotonic() - started >= patience:
                raise
        await asyncio.sleep(next(delays))


async def _read(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        line = await reader.readline()
    except ConnectionError:
        raise _closed() from None
    except ValueError:
        raise ControlUnavailable("reply from the supervisor is too long") from None
    if not line:
        raise _closed()
    try:
        return protocol.decode_line(line)
    except ControlError as exc:
        raise ControlUnavailable(f"bad reply from the supervisor: {exc.reason}") from None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def request(socket_path: Path | str, cmd: str, /, **args: Any) -> Any:
    """Send one command and return its result; raises ControlError."""

    async def attempt() -> Any:
        reader, writer = await _open(socket_path, protocol.encode_request(cmd, args))
        try:
            reply = await _read(reader)
            if reply.get("stream") is True:
                raise ControlUnavailable(f"the supervisor answered {cmd!r} with a stream; use stream()")
            return protocol.parse_reply(reply)
        finally:
            await _close(writer)

    return await _retrying_busy(attempt)


async def stream(socket_path: Path | str, cmd: str, /, **args: Any) -> AsyncIterator[Any]:
    """Send a streaming command and yield its items until the server ends the stream.

    Closing the generator (or leaving the ``async for``) disconnects, which ends the stream."""

    async def attempt() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await _open(socket_path, protocol.encode_request(cmd, args))
        try:
            _stream_header(cmd, await _read(reader))
        except BaseException:
            await _close(writer)
            raise
        return reader, writer

    reader, writer = await _retrying_busy(attempt)
    try:
        while True:
            more, item = _stream_message(await _read(reader))
            if not more:
                return
            yield item
    finally:
        await _close(writer)


# --- blocking, for the CLI --------------------------------------------------------------------


class SignalWakeup:
    """While in use (in the main thread), a signal that has a Python handler also makes :attr:`fd`
    readable (``signal.set_wakeup_fd``).

    A blocking ``recv`` cannot be relied on to end at Ctrl-C: if SIGINT arrives after Python last looked
    for signals and before the ``recv`` system call starts, the call is not interrupted, and the
    KeyboardInterrupt waits until data comes, which for a quiet ``logs -f`` may be never. Waiting in
    ``poll`` on the socket *and* this fd closes that window: the signal's byte is there even when it
    came before the wait began. Elsewhere than in the main thread (no Python signal handlers run
    there), :attr:`fd` is None."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._write_fd: int | None = None
        self._previous = -1

    def __enter__(self) -> SignalWakeup:
        if threading.current_thread() is not threading.main_thread():
            return self
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except (ValueError, OSError):
            os.close(read_fd)
            os.close(write_fd)
            return self
        self.fd, self._write_fd = read_fd, write_fd
        return self

    def drain(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.fd, 512):
                pass

    def __exit__(self, *exc: object) -> None:
        if self.fd is None or self._write_fd is None:
            return
        signal.set_wakeup_fd(self._previous)
        os.close(self.fd)
        os.close(self._write_fd)
        self.fd = self._write_fd = None


class LineReader:
    """Reads newline-terminated replies from a socket, waiting in ``poll`` so that a signal (Ctrl-C)
    always ends the wait (see :class:`SignalWakeup`). ``timeout`` (seconds, None: no limit) bounds each
    wait for a whole line."""

    def __init__(self, sock: socket.socket, wakeup: SignalWakeup, limit: int = protocol.MAX_REPLY) -> None:
        self.sock = sock
        self.wakeup = wakeup
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._eof = False
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        if wakeup.fd is not None:
            self._poll.register(wakeup.fd, select.POLLIN)

    def readline(self, timeout: float | None) -> bytes:
        """One line, newline included; b"" at the end of the stream (a last line without its newline
        comes as it is). Raises TimeoutError, ConnectionError, or ValueError past ``limit`` bytes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            if self._scanned > self.limit:
                raise ValueError("line too long")
            if self._eof:
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line
            self._fill(deadline)

    def _fill(self, deadline: float | None) -> None:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self._poll.poll(None if wait is None else math.ceil(wait * 1000))
            if not events:
                raise TimeoutError
            if any(fd == self.wakeup.fd for fd, _ in events):
                self.wakeup.drain()  # the signal's handler runs now (Ctrl-C: KeyboardInterrupt)
            if any(fd == self.sock.fileno() for fd, _ in events):
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    self._eof = True
                self._buffer += chunk
                return


class SyncClient:
    """Blocking client: one connection per call. ``timeout`` bounds connecting and unary replies.
    Ctrl-C ends any wait for the supervisor at once, a stream's too (see :class:`SignalWakeup`)."""

    def __init__(self, socket_path: Path | str, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    @property
    def patience(self) -> float:
        """How long a busy supervisor is retried."""
        return DEFAULT_TIMEOUT if self.timeout is None else self.timeout

    def request(self, cmd: str, /, **args: Any) -> Any:
        started, delays = time.monotonic(), retry_delays()
        while True:
            with self._connect(cmd, args) as lines:
                reply = self._read(lines, self.timeout)
                if reply.get("stream") is True:
                    raise ControlUnavailable(f"the supervisor answered {cmd!r} with a stream")
                try:
                    return protocol.parse_reply(reply)
                except ControlError as exc:
                    if not _busy(exc) or time.monotonic() - started >= self.patience:
                        raise
            time.sleep(next(delays))

    def stream(self, cmd: str, /, **args: Any) -> Iterator[Any]:
        started, delays = time.monotonic(), retry_delays()
        while True:
            with self._connect(cmd, args) as lines:
                try:
                    _stream_header(cmd, self._read(lines, self.timeout))
                except ControlError as exc:
                    if not _busy(exc) or time.monotonic() - started >= self.patience:
                        raise
                else:
                    while True:  # a stream may be quiet for as long as it likes
                        more, item = _stream_message(self._read(lines, None))
                        if not more:
                            return
                        yield item
            time.sleep(next(delays))

    def _open(self) -> socket.socket:
        """A connected socket; a full listen backlog (EAGAIN: a unix socket's connect does not wait
        for room) is retried for ``patience`` seconds."""
        started, delays = time.monotonic(), retry_delays()
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(str(self.socket_path))
            except BlockingIOError:
                sock.close()
                waited = time.monotonic() - started
                if waited >= self.patience:
                    raise _full_queue(self.socket_path, waited) from None
                time.sleep(next(delays))
                continue
            except OSError as exc:
                sock.close()
                raise connect_error(self.socket_path, exc) from None
            sock.settimeout(self.timeout)
            return sock

    @contextlib.contextmanager
    def _connect(self, cmd: str, args: Mapping[str, Any]) -> Iterator[LineReader]:
        sock = self._open()
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(protocol.encode_request(cmd, args))
            with SignalWakeup() as wakeup:
                yield LineReader(sock, wakeup)
        finally:
            sock.close()

    def _read(self, lines: LineReader, timeout: float | None) -> dict[str, Any]:
        try:
            line = lines.readline(timeout)
        except TimeoutError:
            raise ControlUnavailable(f"the supervisor did not answer within {self.timeout:g} s") from None
        except ConnectionError:
            raise _closed() from None
        except ValueError:
            raise ControlUnavailable("reply from the supervisor is too long") from None
        if not line:
            raise _closed()
        if not line.endswith(b"\n"):
            raise ControlUnavailable("reply from the supervisor was cut short")
        try:
            return protocol.decode_line(line)
        except ControlError as exc:
            raise ControlUnavailable(f"bad reply from the supervisor: {exc.reason}") from None


def request_sync(socket_path: Path | str, cmd: str, /, **args: Any) -> Any:
    """Blocking ``request``: one command, its result; raises ControlError."""
    return SyncClient(socket_path).request(cmd, **args)


def stream_sync(socket_path: Path | str, cmd: str, /, **args: Any) -> Iterator[Any]:
    """Blocking ``stream``: yields items until the server ends the stream; close it to disconnect."""
    return SyncClient(socket_path).stream(cmd, **args)
