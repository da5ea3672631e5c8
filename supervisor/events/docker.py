"""Bus events about the docker daemons: their containers' lifecycle, and the daemons coming and going.

Like every event they are hints, not the truth: a handler that receives one observes current state
(``units.runtime.Runtime.list_containers``) before acting. A ``Resync`` with ``source`` starting with
``docker`` follows every (re)connection of the events source and every (re)start of the system dockerd:
events may have been lost, observe everything again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from supervisor.events import Event

# The container actions that are published; every other action (exec_*, attach, resize, top, ...)
# says nothing about whether a unit runs and is dropped at the source.
CONTAINER_ACTIONS = frozenset(
    {"create", "start", "die", "stop", "kill", "oom", "destroy", "pause", "unpause"})


@dataclass(frozen=True, kw_only=True)
class ContainerEvent(Event):
    """A container of ``daemon`` ("system" or "user") changed.

    ``observed`` is true when the source did not receive this from dockerd's event stream but inferred
    it by comparing container listings across a reconnect (it happened while the stream was down)."""

    kind: ClassVar[str] = "docker.container"
    daemon: str
    action: str  # one of CONTAINER_ACTIONS
    container_id: str
    name: str  # without the leading "/"
    unit: str | None = None  # the io.corral.unit label
    exit_code: int | None = None  # for die (and observed die)
    signal: str | None = None  # for kill
    time_nano: int = 0  # dockerd's timestamp of the event (0 when observed)
    observed: bool = False


@dataclass(frozen=True, kw_only=True)
class DockerdState(Event):
    """The system dockerd (``daemon``) went ``up`` (answers /_ping after a start) or ``down`` (exited,
    or frozen and killed by the watchdog). ``starts`` counts starts since boot (1 on the first)."""

    kind: ClassVar[str] = "docker.daemon"
    daemon: str
    state: str  # up | down
    pid: int | None = None
    starts: int = 0
    reason: str = ""
    seconds: float | None = None  # up: how long it took to answer /_ping; down: how long it had run


@dataclass(frozen=True, kw_only=True)
class EventStreamState(Event):
    """The events source's connection to ``daemon``: ``connected`` (after listing containers; ``since``
    is where the stream resumed) or ``lost`` (``reason`` says why)."""

    kind: ClassVar[str] = "docker.stream"
    daemon: str
    state: str  # connected | lost
    reason: str = ""
    since: str | None = None
    containers: int | None = None


@dataclass(frozen=True, kw_only=True)
class SwarmPoke(Event):
    """The swarm reconciler asks itself to look again: a retry after a failure or while a join is
    pending, or its periodic resync."""

    kind: ClassVar[str] = "swarm.poke"
    reason: str
