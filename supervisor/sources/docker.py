"""Docker events source: dockerd's container events as typed bus events, with loss detected and healed.

One source per dockerd socket. A session: a fresh ``units.runtime.Runtime`` (a pooled connection to a
dead daemon is no use), subscribe to ``GET /events`` (resuming with ``since=`` the last event seen),
list every container, publish what the listing shows changed since the last session (``observed``
events: what happened while the stream was down), then a ``Resync`` for the units handler, then one
``ContainerEvent`` per container event as it comes.

A session ends when dockerd closes the stream (it shut down; aiodocker's subscriber would get ``None``),
when the connection breaks (it died), on any API error, or when the watchdog (``/_ping`` under a
timeout) gives up on a frozen dockerd, whose stream would otherwise hang forever. Then the source
reconnects after the one Backoff's delay (cut short by ``wake()``, which the system dockerd's supervisor
calls after each restart). Until its first connection, for ``FIRST_CONNECT_WINDOW`` seconds from its start,
it retries at the pace of ``start_polls`` instead (at most 0.5 s apart): the user's dockerd, started by a
unit, has nobody to call ``wake()``, and with the reconnect backoff's 5 s the boot's ready line came up to
5 s after it answered. Events replayed by ``since=`` that were already published are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from supervisor.backoff import Backoff, start_polls
from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.events.docker import CONTAINER_ACTIONS, ContainerEvent, EventStreamState
from supervisor.tasks import spawn_task
from units.runtime import (
    LABEL_UNIT,
    ContainerState,
    DockerAPIError,
    DockerUnavailable,
    Runtime,
    watch_liveness,
)

log = structlog.get_logger("supervisor.sources.docker")

FILTERS = {"type": ["container"]}
# How long after its start a source that has never connected keeps polling at the start polls' pace: a
# dockerd started at boot answers within it even under TCG on a loaded host; one that never comes (a
# disabled or crash-looping `docker` unit) is then tried at the reconnect backoff's pace, not every 0.5 s.
FIRST_CONNECT_WINDOW = 300.0


# ---- pure parts -------------------------------------------------------------------------------------
def container_event(raw: Mapping[str, Any], daemon: str) -> ContainerEvent | None:
    """A dockerd event (the JSON of ``GET /events``) as a ContainerEvent; None for other types and for
    actions that say nothing about whether a container runs (exec_*, health_status, attach, ...)."""
    if raw.get("Type") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "").split(":", 1)[0].strip()
    if action not in CONTAINER_ACTIONS:
        return None
    actor = raw.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    exit_code = attributes.get("exitCode")
    return ContainerEvent(
        daemon=daemon,
        action=action,
        container_id=str(actor.get("ID") or raw.get("id") or ""),
        name=str(attributes.get("name") or ""),
        unit=attributes.get(LABEL_UNIT),
        exit_code=int(exit_code) if action == "die" and exit_code not in (None, "") else None,
        signal=str(attributes["signal"]) if action == "kill" and attributes.get("signal") else None,
        time_nano=int(raw.get("timeNano") or 0),
    )


def since_param(time_nano: int) -> str:
    """dockerd's ``since=`` for a ``timeNano``: seconds.nanoseconds."""
    return f"{time_nano // 1_000_000_000}.{time_nano % 1_000_000_000:09d}"


@dataclass(frozen=True)
class Seen:
    """What the source last knew of a container. Times are None when unknown (updated by an event)."""

    name: str
    unit: str | None
    running: bool
    started_at: float | None = None
    finished_at: float | None = None

    @classmethod
    def of(cls, c: ContainerState) -> Seen:
        return cls(c.name, c.unit, c.running, c.started_at, c.finished_at)


def view_of(listing: Iterable[ContainerState]) -> dict[str, Seen]:
    return {c.id: Seen.of(c) for c in listing}


def apply_event(view: dict[str, Seen], event: ContainerEvent) -> None:
    """Keep the view in step with a received event (times become unknown: the event does not carry them)."""
    seen = view.get(event.container_id)
    if event.action == "destroy":
        view.pop(event.container_id, None)
    elif event.action == "create" or seen is None:
        view[event.container_id] = Seen(event.name, event.unit, event.action == "start")
    elif event.action == "start":
        view[event.container_id] = replace(seen, running=True, started_at=None, finished_at=None)
    elif event.action == "die":
        view[event.container_id] = replace(seen, running=False, finished_at=None)


