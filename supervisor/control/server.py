"""The control socket server: root-only, newline-delimited JSON (see ``protocol``, ``catalogue``).

The supervisor creates one ``ControlServer``, registers a handler per command and starts it::

    server = ControlServer(paths.control_socket)
    server.register("status", status_handler)            # async (args: dict) -> JSON-able result
    server.register_stream("logs", logs_handler)         # async generator (args: dict) -> items
    server.register_stream("events", events_handler)
    await server.start()
    ...
    await server.stop()

Dispatch: a catalogued command (``catalogue.COMMANDS``) streams as its entry says (``events`` always;
``logs`` when ``follow`` is true), otherwise it is answered by its unary handler or, when it has only a
stream handler, by the list of that stream's items. So one stream handler may serve ``logs`` both
ways: it yields the matching records and returns without follow, and goes on with live records with
it. A command not in the catalogue streams when it has only a stream handler or when ``follow`` is
true. Arguments of catalogued commands are checked and completed with defaults first. A
handler's exception becomes an error reply and never takes the server down.

Limits (``limits.Limits``): at most ``max_connections`` at once; at the limit a new connection takes the
place of one idle for ``evict_idle`` s or more, else it is refused unread with code ``busy`` (the
client retries); a connection without a whole request for ``idle_timeout`` s, or that reads nothing of
a reply for as long, is closed. Refusals and evictions are logged once per burst (``BurstLog``), and
connections are accepted by ``acceptor.Acceptor``, not asyncio's server (see there why)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from supervisor.control import catalogue, protocol
from supervisor.control.acceptor import LISTEN_BACKLOG, Acceptor, BurstLog
from supervisor.control.limits import Connection, ConnectionTable, Limits
from supervisor.control.protocol import ControlError
from supervisor.tasks import spawn_task

log = structlog.get_logger("supervisor.control")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any]], AsyncIterator[Any]]

REJECT_LINGER = 2.0  # seconds a refused peer gets to read its error reply
PARSE_ON_LOOP = 64 << 10  # bytes of a request parsed on the loop; a longer one is parsed in a thread


def _collector(handler: StreamHandler) -> Handler:
    """A unary handler that replies with the list of a stream handler's items."""

    async def collect(args: dict[str, Any]) -> list[Any]:
        return [item async for item in handler(args)]

    return collect


class SocketInUseError(RuntimeError):
    """Another process is serving on the control socket path (or the path is not a socket)."""


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int


def peer_credentials(sock: Any) -> PeerCredentials:
    """SO_PEERCRED of a connected unix socket: the peer's pid, uid and gid at connect time."""
    size = struct.calcsize("3i")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


