"""The restart policy of one unit: the supervisor, not dockerd, decides whether and when a unit that
stopped runs again. One class, using ``supervisor.backoff.Backoff`` (the one backoff policy).

- ``always``: restart after any exit. ``unless-stopped``: the same, and a deliberate stop is
  remembered across supervisor restarts (see ``remembered_stops``). ``on-failure[:N]``: restart after
  a non-zero exit, at most N times in a row (Docker's maximum retry count: ``on-failure:3`` runs at
  most 4 times; the failure after the Nth restart gives up). ``no``: never restart after an exit.
- A start that fails (missing image, bad mount) is a failure like a crash, under every policy: for
  ``no`` it is retried like ``on-failure`` (without a limit), so a unit whose image arrives late still
  comes up.
- Timing: the first restart is immediate, then 0.1 s doubling to 30 s; a run of 10 s or more starts
  the sequence (and the on-failure:N count) over.
- More than 5 restarts within 10 s: the unit is ``crash-looping``. It is still retried, at the backoff
  delay (which reaches the 30 s cap), and stays ``crash-looping`` until it runs for 10 s.
- A deliberate stop (``corral units down``) is never undone by the policy; ``resume`` (``corral
  service up``) forgets it and the backoff.
- A unit whose required mount is missing is *held* (``hold``): it is ``waiting``, not started, and an
  exit meanwhile (the stop corral made because the mount went) is neither a failure nor a restart.
  ``release`` (the mount is back) makes a waiting unit pending again: it is started as at boot.

The caller feeds events in (``on_started``, ``on_exit``, ``on_start_failed``) and reads ``next_start``
(when a restart is due) and ``status``. Times come from the injectable ``clock`` unless passed."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from supervisor.backoff import Backoff
from units.model import RestartSpec

INITIAL = 0.1
CAP = 30.0
RESET_AFTER = 10.0
CRASH_WINDOW = 10.0
CRASH_RESTARTS = 5

PENDING = "pending"  # not started yet in this supervisor's life (waiting for its turn)
RUNNING = "running"
RESTARTING = "restarting"  # stopped; a restart is scheduled
CRASH_LOOPING = "crash-looping"  # restarting too often; still retried at the backoff delay
FAILED = "failed"  # stopped with a failure and will not be restarted
EXITED = "exited"  # stopped with exit code 0 and will not be restarted (a finished oneshot)
STOPPED = "stopped"  # stopped deliberately by the user
WAITING = "waiting"  # a mount it requires is missing: started when it is there (not a failure)
STATES = (PENDING, RUNNING, RESTARTING, CRASH_LOOPING, FAILED, EXITED, STOPPED, WAITING)


@dataclass(frozen=True)
class Decision:
    """What an exit (or a failed start) leads to: ``restart`` after ``delay`` seconds, and the unit's
    ``state`` (``failed``: it gave up)."""

    restart: bool
    delay: float
    state: str

    @property
    def at_once(self) -> bool:
        """A restart with no delay (the first of a run): the runtime may start it right away."""
        return self.restart and self.delay == 0


@dataclass(frozen=True)
class PolicyStatus:
    state: str
    restarts: int  # restarts decided in this supervisor's life
    failures: int  # failures in a row (reset by a 10 s run)
    last_exit: int | None
    next_start: float | None  # clock time a restart is due, or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class UnitPolicy:
    """Restart decisions for one unit. Make a new one when the unit's definition changes."""

    def __init__(
        self,
        restart: RestartSpec | str = "no",
        *,
        clock: Callable[[], float] = time.monotonic,
        stopped: bool = False,
    ) -> None:
        self.restart = restart if isinstance(restart, RestartSpec) else RestartSpec.parse(restart)
        self.clock = clock
        self.backoff = Backoff(initial=INITIAL, cap=CAP, reset_after=RESET_AFTER, first=0.0, clock=clock)
        self.restarts = 0
        self.last_exit: int | None = None
        self.next_start: float | None = None
        self.started_at: float | None = None
        self.attempted = False  # a start was made (or failed) in this supervisor's life
        self.finished = False  # it has stopped at least once (exit or failed start): oneshot dependents go
        self.waiting_for: tuple[str, ...] = ()  # required mounts that are missing (held while non-empty)
        self.started_on: dict[str, str] | None = None  # the required mounts it was started on (path -> id)
        self._state = STOPPED if stopped else PENDING
        self._crash_looping = False
        self._recent: deque[float] = deque()

    # -- events ---------------------------------------------------------------------------------------

    def on_started(self, now: float | None = None, mounts: dict[str, str] | None = None) -> None:
        """The container started; ``mounts`` are the identities of the required mounts it started on
        (None: not known; ``units.mounts.sync_mounts`` then takes the current ones)."""
        now = self.clock() if now is None else now
        self.attempted = True
        self.started_at = now
        self.next_start = None
        self.started_on = mounts
        if self._state != STOPPED:
            self._state = RUNNING

    def on_exit(self, exitcode: int | None, ran_for: float, now: float | None = None) -> Decision:
        """The container stopped after ``ran_for`` seconds with ``exitcode`` (None: unknown, e.g. it was
        removed behind corral's back; counted as a failure)."""
        now = self.clock() if now is None else now
        self.last_exit = exitcode
        self.finished = True
        self.started_at = None
        if ran_for >= RESET_AFTER:
            self._crash_looping = False
            self._recent.clear()
        if self._state == STOPPED:
            return self._settle(STOPPED)
        if self.waiting_for:
            return self._settle(WAITING)
        failed = exitcode != 0
        name = self.restart.name
        if name in ("always", "unless-stopped") or (name == "on-failure" and failed):
            return self._schedule(ran_for, now)
        if name == "on-failure":
            self.backoff.reset()
        return self._settle(FAILED if failed else EXITED)

    def on_start_failed(self, now: float | None = None) -> Decision:
        """Creating or starting the container failed. Retried under every policy (``no`` included)."""
        now = self.clock() if now is None else now
        self.attempted = True
        self.finished = True
        self.started_at = None
        if self._state == STOPPED:
            return self._settle(STOPPED)
        if self.waiting_for:
            return self._settle(WAITING)
        return self._schedule(0.0, now)

    def deliberately_stopped(self) -> None:
        """The user stopped the unit: never restart it until ``resume``."""
        self._state = STOPPED
        self.next_start = None

    def resume(self) -> None:
        """The user started the unit again: forget the stop, the backoff and the crash loop. (A unit
        held for a mount stays waiting for it.)"""
        self.backoff.reset()
        self._recent.clear()
        self._crash_looping = False
        self.next_start = None
        self._state = WAITING if self.waiting_for else PENDING

    def hold(self, missing: tuple[str, ...]) -> None:
        """Required mounts are missing: never start (nor restart) the unit until ``release``. A running
        unit keeps running here (stopping it is the plan's call); its exit then makes it ``waiting``."""
        self.waiting_for = tuple(missing)
        if self._state in (PENDING, RESTARTING, FAILED, EXITED):
            self._state = WAITING
            self.next_start = None

    def release(self) -> None:
        """The required mounts are all there: a waiting unit is pending again (started as at boot)."""
        self.waiting_for = ()
        if self._state == WAITING:
            self._state = PENDING

    # -- reading --------------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """Deliberately stopped by the user."""
        return self._state == STOPPED

    @property
    def held(self) -> bool:
        """Held for a missing mount (``hold``)."""
        return bool(self.waiting_for)

    @property
    def fresh(self) -> bool:
        """Nothing happened yet in this supervisor's life: it should be started (at boot, or when added)."""
        return self._state == PENDING

    def start_due(self, now: float | None = None) -> bool:
        """A scheduled restart is due (or the unit is fresh)."""
        if self._state == PENDING:
            return True
        now = self.clock() if now is None else now
        return self.next_start is not None and now >= self.next_start

    def state(self, now: float | None = None) -> str:
        if self._state == RUNNING and self._crash_looping:
            now = self.clock() if now is None else now
            if self.started_at is not None and now - self.started_at >= RESET_AFTER:
                self._crash_looping = False
                self._recent.clear()
        if self._crash_looping and self._state in (RUNNING, RESTARTING):
            return CRASH_LOOPING
        return self._state

    def status(self, now: float | None = None) -> PolicyStatus:
        return PolicyStatus(
            self.state(now), self.restarts, self.backoff.failures, self.last_exit, self.next_start
        )

    # -- internals ------------------------------------------------------------------------------------

    def _restarts_used_up(self) -> bool:
        """``on-failure:N`` has made its N restarts in a row (N is Docker's maximum retry count). The
        backoff counts the failures in a row, this one included (a 10 s run starts it over): the
        restarts already made in a row are one fewer."""
        limit = self.restart.max_retries if self.restart.name == "on-failure" else None
        return limit is not None and self.backoff.failures - 1 >= limit

    def _settle(self, state: str) -> Decision:
        self._state = state
        self.next_start = None
        return Decision(False, 0.0, state)

    def _schedule(self, ran_for: float, now: float) -> Decision:
        delay = self.backoff.next_delay(ran_for=ran_for)
        if self._restarts_used_up():
            return self._settle(FAILED)
        self.restarts += 1
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - CRASH_WINDOW:
            self._recent.popleft()
        if len(self._recent) > CRASH_RESTARTS:
            self._crash_looping = True
        self._state = RESTARTING
        self.next_start = now + delay
        return Decision(True, delay, CRASH_LOOPING if self._crash_looping else RESTARTING)


def remembered_stops(policies: Mapping[str, UnitPolicy]) -> list[str]:
    """The deliberate stops to persist: units under ``unless-stopped`` that the user stopped. The
    caller writes this list (e.g. JSON under /var/lib/corral, with supervisor.atomic.write_atomic)
    whenever it changes, and passes ``stopped=name in list`` when it makes the policies at start-up.
    Other policies forget a deliberate stop when the supervisor restarts, as Docker's do."""
    return sorted(n for n, p in policies.items() if p.stopped and p.restart.name == "unless-stopped")


def make_policies(
    restarts: Mapping[str, RestartSpec],
    remembered: Iterable[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, UnitPolicy]:
    """Policies for units at start-up; ``remembered`` is what ``remembered_stops`` persisted."""
    keep = set(remembered)
    return {
        name: UnitPolicy(spec, clock=clock, stopped=name in keep and spec.name == "unless-stopped")
        for name, spec in restarts.items()
    }
