"""The ``die`` events of the units' containers, followed on a bus subscription of the reconciler's own
(not behind its runner's coalescing).

dockerd publishes ``die`` while it is still processing the exit: a listing taken at once (what the
reconcile the event triggers does) can show the container running for a few more milliseconds. The tap
remembers which containers died, so that the reconcile treats them as exited (``with_exits``: and a
start queues behind dockerd's processing instead of waiting for another event), and hands each ``die``
at once to ``on_die``: the fast restart path (``handlers.units.acting.Actions.restart_at_once``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace

from supervisor.bus import Bus
from supervisor.events import Event
from supervisor.events.docker import ContainerEvent
from supervisor.tasks import spawn_task
from units.plan import ACTIVE, ObservedContainer


class ExitTap:
    """Container id -> exit code of the containers that died and that a listing may not show yet."""

    def __init__(self, bus: Bus, name: str, on_die: Callable[[ContainerEvent], None]) -> None:
        self.bus = bus
        self.name = name  # of the subscription and its task: "handler:<name>:exits"
        self.on_die = on_die
        self._died: dict[str, int | None] = {}
        self._started: dict[str, int] = {}  # container id -> when corral last started it (unix ns)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the bus's container events (once)."""
        if self._task is not None:
            return
        sub = self.bus.subscribe(f"handler:{self.name}:exits", ContainerEvent, maxsize=4096)

        async def tap() -> None:
            try:
                while True:
                    self.note(await sub.get())
            finally:
                sub.close()

        self._task = spawn_task(tap(), name=f"handler:{self.name}:exits")

    def note(self, event: Event) -> None:
        if not isinstance(event, ContainerEvent):
            return  # a resync (overflow): the runner's reconcile observes everything anyway
        if event.action == "die":
            if 0 < event.time_nano < self._started.get(event.container_id, 0):
                return  # of a run before corral started it again (its exit was told by the init's pidfd)
            self._died[event.container_id] = event.exit_code
            self.on_die(event)
        elif event.action in ("start", "destroy"):
            self._died.pop(event.container_id, None)
            if event.action == "destroy":
                self._started.pop(event.container_id, None)

    def gone(self, container: str) -> None:
        """The container's init is gone (its pidfd): shown as exited, its code not known yet, until dockerd
        says more (its ``die``) or the listing catches up (a reconcile in between must not take the dying
        container for a running one)."""
        self._died.setdefault(container, None)

    def forget(self, container: str, since: float) -> None:
        """Corral started the container again (its start call went out at ``since``, unix seconds): a
        ``die`` from before then, still on its way, is of the run before."""
        self._died.pop(container, None)
        self._started[container] = int(since * 1e9)
        if len(self._started) > 4096:  # bounded: containers destroyed while the stream was down
            self._started.clear()

    def with_exits(self, observed: Iterable[ObservedContainer]) -> list[ObservedContainer]:
        """``observed`` with the containers that died shown as exited (with their exit code) until the
        listing catches up."""
        result = []
        for c in observed:
            if c.id in self._died:
                if c.state in ACTIVE:
                    c = replace(c, state="exited", exit_code=self._died[c.id])
                else:
                    del self._died[c.id]  # the listing has caught up
            result.append(c)
        return result

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