class ControlServer:
    def __init__(
        self,
        socket_path: Path,
        *,
        allowed_uid: int = 0,
        max_request: int = protocol.MAX_REQUEST,
        limits: Limits | None = None,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.allowed_uid = allowed_uid  # root only unless a test says otherwise
        self.max_request = max_request
        self.limits = limits or Limits()
        self.table = ConnectionTable(self.limits)
        self.refusals = BurstLog("control connections refused: at the connection limit")
        self.evictions = BurstLog("idle control connections closed to make room", level="info")
        self._handlers: dict[str, Handler] = {}
        self._streams: dict[str, StreamHandler] = {}
        self._listener: socket.socket | None = None
        self._acceptor: Acceptor | None = None
        self._inode: tuple[int, int] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    # --- registration ----------------------------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"control command {name!r} is already registered")
        self._handlers[name] = handler

    def register_stream(self, name: str, handler: StreamHandler) -> None:
        if name in self._streams:
            raise ValueError(f"control stream {name!r} is already registered")
        self._streams[name] = handler

    @property
    def commands(self) -> list[str]:
        return sorted(set(self._handlers) | set(self._streams))

    @property
    def serving(self) -> bool:
        return self._acceptor is not None

    def stats(self) -> dict[str, int]:
        """Connections: open, the limit, and how many were admitted, evicted and refused."""
        return self.table.stats()

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._acceptor is not None:
            raise RuntimeError("control server already started")
        sock = await asyncio.to_thread(self._bind)  # mkdir, bind, chmod: file system work, off the loop
        acceptor = Acceptor(sock, self._on_connection)
        try:
            acceptor.start()
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        self._listener, self._acceptor = sock, acceptor
        log.info("control socket listening", path=str(self.socket_path), commands=self.commands,
                 max_connections=self.limits.max_connections, idle_timeout=self.limits.idle_timeout)

    async def stop(self) -> None:
        """Stop listening, end every open connection (streams included) and remove the socket."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        acceptor.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.refusals.close()
        self.evictions.close()
        current = asyncio.current_task()
        connections = [t for t in self._connections if t is not current]
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await asyncio.to_thread(self._unlink_own_socket)
        log.info("control socket closed", path=str(self.socket_path))

    def _bind(self) -> socket.socket:
        path = self.socket_path
        old = os.umask(0o077)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        finally:
            os.umask(old)
        self._remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Linux creates the socket file with the socket inode's mode minus the umask: set both,
            # so the file is never accessible to anyone but root, not even between bind and chmod.
            os.fchmod(sock.fileno(), 0o600)
            old = os.umask(0o177)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            st = os.stat(path)
            self._inode = (st.st_dev, st.st_ino)
            sock.setblocking(False)
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def _remove_stale(path: Path) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise SocketInUseError(f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.setblocking(False)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            log.info("replacing stale control socket", path=str(path))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        except FileNotFoundError:
            return
        except BlockingIOError:
            pass  # a listener with a full backlog: alive
        finally:
            probe.close()
        raise SocketInUseError(f"another process is serving the control socket {path}")

    def _unlink_own_socket(self) -> None:
        inode, self._inode = self._inode, None
        if inode is None:
            return
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == inode:
            self.socket_path.unlink()

    # --- connections -----------------------------------------------------------------------

    def _on_connection(self, conn: socket.socket) -> None:
        """An accepted connection: served, served in place of an idle one, or refused unread."""
        admission = self.table.admit(asyncio.get_running_loop().time())
        if admission.connection is None:
            self.refusals.note(limit=self.limits.max_connections)
            _refuse_busy(conn, self.limits.max_connections)
            return
        evicted = admission.evicted
        if evicted is not None and evicted.evict is not None:
            self.evictions.note(limit=self.limits.max_connections)
            evicted.evict()
        entry = admission.connection
        task = spawn_task(self._serve(conn, entry), name=f"control.connection.{next(self._ids)}")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, conn: socket.socket, entry: Connection) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=conn, limit=self.max_request)
        except BaseException:
            conn.close()
            self.table.remove(entry)
            raise
        entry.evict = functools.partial(_evict, writer, self.limits.max_connections)
        try:
            peer = peer_credentials(writer.get_extra_info("socket"))
            if peer.uid != self.allowed_uid:
                log.warning("control connection refused", pid=peer.pid, uid=peer.uid)
                await self._refuse(reader, writer)
                return
            while await self._serve_one(reader, writer, entry):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            log.exception("control connection failed")
        finally:
            self.table.remove(entry)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._send(writer, protocol.error_reply(protocol.PERMISSION_DENIED))
        # Let the peer read the reply: closing with its request unread would reset the connection.
        with contextlib.suppress(TimeoutError, ValueError):
            async with asyncio.timeout(REJECT_LINGER):
                while await reader.read(65536):
                    pass

    async def _serve_one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, entry: Connection
    ) -> bool:
        """Answer one request; False when the connection is to be closed."""
        entry.idle_since = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                line = await reader.readline()
        except TimeoutError:
            reason = f"closing: no request for {self.limits.idle_timeout:g} s (the idle limit)"
            await self._send(writer, protocol.error_reply(reason))
            return False
        except ValueError:  # longer than the limit; the rest of the line is still unread
            reason = f"request too long (the limit is {self.max_request} bytes)"
            await self._send(writer, protocol.error_reply(reason))
            return False
        finally:
            entry.idle_since = None
        if not line:
            return False
        try:
            if len(line) > PARSE_ON_LOOP:  # up to MAX_REQUEST (1 MiB): milliseconds of JSON, off the loop
                request = await asyncio.to_thread(protocol.parse_request, line)
            else:
                request = protocol.parse_request(line)
        except ControlError as exc:
            await self._send(writer, protocol.error_reply(exc.reason))
            return True
        cmd = request.cmd
        unary = self._handlers.get(cmd)
        streaming = self._streams.get(cmd)
        if unary is None and streaming is None:
            await self._send(writer, protocol.error_reply(f"unknown command {cmd!r}"))
            return True
        try:
            args = catalogue.check_args(cmd, request.args)
        except ControlError as exc:
            await self._send(writer, protocol.error_reply(exc.reason, exc.code, exc.problem))
            return True
        spec = catalogue.COMMANDS.get(cmd)
        if spec is not None and spec.streams != "never":
            want_stream = spec.streams == "always" or args.get("follow") is True
        else:
            want_stream = unary is None or args.get("follow") is True
        if want_stream:
            if streaming is None:
                await self._send(writer, protocol.error_reply(f"{cmd!r} cannot stream"))
                return True
            await self._stream(cmd, streaming, args, reader, writer)
            return False
        if unary is None:
            assert streaming is not None
            unary = _collector(streaming)
        await self._send(writer, await self._call(cmd, unary, args))
        return True

    async def _call(self, cmd: str, handler: Handler, args: dict[str, Any]) -> bytes:
        try:
            result = await handler(args)
            return protocol.encode(protocol.ok_reply(result))
        except ControlError as exc:
            log.info("control command refused", cmd=cmd, reason=exc.reason)
            return protocol.encode(protocol.error_reply(exc.reason, exc.code, exc.problem))
        except Exception as exc:
            log.exception("control command failed", cmd=cmd)
            return protocol.encode(protocol.error_reply(f"{cmd} failed: {protocol.describe_exception(exc)}"))

    async def _stream(
        self,
        cmd: str,
        handler: StreamHandler,
        args: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        await self._send(writer, protocol.STREAM_START)
        pump = spawn_task(self._pump(cmd, handler, args, writer), name=f"control.stream.{cmd}")
        watch = spawn_task(self._wait_for_eof(reader), name=f"control.stream.{cmd}.eof")
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
            await asyncio.gather(pump, watch, return_exceptions=True)

    async def _pump(
        self, cmd: str, handler: StreamHandler, args: dict[str, Any], writer: asyncio.StreamWriter
    ) -> None:
        items: AsyncIterator[Any] | None = None
        try:
            items = handler(args)
            async for item in items:
                await self._send(writer, protocol.stream_item(item))
            await self._send(writer, protocol.STREAM_END)
        except ConnectionError:
            return
        except ControlError as exc:
            log.info("control stream refused", cmd=cmd, reason=exc.reason)
            await self._send_quietly(writer, protocol.error_reply(exc.reason, exc.code, exc.problem))
        except Exception as exc:
            log.exception("control stream failed", cmd=cmd)
            await self._send_quietly(
                writer, protocol.error_reply(f"{cmd} failed: {protocol.describe_exception(exc)}")
            )
        finally:
            # Runs the handler's own clean-up (unsubscribe...) when it is suspended at a yield.
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.exception("control stream clean-up failed", cmd=cmd)

    @staticmethod
    async def _wait_for_eof(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass  # a client sends nothing during a stream; whatever it sends is ignored

    async def _send(self, writer: asyncio.StreamWriter, message: dict[str, Any] | bytes) -> None:
        """Write one message; a client that reads none of it for ``idle_timeout`` s counts as gone."""
        writer.write(message if isinstance(message, bytes) else protocol.encode(message))
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                await writer.drain()
        except TimeoutError:
            waited = self.limits.idle_timeout
            raise ConnectionAbortedError(f"the client read nothing for {waited:g} s") from None

    async def _send_quietly(self, writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError):
            await self._send(writer, message)


def _refuse_busy(conn: socket.socket, limit: int) -> None:
    """Tell a connection over the limit to come back, without reading it, and close it. The reply is
    small: it fits the new socket's buffer, so the send never blocks."""
    reason = f"busy: the control socket is at its limit of {limit} connections; try again"
    with contextlib.suppress(OSError):
        conn.send(protocol.encode(protocol.error_reply(reason, protocol.BUSY)))
    conn.close()


def _evict(writer: asyncio.StreamWriter, limit: int) -> None:
    """Close an idle connection to make room, telling its client why (close flushes the reply)."""
    reason = f"closing: idle while the control socket is at its limit of {limit} connections"
    with contextlib.suppress(Exception):
        writer.write(protocol.encode(protocol.error_reply(reason)))
    writer.close()
