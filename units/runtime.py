"""The units' view of a docker daemon: a thin aiodocker wrapper in which every call has a deadline.

aiodocker sets no timeouts of its own, and a frozen dockerd accepts connections (the kernel queues them)
but never answers: without a deadline a call hangs forever. So every call here runs under
``asyncio.timeout`` (``timeout`` seconds unless the method says otherwise) and the client session has
connect and read timeouts as well. Streams (``events``, ``follow_logs``) have a deadline for opening only;
a stream that goes quiet is indistinguishable from a quiet daemon, so liveness is watched separately
with ``ping`` (see :func:`watch_liveness`).

Failures come out as two exceptions: :class:`DockerUnavailable` (no answer: refused, reset, timed out)
and :class:`DockerAPIError` (dockerd answered with an error; :class:`NotFound` for 404).

A ``Runtime`` must be created and closed on the event loop that uses it. After dockerd restarts, make a
new one (the events source does): a pooled connection to the dead daemon is no use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiodocker
import aiohttp

from supervisor.journal.lines import LineSink as LineSink  # where unit output goes (re-exported)
from supervisor.journal.lines import log_line

T = TypeVar("T")

LABEL_UNIT = "io.corral.unit"
# Seconds for one API call. Generous on purpose: a create or start took over 10 s on a guest under QEMU's
# TCG, and a frozen dockerd is caught by the /_ping watchdog (units/system_dockerd.py), not by this.
DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 3.0  # seconds to connect to the socket
LOAD_RATE = 1 << 20  # bytes/s assumed (pessimistically: 20 MB took 25 s under TCG) for a load's deadline


class DockerUnavailable(Exception):
    """dockerd did not answer: the socket refused or reset the connection, or the deadline passed."""


class DockerAPIError(Exception):
    """dockerd answered with an error (``status`` is the HTTP status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status > 0 else message)
        self.status = status
        self.message = message


class NotFound(DockerAPIError):
    """No such container or image."""


@dataclass(frozen=True)
class ContainerState:
    """One container as ``GET /containers/{id}/json`` shows it (the fields the units need)."""

    id: str
    name: str  # without the leading "/"
    image: str  # as configured (Config.Image)
    image_id: str  # sha256:...
    state: str  # created | running | paused | restarting | removing | exited | dead
    running: bool
    exit_code: int | None  # None while it never ran
    started_at: float | None  # unix seconds, None when never started
    finished_at: float | None  # unix seconds, None when it never stopped (since its last start)
    oom_killed: bool
    pid: int
    restart_count: int
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    """The whole inspect reply (e.g. for ``units.plan.ObservedContainer.from_inspect``)."""

    @property
    def unit(self) -> str | None:
        return self.labels.get(LABEL_UNIT)

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> ContainerState:
        state = data.get("State") or {}
        config = data.get("Config") or {}
        started = _docker_time(state.get("StartedAt"))
        finished = _docker_time(state.get("FinishedAt"))
        status = str(state.get("Status") or "")
        return cls(
            id=str(data["Id"]),
            name=str(data.get("Name") or "").lstrip("/"),
            image=str(config.get("Image") or ""),
            image_id=str(data.get("Image") or ""),
            state=status,
            running=bool(state.get("Running")),
            exit_code=int(state["ExitCode"]) if (started or finished) and "ExitCode" in state else None,
            started_at=started,
            finished_at=finished,
            oom_killed=bool(state.get("OOMKilled")),
            pid=int(state.get("Pid") or 0),
            restart_count=int(data.get("RestartCount") or 0),
            labels=dict(config.get("Labels") or {}),
            raw=dict(data),
        )


