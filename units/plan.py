"""What to do about units, decided from plain data: ``plan(desired, observed, policies) -> actions``.

``desired`` is the loaded units; ``observed`` every container of both dockerds (``scope`` says
which); ``policies`` the units' ``UnitPolicy`` objects (read, never changed here). The runtime calls
``sync_policies`` first (so every stop it has not heard of yet reaches the policy), then ``plan``, then
carries out the actions in order and reports back to the policies (``on_started`` after a Start,
``on_start_failed`` when a Create, Recreate or Start fails). An exit is decided in one place,
``decide_exit``, whether the reconcile sees it or the runtime's fast path (a ``die`` event) does.

Rules:

- Containers without the ``io.corral.unit`` label are never touched.
- A corral container whose unit is no longer wanted (or moved to the other scope) is removed; so are
  extra containers of one unit (the running one, else the first, is kept).
- A unit with no container is created; one whose config hash differs from the unit's (definition or
  image changed) or that is ``dead`` is recreated. A recreated container that was running is started
  again at once; createonly units are never started.
- Otherwise a unit whose container is not running is started when its policy says so: at first
  (boot, or a unit just added: a fresh policy) or when a scheduled restart is due. A restart not yet
  due gives a ``Wait`` with its time, so the runtime can wake up then. (So: give a unit whose
  definition changed a fresh ``UnitPolicy``, and it runs again with the new definition; a ``no``
  unit that exited is not run again just because its image was re-pulled.)
- Create, Recreate and Start happen only once the unit's dependencies have settled (see
  ``units.graph``); until then the unit gets a ``Wait`` naming them.
- A deliberately stopped unit's running container is stopped, and nothing else is done for it.
- A unit whose image is in an archive still being loaded at boot (``preloading``) is neither created
  nor started: it gets a ``Wait`` naming the archive, and its policy is not touched (no failed start).
- A unit that requires mounts (``io.corral.requires-mount``; ``mounts`` says which are there, see
  ``units.mounts``) is neither created nor started while one is missing: it gets a ``Wait`` naming the
  paths; if it is running, it is stopped when a missing path's ``on_remove`` is ``stop`` (a path
  never seen counts as ``stop``), and left alone when it is ``ignore``. A unit running on a mount that
  has since been replaced (its policy's ``started_on`` differs from ``mounts``) is restarted. For the
  ordering, a unit held for a mount counts as settled: its dependents do not wait for the mount.

- A replace-mode unit (``io.corral.restart-mode: replace``) that runs, up to date, gets a spare
  container made from its definition (``CreateSpare``; labelled ``io.corral.spare``, never started until
  needed). When its container exited and its policy restarts it, the spare is started in its place
  (``Replace``: the old one is removed, the spare takes the unit's name) instead of the old one being
  started again; with no spare it is started again as any unit is. A spare that is stale (the definition
  or image changed), extra, or of a unit no longer in replace mode (or no longer configured) is removed.
  Its running container, when it does not have the unit's name (a spare started in place of the one
  that had it), gets it once no container has it (``Rename``). A unit that
  will not run again (stopped by the user, held for a mount, or exited and not to be restarted) keeps no
  spare.

Nothing changed, nothing pending: no actions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from units.graph import UnitGraph
from units.model import LABEL_HASH, LABEL_SPARE, LABEL_UNIT, Scope, Unit
from units.mounts import MountState, missing_mounts, stale_mounts, stopping_mounts
from units.policy import Decision, UnitPolicy
from units.spec import config_hash, create_request, spare_request

ACTIVE = ("running", "restarting", "paused")


@dataclass(frozen=True)
class ObservedContainer:
    """One container as dockerd reports it. Times are seconds since the epoch (None: never)."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    state: str = "created"  # created | running | paused | restarting | removing | exited | dead
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    image_id: str | None = None
    scope: Scope = "system"

    @property
    def unit(self) -> str | None:
        return self.labels.get(LABEL_UNIT)

    @property
    def spare(self) -> bool:
        """A replace-mode unit's spare: created by corral to stand in at the next exit, never started yet
        (once started it is the unit's container like any other)."""
        return self.labels.get(LABEL_SPARE) == "true" and self.state == "created"

    @property
    def ran_for(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any], scope: Scope = "system") -> ObservedContainer:
        """From ``GET /containers/{id}/json``."""
        state = data.get("State") or {}
        config = data.get("Config") or {}
        return cls(
            id=str(data.get("Id", "")),
            name=str(data.get("Name", "")).lstrip("/"),
            labels=dict(config.get("Labels") or {}),
            state=str(state.get("Status", "created")),
            exit_code=state.get("ExitCode"),
            started_at=_docker_time(state.get("StartedAt")),
            finished_at=_docker_time(state.get("FinishedAt")),
            image_id=data.get("Image"),
            scope=scope,
        )

    @classmethod
    def from_list(cls, data: Mapping[str, Any], scope: Scope = "system") -> ObservedContainer:
        """From one entry of ``GET /containers/json?all=1`` (no exit code or times there)."""
        names = data.get("Names") or [""]
        return cls(
            id=str(data.get("Id", "")),
            name=str(names[0]).lstrip("/"),
            labels=dict(data.get("Labels") or {}),
            state=str(data.get("State", "created")),
            image_id=data.get("ImageID"),
            scope=scope,
        )


