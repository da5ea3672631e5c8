"""What the units reconciler reports about the units, and waiting for them to be up.

``unit_status`` and ``list_status`` are what ``corral units list|inspect`` show. ``wait_first_wave``
is what the ``units`` boot phase waits for: every unit of the first wave started, finished, failed to
start, stopped or held for its mount (a createonly unit: created, or failed). ``not_up`` says which
units are not up yet (running for less than ``UP_AFTER`` seconds, pending, restarting, crash-looping,
failed); ``wait_all_up``, looked at again after each reconcile, is what the supervisor's ``corral
<version> ready`` line waits for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from handlers.units.desired import DesiredUnits
from handlers.units.observe import ContainerView
from handlers.units.restarts import Restarts
from units.policy import CRASH_LOOPING, EXITED, PENDING, RESET_AFTER, RUNNING, STOPPED, WAITING

FIRST_WAVE_TIMEOUT = 60.0  # seconds the `units` boot phase waits for the first wave
UP_AFTER = 1.0  # seconds a unit must have been running to count as up (one that dies at once is not)
UP_RECHECK = 5.0  # seconds `wait_all_up` waits at most before it looks again without a reconcile
CREATED = "created"  # a createonly unit's state once its container exists
REMOVING = "removing"  # a unit no longer configured whose container is still there
# States that count as up whatever the time: a finished oneshot, a unit the user stopped, one that waits
# for a missing mount (not a failure), a createonly unit whose container exists.
UP_STATES = frozenset({EXITED, STOPPED, WAITING, CREATED})


def not_up(statuses: Iterable[Mapping[str, Any]], stable: float = UP_AFTER) -> dict[str, str]:
    """The units that are not up, name -> state, from ``UnitsStatus.unit_status`` entries. Up: running
    for ``stable`` seconds or more, or in ``UP_STATES``. Not up: pending, restarting, crash-looping,
    failed, and running for less than ``stable`` seconds (it may be about to die)."""
    missing: dict[str, str] = {}
    for status in statuses:
        state = str(status["state"])
        uptime = status.get("uptime")
        if state in UP_STATES or (state == RUNNING and uptime is not None and uptime >= stable):
            continue
        missing[str(status["name"])] = state
    return missing


def up_in(statuses: Iterable[Mapping[str, Any]], stable: float = UP_AFTER) -> float | None:
    """Seconds until time alone may bring a unit up (no event, no reconcile): a running unit reaching
    ``stable`` seconds, a crash-looping one that runs reaching ``RESET_AFTER`` (it is running then).
    None: nothing changes by time alone."""
    due: list[float] = []
    for status in statuses:
        uptime = status.get("uptime")
        if uptime is None:
            continue
        if status["state"] == RUNNING and uptime < stable:
            due.append(stable - uptime)
        elif status["state"] == CRASH_LOOPING:
            due.append(max(0.0, max(RESET_AFTER, stable) - uptime))
    return min(due) if due else None


class UnitsStatus:
    """The units' status, from their policies, containers and errors, and the plan's reasons to wait
    (``waiting``, unit -> reason, set by each reconcile)."""

    def __init__(self, desired: DesiredUnits, containers: ContainerView, restarts: Restarts,
                 clock: Callable[[], float]) -> None:
        self.desired = desired
        self.containers = containers
        self.restarts = restarts
        self.clock = clock
        self.waiting: dict[str, str] = {}
        self.first_wave = asyncio.Event()
        self._reconciled = asyncio.Event()  # set after each reconcile: `wait_all_up` looks again

    def unit_status(self, name: str) -> dict[str, Any]:
        unit = self.desired.units.get(name)
        policy = self.desired.policies.get(name)
        if unit is None or policy is None:
            raise KeyError(name)
        now = self.clock()
        status = policy.status(now)
        c = self.containers.current.get(name)
        state = status.state
        if unit.createonly:
            state = CREATED if c is not None else PENDING
        uptime = None
        if policy.started_at is not None and status.state in (RUNNING, CRASH_LOOPING):
            uptime = round(max(0.0, now - policy.started_at), 3)
        next_start = status.next_start
        if next_start is None:
            next_start = self.restarts.unanswered.get(name)  # an action dockerd did not answer, retried
        next_in = None if next_start is None else round(max(0.0, next_start - now), 3)
        return {
            "name": name,
            "scope": unit.scope,
            "state": state,
            "restarts": status.restarts,
            "failures": status.failures,
            "uptime": uptime,
            "last_exit": status.last_exit,
            "next_start_in": next_in,
            "restart": str(unit.restart),
            "image": unit.image,
            "container": c.id[:12] if c is not None else None,
            "container_state": c.state if c is not None else None,
            "oneshot": unit.oneshot,
            "createonly": unit.createonly,
            "waiting": self.waiting.get(name),
            "error": self.restarts.errors.get(name),
            "notes": list(unit.notes),
            **({"spare": spare.id[:12] if (spare := self.containers.spares.get(name)) else None}
               if unit.replace else {}),  # a replace-mode unit's spare (None: none yet)
        }

    def list_status(self) -> list[dict[str, Any]]:
        """Every configured unit, and every container of a unit no longer configured that is still there
        (state "removing", until a reconcile sees it gone)."""
        rows = {name: self.unit_status(name) for name in self.desired.units}
        for name, c in self.containers.leaving.items():
            if name not in rows:
                rows[name] = {"name": name, "scope": c.scope, "state": REMOVING, "restarts": 0,
                              "failures": 0, "uptime": None, "last_exit": None, "next_start_in": None,
                              "restart": None, "image": None, "container": c.id[:12],
                              "container_state": c.state, "oneshot": False, "createonly": False,
                              "waiting": None, "error": "no longer configured; container being removed",
                              "notes": []}
        return [rows[name] for name in sorted(rows)]

    def states(self) -> dict[str, int]:
        """How many configured units are in each state."""
        states: dict[str, int] = {}
        for name in self.desired.units:
            state = self.unit_status(name)["state"]
            states[state] = states.get(state, 0) + 1
        return states

    # ---- the first wave ------------------------------------------------------------------------------
    def _settled(self, name: str) -> bool:
        policy = self.desired.policies.get(name)
        unit = self.desired.units.get(name)
        if policy is None or unit is None:
            return True
        if unit.createonly:
            return name in self.containers.current or name in self.restarts.errors
        return policy.attempted or policy.finished or policy.stopped or policy.held

    def check_first_wave(self) -> None:
        if self.first_wave.is_set() or self.desired.graph is None:
            return
        waves = self.desired.graph.waves()
        if not waves or all(self._settled(n) for n in waves[0]):
            self.first_wave.set()

    async def wait_first_wave(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.first_wave.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- every unit up ---------------------------------------------------------------------------------
    def reconciled(self) -> None:
        """A reconcile ended: ``wait_all_up`` looks again."""
        self._reconciled.set()

    def not_up(self) -> dict[str, str]:
        """The units that are not up now, name -> state (see ``not_up``)."""
        return not_up(self.list_status(), UP_AFTER)

    async def wait_all_up(self, timeout: float | None = None) -> dict[str, str]:
        """Return {} once every unit is up, or the units that are not (name -> state) after ``timeout``
        seconds (None: no limit). Looked at again after each reconcile, and when time alone may bring a
        unit up (``up_in``; ``UP_RECHECK`` at most)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._reconciled.clear()
            statuses = self.list_status()
            missing = not_up(statuses, UP_AFTER)
            if not missing:
                return {}
            waits = [UP_RECHECK]
            soon = up_in(statuses, UP_AFTER)
            if soon is not None:
                waits.append(soon)
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return missing
                waits.append(left)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconciled.wait(), min(waits))
