"""The one backoff policy: exponential delay, capped, reset after a period of good behaviour.

Used by the handler runner (crashing reconcilers), source reconnects and, later, unit restarts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """First retry after ``first`` seconds (0 = immediately), then ``initial`` doubling up to ``cap``.

    ``reset_after`` seconds without a failure starts the sequence over."""

    initial: float = 0.1
    cap: float = 30.0
    factor: float = 2.0
    first: float = 0.0
    reset_after: float = 10.0
    clock: Callable[[], float] = time.monotonic
    failures: int = field(default=0, init=False)
    _last_failure: float | None = field(default=None, init=False)

    def next_delay(self, ran_for: float | None = None) -> float:
        """Record a failure now and return how long to wait before the next attempt.

        ``ran_for`` is how long the thing ran before this failure; when not given, the time since
        the previous failure stands in for it. Either way, ``reset_after`` of it starts over."""
        now = self.clock()
        if ran_for is None and self._last_failure is not None:
            ran_for = now - self._last_failure
        if ran_for is not None and ran_for >= self.reset_after:
            self.failures = 0
        self._last_failure = now
        self.failures += 1
        return self.delay_for(self.failures)

    def delay_for(self, failure_number: int) -> float:
        if failure_number <= 1:
            return self.first
        return min(self.cap, self.initial * self.factor ** (failure_number - 2))

    def reset(self) -> None:
        self.failures = 0
        self._last_failure = None


def start_polls() -> Backoff:
    """Polls of a daemon that is starting (is it answering yet?): 20 ms, growing to 0.5 s, never starting
    over. Short, because every moment between its first answer and the poll that sees it is boot time
    lost; used while it is expected up soon (a dockerd's first ``/_ping``, an events source's first
    connection), not for a daemon that went away (that one waits on the Backoff of its own reconnects)."""
    return Backoff(first=0.02, initial=0.02, cap=0.5, reset_after=float("inf"))