def _docker_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# -------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Create:
    unit: str
    scope: Scope
    config_hash: str
    body: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Recreate:
    """Stop and remove ``old_id``, then create the unit's container again."""

    unit: str
    scope: Scope
    old_id: str
    config_hash: str
    body: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Start:
    unit: str
    scope: Scope


@dataclass(frozen=True)
class Stop:
    """Stop the unit's container: the user stopped it, or (``mounts`` given) a mount it requires is gone."""

    unit: str
    scope: Scope
    container_id: str
    mounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Restart:
    """Stop the unit's running container and start it again: the ``mounts`` it runs on were replaced."""

    unit: str
    scope: Scope
    container_id: str
    mounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Remove:
    """Stop (if running) and remove a corral container no unit wants."""

    container_id: str
    name: str
    scope: Scope
    unit: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do for ``unit`` yet: ``reason`` says why; ``until`` is when to look again (None: when
    something else happens, e.g. a dependency starts or a oneshot exits)."""

    unit: str
    reason: str
    until: float | None = None


@dataclass(frozen=True)
class CreateSpare:
    """Create a spare container for a replace-mode unit (``io.corral.restart-mode: replace``), from the
    unit's definition, labelled ``io.corral.spare``: it is started in place of the unit's container at its
    next exit (``Replace``)."""

    unit: str
    scope: Scope
    config_hash: str
    body: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Replace:
    """Restart a replace-mode unit by starting its spare ``spare_id``; then remove ``old_id`` (the container
    that exited, with its anonymous volumes) and give the spare the unit's name. The next reconcile
    creates the next spare."""

    unit: str
    scope: Scope
    old_id: str
    spare_id: str


@dataclass(frozen=True)
class Rename:
    """The unit's running container does not have the unit's name (a spare started in place of the one
    that had it) and no container has that name now: give it the name."""

    unit: str
    scope: Scope
    container_id: str


Action = Create | Recreate | Start | Stop | Restart | Remove | Wait | CreateSpare | Replace | Rename


# ----------------------------------------------------------------------------------------------- plan


def _fresh(unit: Unit) -> UnitPolicy:
    return UnitPolicy(unit.restart)


def _current(containers: list[ObservedContainer]) -> tuple[ObservedContainer, list[ObservedContainer]]:
    keep = next((c for c in containers if c.state in ACTIVE), containers[0])
    return keep, [c for c in containers if c is not keep]


def sync_policies(
    desired: Mapping[str, Unit],
    observed: Sequence[ObservedContainer],
    policies: Mapping[str, UnitPolicy],
    now: float,
) -> dict[str, Decision]:
    """Bring the policies up to date with what dockerd shows, before ``plan``:

    - a policy that believes its unit is running, but whose container is not (or is gone), is told
      that it stopped (``on_exit``, with the container's exit code and run time);
    - a policy that does not believe its unit is running, but whose container runs, adopts it
      (``on_started``; ``adopts``): a fresh one (found running when the supervisor started), so that
      its next exit goes through the restart policy instead of counting as a first start; and one
      that decided an exit (``restarting``, ``failed``, ...) while the container runs again, so that
      its state agrees with the container and its next death is counted. Nothing else would bring
      such a policy back: plan starts no running container, and an exit is decided only for a policy
      that believes its unit runs (issue 14: a unit ``restarting`` for minutes while it ran).

    Returns the exit decisions by unit. (Changes the policies; no I/O.)"""
    mine = _by_unit(desired, observed)
    decisions: dict[str, Decision] = {}
    for name in desired:
        policy = policies.get(name)
        containers = mine.get(name)
        container = _current(containers)[0] if containers else None
        if policy is None:
            continue
        if container is not None and container.state in ACTIVE and adopts(policy):
            policy.on_started(now)
            continue
        decision = decide_exit(policy, container, now)
        if decision is not None:
            decisions[name] = decision
    return decisions


def adopts(policy: UnitPolicy) -> bool:
    """Whether the policy takes its unit's running container as its own run (see ``sync_policies``):
    it does not believe the unit runs, and neither the user's stop (plan stops the container) nor a
    missing mount (plan stops it, or leaves it to run without a restart policy) holds it."""
    return policy.fresh or (policy.started_at is None and not policy.stopped and not policy.held)


def decide_exit(policy: UnitPolicy, container: ObservedContainer | None, now: float) -> Decision | None:
    """The one place an exit becomes a decision: whether the unit restarts, after what delay, or gives
    up (``Decision``: ``restart``, ``delay``, ``state``; the rules are ``UnitPolicy.on_exit``'s). Both
    the reconcile (``sync_policies``) and the runtime's fast path (a ``die`` event, acted on before the
    listing shows the exit) call it, with the unit's container as last seen (None: it is gone).

    None: no exit to decide, because the policy does not believe the unit is running (it was never
    started, or its exit is decided already) or the container still runs. The run time is the
    container's when known, else the policy's own clock since the start; the exit code is the
    container's (None: unknown, a failure). Changes the policy; no I/O."""
    if policy.started_at is None or (container is not None and container.state in ACTIVE):
        return None
    ran_for = container.ran_for if container is not None else None
    if ran_for is None:
        ran_for = max(0.0, now - policy.started_at)
    exit_code = container.exit_code if container is not None else None
    return policy.on_exit(exit_code, ran_for, now)


def restart_action(unit: Unit, old: ObservedContainer | None,
                   spare: ObservedContainer | None) -> Start | Replace:
    """How a unit whose container exited is run again, once its policy decided a restart: a replace-mode
    unit with a spare (see ``spares``) starts the spare in place of ``old``; any other unit starts its
    container again."""
    if unit.replace and old is not None and spare is not None and spare.spare and spare.scope == unit.scope:
        return Replace(unit.name, unit.scope, old.id, spare.id)
    return Start(unit.name, unit.scope)


def code_free(policy: UnitPolicy) -> bool:
    """Whether the policy's decision on an exit is the same whatever the exit code: then a replace-mode
    unit is replaced the instant its init is gone (its pidfd), before dockerd says how it exited (the
    code is recorded afterwards). ``on-failure`` and ``no`` need the code."""
    return policy.stopped or policy.held or policy.restart.name in ("always", "unless-stopped")


def spares(desired: Mapping[str, Unit], observed: Sequence[ObservedContainer],
           image_ids: Mapping[str, str] | None = None) -> dict[str, ObservedContainer]:
    """The spare each replace-mode unit would start at its next exit: its first spare made from its
    current definition (and image). Others are removed by ``plan``."""
    result: dict[str, ObservedContainer] = {}
    for c in observed:
        name = c.unit
        if (c.spare and name is not None and name not in result and name in desired
                and desired[name].replace and desired[name].scope == c.scope
                and _same(desired[name], c, image_ids or {})):
            result[name] = c
    return result


def _by_unit(
    desired: Mapping[str, Unit], observed: Sequence[ObservedContainer]
) -> dict[str, list[ObservedContainer]]:
    """Each unit's containers, its spares left out."""
    mine: dict[str, list[ObservedContainer]] = {}
    for c in observed:
        name = c.unit
        if name is not None and name in desired and desired[name].scope == c.scope and not c.spare:
            mine.setdefault(name, []).append(c)
    return mine


def _same(unit: Unit, c: ObservedContainer, image_ids: Mapping[str, str]) -> bool:
    """Whether the container was made from this definition (and image). When the unit's image id is
    not known, the container's own image id stands in, and a container created without knowing it
    matches too: only a known, different image id recreates. (A container created before the image id
    was known -- its image loaded while the unit was being created -- is the same when it runs that
    image: recreating it would restart a unit that just started.)"""
    label = c.labels.get(LABEL_HASH)
    known = image_ids.get(unit.image)
    if known is not None:
        return label == config_hash(unit, known) or (
            c.image_id == known and label == config_hash(unit, None))
    return label in (config_hash(unit, c.image_id), config_hash(unit, None))


def preload_reason(file: str) -> str:
    """A unit's reason to wait while the archive with its image is being loaded (``Wait.reason``)."""
    return f"waiting for its image to be preloaded ({file})"


def plan(
    desired: Mapping[str, Unit],
    observed: Sequence[ObservedContainer],
    policies: Mapping[str, UnitPolicy] | None = None,
    *,
    image_ids: Mapping[str, str] | None = None,
    now: float = 0.0,
    graph: UnitGraph | None = None,
    mounts: Mapping[str, MountState] | None = None,
    preloading: Mapping[str, str] | None = None,
) -> list[Action]:
    """The actions that bring the containers to the desired units. ``image_ids`` maps an image
    reference to its current id (when known: a re-pulled image then recreates its units); ``now`` is on
    the policies' clock; ``mounts`` the state of the paths units require (a path not in it is not
    mounted); ``preloading`` the units whose image is in an archive still being loaded (unit -> its file:
    ``units.preloads``), which are neither created nor started until it is. Order: removals, stops,
    then units in start order (Create/Recreate before Start of the same unit), then waits. Starts in one
    plan are independent of each other."""
    preloading = preloading or {}
    policies = policies or {}
    image_ids = image_ids or {}
    mounts = mounts or {}
    graph = graph or UnitGraph.of(desired)
    removals: list[Action] = []
    stops: list[Action] = []
    work: list[Action] = []
    waits: list[Action] = []

    mine = _by_unit(desired, observed)
    taken: dict[tuple[Scope, str], ObservedContainer] = {}
    for seen in observed:
        name = seen.unit
        if name is None:
            taken[(seen.scope, seen.name)] = seen
        elif seen.state == "removing":
            continue
        elif name not in desired or desired[name].scope != seen.scope:
            removals.append(Remove(seen.id, seen.name, seen.scope, name))
    current: dict[str, ObservedContainer] = {}
    for name, containers in mine.items():
        keep, extra = _current(containers)
        current[name] = keep
        removals += [Remove(x.id, x.name, x.scope, name) for x in extra]
    spare_of: dict[str, ObservedContainer] = {}
    for name, spare in spares(desired, observed, image_ids).items():
        owner = policies.get(name) or _fresh(desired[name])
        mine_now = current.get(name)
        will_run = owner.fresh or owner.next_start is not None or (
            mine_now is not None and mine_now.state in ACTIVE)
        if will_run and not owner.stopped and not owner.held:
            spare_of[name] = spare
    kept_spares = {c.id for c in spare_of.values()}
    for other in observed:
        owner_name = other.unit
        if (other.spare and owner_name is not None and owner_name in desired
                and desired[owner_name].scope == other.scope and other.id not in kept_spares):
            removals.append(Remove(other.id, other.name, other.scope, owner_name))
    names_in_use = {(seen.scope, seen.name) for seen in observed}

    up_to_date: dict[str, bool] = {}
    started: set[str] = set()
    finished: set[str] = set()
    for name, unit in desired.items():
        c = current.get(name)
        policy = policies.get(name) or _fresh(unit)
        up_to_date[name] = c is not None and c.state != "dead" and _same(unit, c, image_ids)
        if policy.held:  # waits for a mount: settled, as far as the order goes
            started.add(name)
            finished.add(name)
        elif unit.createonly:
            if up_to_date[name]:
                started.add(name)
        elif unit.oneshot:
            if policy.finished or policy.stopped:
                finished.add(name)
        elif (c is not None and c.state in ACTIVE) or policy.attempted or policy.stopped:
            started.add(name)

    for wave in graph.waves():
        for name in wave:
            unit = desired[name]
            c = current.get(name)
            policy = policies.get(name) or _fresh(unit)
            if policy.stopped:
                if c is not None and c.state in ACTIVE:
                    stops.append(Stop(name, unit.scope, c.id))
                continue
            missing = missing_mounts(unit, mounts)
            if missing:
                active = c is not None and c.state in ACTIVE
                stopping = stopping_mounts(missing, mounts)
                if c is not None and active and stopping:
                    stops.append(Stop(name, unit.scope, c.id, stopping))
                elif not active:
                    waits.append(Wait(name, f"waiting for mount {', '.join(missing)}"))
                continue
            blocked = graph.blocking(name, started, finished)
            if c is None or not up_to_date[name]:
                if c is not None and c.state == "removing":
                    waits.append(Wait(name, "its old container is being removed"))
                    continue
                if c is None and (unit.scope, name) in taken:
                    other = taken[(unit.scope, name)]
                    waits.append(Wait(name, f"the name is taken by container {other.id[:12]} (not corral's)"))
                    continue
                if blocked:
                    waits.append(Wait(name, f"waiting for {', '.join(blocked)}"))
                    continue
                if name in preloading:
                    waits.append(Wait(name, preload_reason(preloading[name])))
                    continue
                image_id = image_ids.get(unit.image)
                body = create_request(unit, image_id)
                wanted_hash = body["Labels"][LABEL_HASH]
                if c is None:
                    work.append(Create(name, unit.scope, wanted_hash, body))
                else:
                    work.append(Recreate(name, unit.scope, c.id, wanted_hash, body))
                if unit.createonly:
                    continue
                if (c is not None and c.state in ACTIVE) or policy.start_due(now):
                    work.append(Start(name, unit.scope))
                elif policy.next_start is not None:
                    waits.append(Wait(name, "restart scheduled", policy.next_start))
                continue
            if unit.createonly or c.state in (*ACTIVE, "removing"):
                stale = stale_mounts(unit, policy.started_on, mounts)
                if stale and not unit.createonly and c.state in ACTIVE:
                    work.append(Restart(name, unit.scope, c.id, stale))
                elif (unit.replace and c.state in ACTIVE and c.name != name
                      and (unit.scope, name) not in names_in_use):
                    work.append(Rename(name, unit.scope, c.id))
                if unit.replace and c.state in ACTIVE and not stale and name not in spare_of:
                    body = spare_request(unit, image_ids.get(unit.image))
                    work.append(CreateSpare(name, unit.scope, body["Labels"][LABEL_HASH], body))
                continue
            # created or exited, definition unchanged
            if policy.start_due(now):
                if blocked:
                    waits.append(Wait(name, f"waiting for {', '.join(blocked)}"))
                elif name in preloading:
                    waits.append(Wait(name, preload_reason(preloading[name])))
                else:
                    work.append(restart_action(unit, c if c.state == "exited" else None, spare_of.get(name)))
            elif policy.next_start is not None:
                waits.append(Wait(name, "restart scheduled", policy.next_start))
    return [*removals, *stops, *work, *waits]