def observed_changes(before: Mapping[str, Seen], listing: Iterable[ContainerState],
                     daemon: str) -> list[ContainerEvent]:
    """The events that must have happened, given the view before a reconnect and a fresh listing."""
    out: list[ContainerEvent] = []

    def emit(c_id: str, name: str, unit: str | None, action: str, exit_code: int | None = None) -> None:
        out.append(ContainerEvent(daemon=daemon, action=action, container_id=c_id, name=name, unit=unit,
                                  exit_code=exit_code, observed=True))

    now_ids = set()
    for c in listing:
        now_ids.add(c.id)
        b = before.get(c.id)
        if b is None:
            emit(c.id, c.name, c.unit, "create")
            if c.running:
                emit(c.id, c.name, c.unit, "start")
            elif c.finished_at is not None:
                emit(c.id, c.name, c.unit, "start")
                emit(c.id, c.name, c.unit, "die", c.exit_code)
        elif b.running and not c.running:
            emit(c.id, c.name, c.unit, "die", c.exit_code)
        elif not b.running and c.running:
            emit(c.id, c.name, c.unit, "start")
        elif c.running and b.started_at is not None and c.started_at != b.started_at:
            emit(c.id, c.name, c.unit, "die")  # it died and was started again meanwhile
            emit(c.id, c.name, c.unit, "start")
        elif not c.running and b.finished_at is not None and c.finished_at != b.finished_at:
            emit(c.id, c.name, c.unit, "start")  # it was started and died again meanwhile
            emit(c.id, c.name, c.unit, "die", c.exit_code)
    for c_id, b in before.items():
        if c_id not in now_ids:
            emit(c_id, b.name, b.unit, "destroy")
    return out


# ---- the source --------------------------------------------------------------------------------------
@dataclass
class _Stats:
    connected: bool = False
    sessions: int = 0
    events: int = 0
    observed: int = 0
    replayed_dropped: int = 0
    last_lost: str | None = None
    connected_since: float | None = None