def _docker_time(value: Any) -> float | None:
    """RFC 3339 to unix seconds; dockerd says "0001-01-01T00:00:00Z" for never."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class LogLine:
    stream: str  # stdout | stderr
    text: str


@dataclass(frozen=True)
class LoadResult:
    images: tuple[str, ...]  # "repo:tag", or "sha256:..." for untagged images
    size: int
    seconds: float


class Runtime:
    """One client of one dockerd socket."""

    def __init__(self, socket: str | Path, *, timeout: float = DEFAULT_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.socket = Path(socket)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._docker: aiodocker.Docker | None = None
        self._closed = False

    # ---- plumbing ------------------------------------------------------------------------------
    def _client(self) -> aiodocker.Docker:
        if self._closed:
            raise RuntimeError("Runtime is closed")
        if self._docker is None:
            # The session's own timeouts are a backstop; each call also has asyncio.timeout. Connecting is
            # bounded (sock_connect), waiting for one of the pool's connections (aiohttp's default: 100)
            # is not: it is bounded by the call's deadline. (aiohttp's `connect` counts that wait too:
            # 100 units starting at once made the next calls fail as if dockerd could not be reached.)
            session_timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                                    sock_connect=self.connect_timeout, sock_read=self.timeout)
            self._docker = aiodocker.Docker(url=f"unix://{self.socket}", timeout=session_timeout)
        return self._docker

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        """For responses that last: connecting is bounded, reading is not (nor waiting for the pool)."""
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=self.connect_timeout,
                                     sock_read=None)

    async def close(self) -> None:
        self._closed = True
        if self._docker is not None:
            docker, self._docker = self._docker, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(docker.close(), self.timeout)

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _call(self, what: str, call: Callable[[], Awaitable[T]], timeout: float | None = -1.0) -> T:
        """Run one API call under a deadline (``timeout`` seconds; -1: the call timeout; None: none, for the
        rare call that may legitimately last forever) and translate its failures."""
        deadline = self.timeout if timeout is not None and timeout < 0 else timeout
        try:
            async with asyncio.timeout(deadline):
                return await call()
        except aiohttp.ServerTimeoutError as exc:  # connecting or reading took too long (the session's own)
            raise DockerUnavailable(f"{what}: no answer from {self.socket} ({exc or type(exc).__name__})") \
                from None
        except TimeoutError:
            raise DockerUnavailable(f"{what}: no answer from {self.socket} in {deadline:g} s") from None
        except aiodocker.DockerError as exc:
            raise _translate(what, exc, self.socket) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DockerUnavailable(f"{what}: {self.socket}: {exc}") from None

    # ---- the daemon ----------------------------------------------------------------------------
    async def ping(self, timeout: float = -1.0) -> bool:
        """True when dockerd answers ``GET /_ping`` with OK within ``timeout`` (default: the call timeout)."""

        async def call() -> bytes:
            docker = self._client()
            async with docker._query("_ping", versioned_api=False) as response:
                return await response.read()

        try:
            return await self._call("ping", call, timeout) == b"OK"
        except (DockerUnavailable, DockerAPIError):
            return False

    async def version(self) -> dict[str, Any]:
        return dict(await self._call("version", lambda: self._client().version()))

    async def info(self) -> dict[str, Any]:
        return dict(await self._call("info", lambda: self._client().system.info()))

    # ---- containers ----------------------------------------------------------------------------
    async def list_containers(self, *, label: str | None = LABEL_UNIT, unit: str | None = None,
                              all: bool = True) -> list[ContainerState]:
        """Containers (stopped ones too, unless ``all`` is false) carrying ``label`` (any value; None: every
        container), or the ones of ``unit``; each inspected, sorted by name."""
        filters: dict[str, list[str]] = {}
        if unit is not None:
            filters["label"] = [f"{LABEL_UNIT}={unit}"]
        elif label is not None:
            filters["label"] = [label]
        params: dict[str, Any] = {"all": all}
        if filters:
            params["filters"] = json.dumps(filters)

        async def call() -> list[ContainerState]:
            docker = self._client()
            listed = await docker._query_json("containers/json", params=params)
            found = await asyncio.gather(*(self._inspect_raw(str(c["Id"])) for c in listed))
            return sorted((ContainerState.from_inspect(d) for d in found if d is not None),
                          key=lambda c: (c.name, c.id))

        return await self._call("list containers", call)

    async def list_summaries(self, *, label: str | None = LABEL_UNIT,
                             all: bool = True) -> list[dict[str, Any]]:
        """``GET /containers/json`` as dockerd answers it, in one call, nothing inspected: each entry has
        ``Id``, ``Names``, ``Image``, ``ImageID``, ``Labels``, ``State`` and ``Status`` ("Exited (137) 2
        seconds ago"), but no start or finish times. The cheap listing for a reconcile on every event."""
        params: dict[str, Any] = {"all": all}
        if label is not None:
            params["filters"] = json.dumps({"label": [label]})

        async def call() -> list[dict[str, Any]]:
            listed = await self._client()._query_json("containers/json", params=params)
            return [dict(c) for c in listed]

        return await self._call("list containers", call)

    async def _inspect_raw(self, container_id: str) -> dict[str, Any] | None:
        try:
            data = await self._client()._query_json(f"containers/{container_id}/json")
        except aiodocker.DockerError as exc:
            if exc.status == 404:  # removed between listing and inspecting
                return None
            raise
        return dict(data)

    async def inspect(self, container: str) -> ContainerState | None:
        """The container by id or name, or None when there is none."""
        data = await self._call(f"inspect {container}", lambda: self._inspect_raw(container))
        return None if data is None else ContainerState.from_inspect(data)

    async def create(self, body: Mapping[str, Any], *, name: str | None = None) -> str:
        """``POST /containers/create`` with a Docker Engine API body; returns the new container's id."""

        async def call() -> str:
            container = await self._client().containers.create(dict(body), name=name)
            return str(container.id)

        return await self._call(f"create {name or body.get('Image')}", call)

    async def start(self, container: str) -> None:
        await self._call(f"start {container}", lambda: self._client().containers.container(container).start())

    async def stop(self, container: str, *, timeout: int = 10) -> None:
        """SIGTERM (or the image's stop signal), then SIGKILL after ``timeout`` seconds; the call waits
        that long plus the usual call timeout."""
        await self._call(f"stop {container}",
                         lambda: self._client().containers.container(container).stop(t=timeout, timeout=None),
                         timeout + self.timeout)

    async def kill(self, container: str, *, signal: str = "SIGKILL") -> None:
        await self._call(f"kill {container}",
                         lambda: self._client().containers.container(container).kill(signal=signal))

    async def remove(self, container: str, *, force: bool = False, volumes: bool = False) -> None:
        await self._call(
            f"remove {container}",
            lambda: self._client().containers.container(container).delete(force=force, v=volumes))

    async def wait(self, container: str, *, timeout: float | None, condition: str = "not-running") -> int:
        """Wait until the container stops (``condition``: not-running, next-exit, removed) and return its
        exit code. ``timeout`` is required: None waits as long as it takes (a frozen dockerd included)."""

        async def call() -> int:
            c = self._client().containers.container(container)
            result = await c.wait(condition=condition, timeout=self._stream_timeout())
            return int(result.get("StatusCode", -1))

        return await self._call(f"wait {container}", call, timeout)

    # ---- images --------------------------------------------------------------------------------
    async def image_inspect(self, ref: str) -> dict[str, Any] | None:
        """The image's inspect data, or None when there is no such image."""

        async def call() -> dict[str, Any] | None:
            try:
                return dict(await self._client().images.inspect(ref))
            except aiodocker.DockerError as exc:
                if exc.status == 404:
                    return None
                raise

        return await self._call(f"inspect image {ref}", call)

    async def image_exists(self, ref: str) -> bool:
        return await self.image_inspect(ref) is not None

    async def load_image(self, archive: Path, *, timeout: float | None = None) -> LoadResult:
        """``POST /images/load`` streaming a ``docker save`` archive (read off the loop by aiohttp).

        The deadline defaults to the call timeout plus the archive's size at 20 MiB/s."""
        size = (await asyncio.to_thread(archive.stat)).st_size
        deadline = timeout if timeout is not None else self.timeout + size / LOAD_RATE
        started = time.monotonic()
        handle = await asyncio.to_thread(archive.open, "rb")
        try:
            docker = self._client()
            result = await self._call(
                f"load {archive}",
                lambda: docker.images.import_image(data=handle, stream=False, timeout=self._stream_timeout()),
                deadline,
            )
        finally:
            await asyncio.to_thread(handle.close)
        return LoadResult(tuple(_loaded_images(result)), size, time.monotonic() - started)

    # ---- streams -------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def events(self, *, since: str | None = None, filters: Mapping[str, list[str]] | None = None
                     ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Subscribe to dockerd's event stream (``GET /events``); entering returns once dockerd has
        registered the subscription (it sends the headers after that), so a container listing taken
        then misses nothing. Iterate the value for decoded events. The iteration ends when dockerd
        closes the stream (it shut down); :class:`DockerUnavailable` when the connection broke (it
        died). A frozen dockerd makes it hang: watch liveness with :meth:`ping`."""
        params: dict[str, Any] = {}
        if since is not None:
            params["since"] = since
        if filters:
            params["filters"] = json.dumps(dict(filters))
        async with contextlib.AsyncExitStack() as stack:
            docker = self._client()

            async def open_stream() -> aiohttp.ClientResponse:
                response = await stack.enter_async_context(
                    docker._query("events", params=params, timeout=self._stream_timeout()))
                stack.callback(response.close)  # aiodocker's _query does not release it
                return response

            response = await self._call("events", open_stream)
            yield _decode_events(response, self.socket)

    async def follow_logs(self, container: str, *, since: float | None = None,
                          tail: str = "all", timestamps: bool = False) -> AsyncIterator[LogLine]:
        """A container's output, line by line, tagged stdout or stderr, following until the container's
        log ends (it was removed) or dockerd goes away. ``since``: unix seconds; ``tail``: "all" or a
        number of lines to start with; ``timestamps``: each line starts with dockerd's RFC 3339 time of
        it (nanoseconds) and a space."""
        state = await self._call(f"inspect {container}", lambda: self._client()._query_json(
            f"containers/{container}/json"))
        tty = bool((state.get("Config") or {}).get("Tty"))
        params: dict[str, Any] = {"follow": True, "stdout": True, "stderr": True, "tail": tail}
        if timestamps:
            params["timestamps"] = True
        if since is not None:
            params["since"] = f"{since:.9f}"
        async with contextlib.AsyncExitStack() as stack:
            docker = self._client()

            async def open_stream() -> aiohttp.ClientResponse:
                response = await stack.enter_async_context(docker._query(
                    f"containers/{container}/logs", params=params, timeout=self._stream_timeout()))
                stack.callback(response.close)  # aiodocker's _query does not release it
                return response

            response = await self._call(f"logs {container}", open_stream)
            splitter = _LineSplitter()
            try:
                if tty:
                    async for chunk in response.content.iter_any():
                        for line in splitter.feed("stdout", chunk):
                            yield line
                else:
                    async for stream, chunk in _demux(response.content):
                        for line in splitter.feed(stream, chunk):
                            yield line
            except (aiohttp.ClientError, OSError):
                pass  # dockerd went away: the log ends here
            for line in splitter.flush():
                yield line


async def api_call(runtime: Runtime, what: str, call: Callable[[aiodocker.Docker], Awaitable[T]],
                   timeout: float | None = -1.0) -> T:
    """One aiodocker call (``call(client)``) with ``runtime``'s deadline and failures: for the thin
    adapters of other parts of the API (handlers/swarm/client.py)."""
    return await runtime._call(what, lambda: call(runtime._client()), timeout)


async def pump_logs(runtime: Runtime, container: str, unit: str, sink: LineSink, *,
                    since: float | None = None, tail: str = "all") -> int:
    """Copy a container's output into the journal (``unit=``, ``stream=``) until it ends; returns the
    number of lines. Cancel it to stop following."""
    count = 0
    async for line in runtime.follow_logs(container, since=since, tail=tail):
        log_line(sink, line.text, unit=unit, stream=line.stream)
        count += 1
    return count


async def watch_liveness(ping: Callable[[float], Awaitable[bool]], *, interval: float = 2.0,
                         timeout: float = 3.0, misses: int = 2) -> str:
    """Ping every ``interval`` seconds, each ping with ``timeout``; return (a reason) once ``misses``
    pings in a row went unanswered. A miss is retried at once, so a frozen daemon is noticed within
    about ``interval + misses * timeout`` seconds."""
    missed = 0
    while True:
        if missed == 0:
            await asyncio.sleep(interval)
        if await ping(timeout):
            missed = 0
            continue
        missed += 1
        if missed >= misses:
            return f"no answer to /_ping {missed} times in a row ({timeout:g} s each)"


# ---- helpers: what dockerd sends, decoded (pure of the client) ------------------------------------
_STREAMS = {0: "stdout", 1: "stdout", 2: "stderr"}


async def _decode_events(response: aiohttp.ClientResponse, socket: Path) -> AsyncIterator[dict[str, Any]]:
    """``GET /events``: one JSON object a line; a broken connection is DockerUnavailable."""
    try:
        async for line in response.content:
            if line.strip():
                yield json.loads(line)
    except (aiohttp.ClientError, OSError) as exc:
        raise DockerUnavailable(f"event stream from {socket} broke ({type(exc).__name__})") from None


async def _demux(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, bytes]]:
    """Docker's multiplexed stream: frames of an 8-byte header (stream, 0, 0, 0, big-endian length)."""
    while True:
        try:
            header = await content.readexactly(8)
        except asyncio.IncompleteReadError:
            return
        stream, length = struct.unpack(">BxxxL", header)
        if not length:
            continue
        try:
            payload = await content.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            payload = exc.partial
            if payload:
                yield _STREAMS.get(stream, "stdout"), payload
            return
        yield _STREAMS.get(stream, "stdout"), payload


class _LineSplitter:
    """Splits byte chunks into lines per stream, keeping partial lines until their newline comes."""

    def __init__(self) -> None:
        self._partial: dict[str, bytes] = {}

    def feed(self, stream: str, chunk: bytes) -> list[LogLine]:
        data = self._partial.pop(stream, b"") + chunk
        *lines, rest = data.split(b"\n")
        if rest:
            self._partial[stream] = rest
        return [LogLine(stream, _text(line)) for line in lines]

    def flush(self) -> list[LogLine]:
        lines = [LogLine(stream, _text(rest)) for stream, rest in self._partial.items() if rest]
        self._partial.clear()
        return lines


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


def _loaded_images(messages: Any) -> list[str]:
    """Image names from the ``POST /images/load`` replies ({"stream": "Loaded image: x:y\\n"})."""
    found = []
    for message in messages or []:
        if not isinstance(message, dict):
            continue
        if message.get("error"):
            raise DockerAPIError(500, str(message["error"]))
        text = str(message.get("stream") or "")
        for line in text.splitlines():
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if line.startswith(prefix):
                    found.append(line[len(prefix):].strip())
    return found


def _translate(what: str, exc: aiodocker.DockerError, socket: Path) -> Exception:
    if exc.status == 900:  # aiodocker: could not connect
        return DockerUnavailable(f"{what}: cannot connect to {socket}")
    if exc.status == 404:
        return NotFound(404, f"{what}: {exc.message}")
    return DockerAPIError(exc.status, f"{what}: {exc.message}")
