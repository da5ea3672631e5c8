"""The units' containers as the reconciler sees them: one ``GET
/containers/json?all=1&filters=label=io.corral.unit`` per dockerd, nothing inspected (the listing has the
state, the labels and, in ``Status``, the exit code: all that ``units.plan`` needs).

Containers carry ``io.corral.unit`` and ``io.corral.config-hash``; one with the unit label but no hash
was not made by corral and is treated as someone else's (never removed). The system dockerd is always
listed; the user's when units run there, or when the unit that *is* the user dockerd is configured."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from handlers.units.dockerds import Dockerds
from handlers.units.image_ids import ImageIds
from units.model import LABEL_HASH, LABEL_UNIT, SCOPES, USER_DOCKERD_UNIT, Scope, Unit
from units.plan import ACTIVE, ObservedContainer, spares
from units.runtime import DockerUnavailable

log = structlog.get_logger("units")

_EXIT = re.compile(r"\((-?\d+)\)")


def exit_code_of(status: str) -> int | None:
    """The exit code in a listing's ``Status`` ("Exited (137) 2 seconds ago"), if it shows one."""
    if not status.startswith(("Exited", "Restarting")):
        return None
    found = _EXIT.search(status)
    return int(found.group(1)) if found else None


def observed_from_summary(raw: Mapping[str, Any], scope: Scope) -> ObservedContainer:
    """One entry of ``GET /containers/json`` as plan's input. No times (the policy's own clock stands in
    for the run time). A container with the unit label but no config hash was not created by corral:
    its unit label is dropped, so it is never touched (only reported when it holds a unit's name)."""
    seen = ObservedContainer.from_list(raw, scope)
    labels = dict(seen.labels)
    if LABEL_UNIT in labels and LABEL_HASH not in labels:
        labels.pop(LABEL_UNIT)
    return replace(seen, labels=labels, exit_code=exit_code_of(str(raw.get("Status") or "")))


def _current(containers: Sequence[ObservedContainer]) -> ObservedContainer:
    return next((c for c in containers if c.state in ACTIVE), containers[0])


def current_containers(units: Mapping[str, Unit], observed: Iterable[ObservedContainer]
                       ) -> dict[str, ObservedContainer]:
    """Each unit's container as plan keeps it (the running one, else the first; spares are not)."""
    mine: dict[str, list[ObservedContainer]] = {}
    for c in observed:
        name = c.unit
        if name is not None and name in units and units[name].scope == c.scope and not c.spare:
            mine.setdefault(name, []).append(c)
    return {name: _current(cs) for name, cs in mine.items()}


class ContainerView:
    """What the last look showed: each unit's container (``current``; kept up to date by the actions
    between looks), the containers of units no longer configured that are still there (``leaving``:
    `service list` shows them as "removing" rather than as gone) and the dockerds that answered
    (``reachable``); when corral last started each unit (``last_start``); and the spare each replace-mode
    unit would start at its next exit (``spares``, see ``units.plan.spares``)."""

    def __init__(self, dockerds: Dockerds, images: ImageIds,
                 follow_events: Callable[[Scope], None] | None = None) -> None:
        self.dockerds = dockerds
        self.images = images
        self.follow_events = follow_events  # start an events source for a dockerd (the user's), once
        self.current: dict[str, ObservedContainer] = {}
        self.leaving: dict[str, ObservedContainer] = {}
        self.reachable: set[Scope] = set()
        self.last_start: dict[str, float] = {}  # unit -> wall time (time.time()) corral last started it
        self.spares: dict[str, ObservedContainer] = {}

    def _wants(self, scope: Scope, units: Mapping[str, Unit]) -> bool:
        """Whether to watch ``scope``'s dockerd: always the system one; the user's when units run there,
        or when the unit that *is* the user dockerd is configured (its images are preloaded)."""
        if scope == "system":
            return True
        return any(u.scope == scope for u in units.values()) or any(
            c.scope == scope for c in self.current.values()) or USER_DOCKERD_UNIT in units

    async def observe(self, units: Mapping[str, Unit]) -> list[ObservedContainer]:
        """List the units' containers of every dockerd wanted (``units``: the configured ones), and follow
        the image events of those that answered."""
        observed: list[ObservedContainer] = []
        reachable: set[Scope] = set()
        for scope in SCOPES:
            if not self._wants(scope, units):
                continue
            if scope != "system" and self.follow_events is not None:
                # From now on, not from when it first answers: its events source retries by itself, so
                # the daemon's coming up is seen even when no reconcile happens to look at that moment.
                self.follow_events(scope)
            runtime = self.dockerds.runtime(scope)
            if runtime is None:
                continue
            try:
                listed = await runtime.list_summaries()
            except DockerUnavailable as exc:
                log.debug("dockerd not answering; units wait for it", scope=scope, error=str(exc))
                self.dockerds.drop(scope)
                continue
            observed += [observed_from_summary(raw, scope) for raw in listed]
            reachable.add(scope)
            self.images.watch(scope, runtime)
        self.reachable = reachable
        return observed

    def keep(self, units: Mapping[str, Unit], desired: Mapping[str, Unit],
             observed: Iterable[ObservedContainer]) -> None:
        """Remember what ``observed`` shows: the current container of each unit of ``desired`` (those in
        reach), and the containers of names not in ``units`` (the configured ones)."""
        observed = list(observed)
        self.current = current_containers(desired, observed)
        self.spares = spares(desired, observed, self.images.ids)
        self.leaving = {c.unit: c for c in observed
                        if c.unit is not None and c.unit not in units and c.scope in self.reachable}
        self.last_start = {n: t for n, t in self.last_start.items() if n in units}

    def created(self, name: str, container: str, labels: Mapping[str, str], scope: Scope) -> None:
        """The unit's container ``container`` was created (not listed yet)."""
        self.current[name] = ObservedContainer(container, name, dict(labels), "created", scope=scope)

    def spare_created(self, name: str, container: str, container_name: str, labels: Mapping[str, str],
                      scope: Scope) -> None:
        """A spare container ``container`` of the unit was created (not listed yet)."""
        self.spares[name] = ObservedContainer(container, container_name, dict(labels), "created", scope=scope)

    def renamed(self, name: str, container: str) -> None:
        """The unit's container ``container`` was given the unit's name."""
        current = self.current.get(name)
        if current is not None and current.id == container:
            self.current[name] = replace(current, name=name)

    def started(self, name: str, at: float,
                spare: ObservedContainer | None = None) -> ObservedContainer | None:
        """The unit's container (``spare``: that spare, in place of the unit's container) was started
        (the start call went out at wall time ``at``): it is running now. Returns it (None: not seen)."""
        self.last_start[name] = at
        if spare is not None:
            if self.spares.get(name) == spare:
                del self.spares[name]
            self.current[name] = spare
        current = self.current.get(name)
        if current is not None:
            current = self.current[name] = replace(current, state="running")
        return current