class DockerEventsSource:
    def __init__(self, bus: Bus, socket: Path, *, daemon: str = "system", backoff: Backoff | None = None,
                 timeout: float = 10.0, ping_interval: float = 2.0, ping_timeout: float = 3.0,
                 ping_misses: int = 2) -> None:
        self.bus = bus
        self.socket = socket
        self.daemon = daemon
        self.backoff = backoff or Backoff(initial=0.1, cap=5.0)
        self.first_polls = start_polls()  # until the first connection (FIRST_CONNECT_WINDOW)
        self._started_at: float | None = None
        self.timeout = timeout
        self.ping = (ping_interval, ping_timeout, ping_misses)
        self.stats = _Stats()
        self._view: dict[str, Seen] | None = None
        self._last_nano = 0
        self._at_last: set[tuple[str, str]] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def source(self) -> str:
        return f"docker.{self.daemon}"

    def start(self) -> None:
        if self._task is None:
            self._started_at = time.monotonic()
            self._task = spawn_task(self._run(), name=f"docker-events:{self.daemon}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """dockerd is (back) up: reconnect now rather than after the rest of the backoff delay."""
        self._wakeup.set()

    @property
    def since(self) -> str | None:
        return since_param(self._last_nano) if self._last_nano else None

    # ---- the loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            reason = await self._session()
            if self.stats.connected:
                self.stats.connected = False
                self.stats.connected_since = None
                self.stats.last_lost = reason
                self.bus.publish(EventStreamState(daemon=self.daemon, state="lost", reason=reason))
                log.warning("docker event stream lost; reconnecting", daemon=self.daemon, reason=reason)
            else:
                log.debug("docker event stream not connected", daemon=self.daemon, reason=reason)
            delay = self.next_delay(ran_for=time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
            self._wakeup.clear()

    def next_delay(self, ran_for: float, now: float | None = None) -> float:
        """How long to wait before the next session: the start polls' pace while the dockerd has never
        answered and the source started less than ``FIRST_CONNECT_WINDOW`` seconds ago, else the
        reconnect backoff's."""
        now = time.monotonic() if now is None else now
        starting = self._started_at is not None and now - self._started_at < FIRST_CONNECT_WINDOW
        if self.stats.sessions == 0 and starting:
            return self.first_polls.next_delay()
        return self.backoff.next_delay(ran_for=ran_for)

    async def _session(self) -> str:
        """One connection: subscribe, list, resync, then relay events until the stream is lost; why."""
        runtime = Runtime(self.socket, timeout=self.timeout)
        resume_nano, resume_keys = self._last_nano, set(self._at_last)
        try:
            async with runtime.events(since=self.since, filters=FILTERS) as stream:
                listing = await runtime.list_containers(label=None)
                self._resynced(listing)
                return await self._relay(stream, runtime, resume_nano, resume_keys)
        except (DockerUnavailable, DockerAPIError) as exc:
            return str(exc)
        finally:
            await runtime.close()

    def _resynced(self, listing: list[ContainerState]) -> None:
        changes = observed_changes(self._view, listing, self.daemon) if self._view is not None else []
        self._view = view_of(listing)
        self.stats.sessions += 1
        self.stats.connected = True
        self.stats.connected_since = time.time()
        self.stats.observed += len(changes)
        self._wakeup.clear()
        for event in changes:
            self.bus.publish(event)
        reason = "connected" if self.stats.sessions == 1 else "reconnected"
        self.bus.publish(Resync(source=self.source, reason=f"docker event stream {reason}"))
        self.bus.publish(EventStreamState(daemon=self.daemon, state="connected", since=self.since,
                                          containers=len(listing)))
        log.info(f"docker event stream {reason}", daemon=self.daemon, since=self.since,
                 containers=len(listing), observed=len(changes))

    async def _relay(self, stream: AsyncIterator[dict[str, Any]], runtime: Runtime, resume_nano: int,
                     resume_keys: set[tuple[str, str]]) -> str:
        interval, timeout, misses = self.ping
        reader = spawn_task(self._read(stream, resume_nano, resume_keys),
                            name=f"docker-events:{self.daemon}:read")
        watchdog = spawn_task(watch_liveness(runtime.ping, interval=interval, timeout=timeout, misses=misses),
                              name=f"docker-events:{self.daemon}:watchdog")
        try:
            done, _ = await asyncio.wait({reader, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, watchdog):
                task.cancel()
            await asyncio.gather(reader, watchdog, return_exceptions=True)
        if reader in done:
            return reader.result()
        return f"watchdog: {watchdog.result()}"

    async def _read(self, stream: AsyncIterator[dict[str, Any]], resume_nano: int,
                    resume_keys: set[tuple[str, str]]) -> str:
        """Relay events until the stream ends; why it ended (never raises: it runs as a task)."""
        try:
            await self._relay_events(stream, resume_nano, resume_keys)
        except (DockerUnavailable, DockerAPIError, ValueError) as exc:
            return str(exc)
        return "event stream ended (dockerd closed it)"

    async def _relay_events(self, stream: AsyncIterator[dict[str, Any]], resume_nano: int,
                            resume_keys: set[tuple[str, str]]) -> None:
        async for raw in stream:
            event = container_event(raw, self.daemon)
            if event is None:
                continue
            key = (event.container_id, event.action)
            t = event.time_nano
            if resume_nano and (t < resume_nano or (t == resume_nano and key in resume_keys)):
                self.stats.replayed_dropped += 1  # replayed by since=, published already
                continue
            if t > self._last_nano:
                self._last_nano, self._at_last = t, {key}
            elif t == self._last_nano:
                self._at_last.add(key)
            if self._view is not None:
                apply_event(self._view, event)
            self.stats.events += 1
            self.bus.publish(event)

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "daemon": self.daemon, "socket": str(self.socket), "connected": s.connected,
            "connected_since": s.connected_since, "sessions": s.sessions, "events": s.events,
            "observed": s.observed, "replayed_dropped": s.replayed_dropped, "since": self.since,
            "last_lost": s.last_lost, "containers": len(self._view or {}),
        }
