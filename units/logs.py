"""Units' output into the journal: one follower per unit, copying its container's stdout and stderr
with ``unit=`` and ``stream=`` bound (as ``units.runtime.pump_logs`` does), so ``corral logs -u NAME``
shows the container's lines next to the supervisor's own lines about the unit. Each line is recorded at
the level ``supervisor.journal.lines`` reads in it (a logrus ``level=warning`` line as a warning).

dockerd ends a log stream when the container stops (and when dockerd goes away), so a follower runs one
stream per run of the container and then waits to be woken: by ``started`` (corral is starting the
container) or ``running`` (a reconcile saw it running, e.g. after a dockerd restart, or at boot).

Each line is written once. Streams ask for dockerd's timestamps and the follower keeps the time of the
last line it wrote (nanoseconds): the next stream starts there (``since=``), and a line at or before
it is dropped (two streams of one container can overlap when it restarts quickly). The first stream of
a container corral starts begins just before the start call; of a container found running (boot, a
supervisor restart), at the moment it was found: earlier output is not replayed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from supervisor.journal.lines import log_line
from supervisor.tasks import spawn_task
from units.runtime import DockerAPIError, DockerUnavailable, LineSink, Runtime

log = structlog.get_logger("units.logs")

RuntimeFor = Callable[[str], Runtime | None]
SLACK_NS = 1_000  # a stream starts this much before the last line (float seconds lose nanoseconds)


def parse_timestamp(text: str) -> tuple[int | None, str]:
    """``2024-05-01T12:00:00.123456789Z rest`` -> (nanoseconds since the epoch, ``rest``); a line without
    a timestamp comes back as (None, line)."""
    stamp, sep, rest = text.partition(" ")
    if not sep or not stamp.endswith("Z") or "T" not in stamp:
        return None, text
    whole, dot, fraction = stamp[:-1].partition(".")
    try:
        seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    except ValueError:
        return None, text
    digits = (fraction if dot else "")[:9].ljust(9, "0")
    if not digits.isdigit():
        return None, text
    return int(seconds) * 1_000_000_000 + int(digits), rest


@dataclass
class _Follower:
    unit: str
    container: str
    scope: str
    last_ns: int  # the time of the last line written (or where to start)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    streaming: bool = False
    lines: int = 0


class UnitLogs:
    """The followers of every unit. ``runtime_for(scope)`` gives the Runtime to read from (a client of
    its own, so long-lived streams never hold up API calls), or None while that dockerd is down."""

    def __init__(self, sink: LineSink, runtime_for: RuntimeFor, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.runtime_for = runtime_for
        self.wall = wall
        self._followers: dict[str, _Follower] = {}

    def started(self, unit: str, container: str, scope: str, at: float) -> None:
        """corral is starting the container (``at``: wall time just before the start call)."""
        self._follower(unit, container, scope, at).wake.set()

    def running(self, unit: str, container: str, scope: str) -> None:
        """A reconcile saw the container running: make sure its output is being followed."""
        f = self._follower(unit, container, scope, self.wall())
        if not f.streaming:
            f.wake.set()

    def forget(self, unit: str) -> None:
        """The unit is gone: stop following it."""
        f = self._followers.pop(unit, None)
        if f is not None and f.task is not None:
            f.task.cancel()

    def keep_only(self, units: set[str]) -> None:
        for unit in set(self._followers) - units:
            self.forget(unit)

    async def stop(self) -> None:
        tasks = [f.task for f in self._followers.values() if f.task is not None]
        self._followers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, int]:
        return {unit: f.lines for unit, f in self._followers.items()}

    # ---- internals -------------------------------------------------------------------------------
    def _follower(self, unit: str, container: str, scope: str, since: float) -> _Follower:
        f = self._followers.get(unit)
        if f is not None and f.container == container and f.task is not None and not f.task.done():
            return f
        if f is not None and f.task is not None:
            f.task.cancel()  # an older container of the unit (recreated): its log has ended
        f = _Follower(unit, container, scope, int(since * 1e9))
        f.wake.set()
        f.task = spawn_task(self._run(f), name=f"logs:{unit}")
        self._followers[unit] = f
        return f

    async def _run(self, f: _Follower) -> None:
        while True:
            await f.wake.wait()
            f.wake.clear()
            runtime = self.runtime_for(f.scope)
            if runtime is None:
                continue
            f.streaming = True
            try:
                await self._stream(runtime, f)
            except (DockerUnavailable, DockerAPIError, RuntimeError) as exc:  # gone, or dockerd went away
                log.debug("unit log stream ended", unit=f.unit, error=str(exc))
                await asyncio.sleep(0.05)  # do not spin on a daemon that refuses
            finally:
                f.streaming = False

    async def _stream(self, runtime: Runtime, f: _Follower) -> None:
        since = max(0, f.last_ns - SLACK_NS) / 1e9
        async for line in runtime.follow_logs(f.container, since=since, timestamps=True):
            stamp, text = parse_timestamp(line.text)
            if stamp is not None:
                if stamp <= f.last_ns:
                    continue  # written already (by an overlapping stream)
                f.last_ns = stamp
            log_line(self.sink, text, unit=f.unit, stream=line.stream)
            f.lines += 1
