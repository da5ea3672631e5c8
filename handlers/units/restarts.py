"""The units' exits and failed starts, between the restart policies and the reconciler.

The decision itself -- does an exit lead to a restart, after what delay, or does the unit give up -- is
``units.plan.decide_exit``'s (``UnitPolicy.on_exit``'s rules), called here for both paths: the
reconcile (``sync``, through ``units.plan.sync_policies``) and the fast path (``exited``, from a ``die``
event). This module keeps what the reconciler must remember about a unit's failures (its last error,
shown by ``corral units list``; a create that failed, retried on the policy's schedule only: ``due``;
a missing image, retried as soon as it is there: ``images_arrived``; an action dockerd did not answer,
retried after a short backoff of its own: ``unanswered``) and writes the journal's lines about exits and
failed starts (with ``unit=``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from handlers.units.desired import DesiredUnits, Reloaded
from handlers.units.dockerds import unanswered_backoff
from supervisor.backoff import Backoff
from units.model import Unit
from units.plan import (
    ACTIVE,
    Action,
    Create,
    ObservedContainer,
    Recreate,
    Start,
    Wait,
    decide_exit,
    sync_policies,
)
from units.policy import FAILED, STOPPED, WAITING, Decision
from units.runtime import DockerAPIError, DockerUnavailable, NotFound

log = structlog.get_logger("units")

UNANSWERED = "dockerd did not answer; retrying"  # the Wait's reason for an action retried after that


class Restarts:
    """The last error of each unit (``errors``), the units whose last create failed (``create_failed``),
    those whose start failed for want of their image (``missing_image``) and those whose action dockerd
    did not answer, with when it is tried again (``unanswered``, on the clock)."""

    def __init__(self, desired: DesiredUnits, *, clock: Callable[[], float],
                 on_reload: Callable[[], None] | None = None) -> None:
        self.desired = desired
        self.clock = clock
        self.on_reload = on_reload  # after a `reloadconfig` unit ran
        self.errors: dict[str, str] = {}
        self.create_failed: set[str] = set()  # retried when due
        self.missing_image: set[str] = set()
        self.unanswered: dict[str, float] = {}
        self._unanswered_backoffs: dict[str, Backoff] = {}

    def sync(self, idle: Mapping[str, Unit], observed: Sequence[ObservedContainer], now: float) -> None:
        """Every exit the listing shows reaches the policy of its unit (``idle``: units with no action in
        flight), and is reported; a policy that decided an exit while its container runs follows the
        container again (``units.plan.adopts``). A unit whose container runs needs no retry of an action
        dockerd did not answer (it did what was asked after all)."""
        followed = {n for n in idle if (p := self.desired.policies.get(n)) is not None
                    and not p.fresh and p.started_at is None}
        for name, decision in sync_policies(idle, observed, self.desired.policies, now).items():
            self.report(name, decision)
        for name in sorted(followed):
            policy = self.desired.policies[name]
            if policy.started_at is not None:
                log.warning("unit is running again; following its container", unit=name,
                            restarts=policy.restarts)
        running = {c.unit for c in observed if c.unit is not None and c.unit in idle and c.state in ACTIVE}
        for answered in sorted(running & set(self.unanswered)):
            self.answered(answered)

    def exited(self, name: str, container: ObservedContainer, *, via: str) -> Decision | None:
        """The unit's ``container`` exited, before the listing shows it (``via``: "die", dockerd's event,
        or "pidfd", the kernel's word that its init is gone): the policy's decision, reported (None: the
        policy does not believe the unit was running)."""
        decision = decide_exit(self.desired.policy(name), container, self.clock())
        if decision is not None:
            self.report(name, decision, via=via)
        return decision

    def report(self, name: str, decision: Decision, *, via: str = "listing") -> None:
        """The journal's line about an exit and its decision (``via``: what told of the exit); a
        ``reloadconfig`` unit that is not restarted has the config reloaded."""
        policy = self.desired.policies[name]
        unit = self.desired.units[name]
        code = policy.last_exit
        fields: dict[str, Any] = {"unit": name, "exit_code": code, "state": decision.state,
                                  "restarts": policy.restarts, "via": via}
        if decision.restart:
            level = log.info if code == 0 else log.warning
            level("unit exited; restarting", restart_in=decision.delay, failures=policy.backoff.failures,
                  **fields)
        elif decision.state == STOPPED:
            log.info("unit exited (stopped by the user)", **fields)
        elif decision.state == WAITING:
            log.info("unit exited; waiting for its mount", mounts=list(policy.waiting_for), **fields)
        elif decision.state == FAILED:
            what = "oneshot failed" if unit.oneshot else "unit failed; not restarting"
            log.warning(what, restart=str(unit.restart), **fields)
        else:
            log.info("oneshot finished" if unit.oneshot else "unit exited; not restarting", **fields)
        if unit.reloadconfig and not decision.restart and self.on_reload is not None:
            log.info("reloading the config after the unit ran", unit=name)
            self.on_reload()

    def created(self, name: str) -> None:
        self.errors.pop(name, None)
        self.create_failed.discard(name)

    def started(self, name: str) -> None:
        self.errors.pop(name, None)
        self.missing_image.discard(name)

    def not_answered(self, name: str, exc: DockerUnavailable) -> float:
        """dockerd did not answer an action for the unit (refused, reset, or past the call's deadline: a
        dockerd gone, frozen or swamped). Not a failure of the unit (its policy is not told), but never
        left without a next attempt: the unit's actions wait (``due``) until the returned delay passed;
        the reconciler's timer brings that reconcile."""
        backoff = self._unanswered_backoffs.setdefault(name, unanswered_backoff(self.clock))
        delay = backoff.next_delay()
        self.unanswered[name] = self.clock() + delay
        self.errors[name] = str(exc)
        log.warning("dockerd not answering; will retry", unit=name, error=str(exc), retry_in=delay)
        return delay

    def answered(self, name: str) -> None:
        """dockerd answered an action for the unit: no retry pending, the backoff starts over."""
        if self.unanswered.pop(name, None) is not None:
            self.errors.pop(name, None)
        self._unanswered_backoffs.pop(name, None)

    def start_failed(self, name: str, exc: DockerAPIError, *, create: bool) -> None:
        """Creating (``create``) or starting the unit's container failed: a failure for its policy, which
        schedules the retry."""
        if create:
            self.create_failed.add(name)
        policy = self.desired.policies.get(name)
        if policy is None:
            return
        decision = policy.on_start_failed(self.clock())
        unit = self.desired.units.get(name)
        self.errors[name] = exc.message
        if isinstance(exc, NotFound) and unit is not None and "image" in exc.message.lower():
            self.missing_image.add(name)
        log.warning("unit could not start; retrying", unit=name, error=exc.message, retry_in=decision.delay,
                    failures=policy.backoff.failures, state=decision.state)

    def forget(self, reloaded: Reloaded) -> None:
        """Units recreated or removed by a reload start afresh."""
        for name in reloaded.changed:
            self.errors.pop(name, None)
            self.create_failed.discard(name)
        for name in reloaded.removed:
            self.errors.pop(name, None)
            self.missing_image.discard(name)
            self.create_failed.discard(name)
            self.unanswered.pop(name, None)
            self._unanswered_backoffs.pop(name, None)

    def due(self, actions: list[Action], now: float) -> list[Action]:
        """plan creates a missing container whatever the policy says (creating is not starting); but a
        create that failed (no such image, a bad mount) is a failed start, retried on the policy's
        schedule: until then it is a Wait. So is any action of a unit whose last action dockerd did not
        answer, until its retry is due (``not_answered``)."""
        result: list[Action] = []
        for action in actions:
            retry = self.unanswered.get(action.unit)
            if retry is not None and retry > now and not isinstance(action, Wait):
                if not any(isinstance(w, Wait) and w.unit == action.unit for w in result):
                    result.append(Wait(action.unit, UNANSWERED, retry))
                continue
            if isinstance(action, Create | Recreate) and action.unit in self.create_failed:
                policy = self.desired.policies.get(action.unit)
                due = policy.next_start if policy is not None else None
                if due is not None and due > now:
                    result.append(Wait(action.unit, "restart scheduled", due))
                    continue
            if isinstance(action, Start) and any(isinstance(w, Wait) and w.unit == action.unit
                                                 for w in result):
                continue
            result.append(action)
        return result

    def images_arrived(self, desired: Mapping[str, Unit], image_ids: Mapping[str, str]) -> None:
        """Image ids were looked up: a unit whose start failed for want of its image, now there, is
        retried now, not at its backoff's time."""
        now = self.clock()
        for name in sorted(self.missing_image):
            waiting = desired.get(name)
            policy = self.desired.policies.get(name)
            if waiting is None or policy is None or waiting.image not in image_ids:
                continue
            self.missing_image.discard(name)
            if policy.next_start is not None and policy.next_start > now:
                policy.next_start = now  # the image it waited for is here: retry now, not at backoff's time
                log.info("image is here; starting the unit", unit=name, image=waiting.image)
