"""The swarm plan: what to do so that the user dockerd's swarm membership is what ``corral.swarm`` says.

Pure: ``plan(desired, observed, join, attempt)`` -> actions, tested with plain data. ``observed`` is what
the user dockerd's ``GET /info`` (its ``Swarm`` fields) and, on a manager, ``GET /nodes/<self>`` say;
``join`` is the join ``desired`` asks for with its token read (``token_file``); ``attempt`` is the last
join the reconciler sent, which dockerd may still be trying in the background (``pending``).

=================  ====================================================================================
config             observed -> actions
=================  ====================================================================================
no corral.swarm    not given since the node was last out of a swarm: none (a swarm joined by hand
                   stays); else inactive: none; pending: leave; active or error: leave (the last
                   manager: ``--force``, with a warning: it ends that swarm); locked: a note
init               inactive: init; pending (a join): leave, init; active as a manager: labels and
                   availability; active as a worker: a note (leave by hand to make a new swarm)
join               inactive: join; pending with the same join: wait (dockerd keeps trying); pending
                   with another: leave, join; active: labels and availability on a manager, a note
                   when the role differs from the config's (promote or demote it from a manager)
=================  ====================================================================================

Labels and availability are only managed when the config gives them; the config's labels are the whole
set (a label it does not have is removed). Only a manager can change a node, so on a worker they are a
note, never an action."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swarm.config import DEFAULT_LISTEN, InitSpec, SwarmConfig

INACTIVE, PENDING, ACTIVE, ERROR, LOCKED = "inactive", "pending", "active", "error", "locked"


@dataclass(frozen=True)
class NodeSpec:
    """This node's spec as a manager sees it (``GET /nodes/<id>``)."""

    node_id: str
    version: int
    role: str
    availability: str
    labels: Mapping[str, str] = field(default_factory=dict)
    reachability: str = ""  # a manager's: reachable | unreachable
    leader: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> NodeSpec:
        spec = data.get("Spec") or {}
        manager = data.get("ManagerStatus") or {}
        return cls(
            node_id=str(data.get("ID") or ""),
            version=int((data.get("Version") or {}).get("Index") or 0),
            role=str(spec.get("Role") or ""),
            availability=str(spec.get("Availability") or ""),
            labels={str(k): str(v) for k, v in (spec.get("Labels") or {}).items()},
            reachability=str(manager.get("Reachability") or ""),
            leader=bool(manager.get("Leader")),
            raw=dict(spec),
        )


@dataclass(frozen=True)
class Observed:
    """The ``Swarm`` fields of the user dockerd's ``GET /info`` (and this node, when a manager)."""

    state: str = INACTIVE  # LocalNodeState: inactive | pending | active | error | locked
    node_id: str = ""
    node_addr: str = ""
    manager: bool = False  # ControlAvailable: this node is a manager
    managers: int = 0
    nodes: int = 0
    error: str = ""
    remote_managers: tuple[str, ...] = ()
    cluster_id: str = ""
    node: NodeSpec | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any], node: Mapping[str, Any] | None = None) -> Observed:
        swarm = info.get("Swarm") or {}
        return cls(
            state=str(swarm.get("LocalNodeState") or INACTIVE),
            node_id=str(swarm.get("NodeID") or ""),
            node_addr=str(swarm.get("NodeAddr") or ""),
            manager=bool(swarm.get("ControlAvailable")),
            managers=int(swarm.get("Managers") or 0),
            nodes=int(swarm.get("Nodes") or 0),
            error=str(swarm.get("Error") or ""),
            remote_managers=tuple(str(m.get("Addr") or "") for m in swarm.get("RemoteManagers") or ()),
            cluster_id=str((swarm.get("Cluster") or {}).get("ID") or ""),
            node=None if node is None else NodeSpec.from_inspect(node),
        )


@dataclass(frozen=True)
class JoinRequest:
    """A join with its token read: what ``POST /swarm/join`` is sent."""

    remote_addrs: tuple[str, ...]
    token: str
    role: str
    listen_addr: str = DEFAULT_LISTEN
    advertise_addr: str | None = None

    def __repr__(self) -> str:  # never the token
        return (f"JoinRequest(remote_addrs={self.remote_addrs!r}, role={self.role!r}, "
                f"listen_addr={self.listen_addr!r}, advertise_addr={self.advertise_addr!r})")


# ---- actions -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Init:
    spec: InitSpec


@dataclass(frozen=True)
class Join:
    request: JoinRequest


@dataclass(frozen=True)
class Leave:
    force: bool
    reason: str
    warning: str | None = None  # said in the journal when it is done (the last manager's leave)


@dataclass(frozen=True)
class UpdateNode:
    node_id: str
    version: int
    spec: Mapping[str, Any]  # the whole new spec (dockerd replaces it)
    changes: tuple[str, ...]  # what differs, for the journal: "labels", "availability"


@dataclass(frozen=True)
class Wait:
    """Nothing to do now; look again later (a join dockerd is still trying)."""

    reason: str


@dataclass(frozen=True)
class Note:
    """A difference corral does not mend by itself: said in status and the journal."""

    message: str


Action = Init | Join | Leave | UpdateNode | Wait | Note


def plan(desired: SwarmConfig | None, observed: Observed, join: JoinRequest | None = None,
         attempt: JoinRequest | None = None, *, managed: bool = True) -> list[Action]:
    """``managed``: corral.swarm has put this node where it is (it was in the config since the node
    last left a swarm); without it, no corral.swarm means hands off (a swarm joined by hand stays)."""
    if desired is None and not managed:
        return []
    if observed.state == LOCKED:
        return [Note("the swarm is locked (autolock): unlock it with `docker swarm unlock`; corral cannot "
                     "change a locked node")]
    if desired is None:
        return _leave(observed)
    if desired.init is not None:
        return _init(desired, observed)
    if join is None:  # a join whose token could not be read: the reconciler says why
        return []
    return _join(desired, observed, join, attempt)


def _leave(observed: Observed) -> list[Action]:
    if observed.state == INACTIVE:
        return []
    if observed.state == PENDING:
        return [Leave(force=False, reason="corral.swarm was removed while joining")]
    if observed.manager and observed.managers <= 1:
        return [Leave(force=True, reason="corral.swarm was removed",
                      warning="this node is the swarm's last manager: leaving (with --force) ends that swarm "
                              "and its services")]
    return [Leave(force=False, reason="corral.swarm was removed")]


def _init(desired: SwarmConfig, observed: Observed) -> list[Action]:
    assert desired.init is not None
    if observed.state == INACTIVE:
        return [Init(desired.init)]
    if observed.state == PENDING:
        return [Leave(force=False, reason="corral.swarm now inits a swarm instead of joining one"),
                Init(desired.init)]
    if observed.state == ERROR:
        return [Note(f"the node is in error: {observed.error or 'dockerd gives no reason'}")]
    if not observed.manager:
        return [Note("this node is a worker of a swarm, and corral.swarm.init asks for a new one: leave it "
                     "by hand (docker swarm leave) to init")]
    return _update(desired, observed)


def _join(desired: SwarmConfig, observed: Observed, join: JoinRequest, attempt: JoinRequest | None
          ) -> list[Action]:
    if observed.state == INACTIVE:
        return [Join(join)]
    if observed.state == PENDING:
        if attempt == join:
            where = ", ".join(observed.remote_managers or join.remote_addrs)
            why = f": {observed.error}" if observed.error else ""
            return [Wait(f"joining through {where}: no manager has let this node in yet{why}; dockerd keeps "
                         "trying")]
        return [Leave(force=False, reason="corral.swarm.join changed while joining"), Join(join)]
    if observed.state == ERROR:
        return [Note(f"the node is in error: {observed.error or 'dockerd gives no reason'}")]
    notes: list[Action] = []
    if desired.role == "manager" and not observed.manager:
        notes.append(Note("this node is a worker and corral.swarm.role is manager: promote it from a manager "
                          "(docker node promote)"))
    elif desired.role == "worker" and observed.manager:
        notes.append(Note("this node is a manager and corral.swarm.role is worker: demote it (docker node "
                          "demote)"))
    return notes + _update(desired, observed)


def _update(desired: SwarmConfig, observed: Observed) -> list[Action]:
    """Labels and availability, when the config gives them; only a manager can change a node."""
    if desired.labels is None and desired.availability is None:
        return []
    node = observed.node
    if not observed.manager or node is None:
        return [Note("node_labels and availability are set from a manager: this node is a worker")]
    spec = dict(node.raw)
    changes: list[str] = []
    labels = desired.label_map
    if labels is not None and dict(node.labels) != labels:
        spec["Labels"] = labels
        changes.append("labels")
    if desired.availability is not None and node.availability != desired.availability:
        spec["Availability"] = desired.availability
        changes.append("availability")
    if not changes:
        return []
    return [UpdateNode(node.node_id, node.version, spec, tuple(changes))]


def describe(actions: Sequence[Action]) -> list[str]:
    """The actions as the journal and status say them (never a token)."""
    out = []
    for action in actions:
        if isinstance(action, Init):
            advertise = action.spec.advertise_addr or "dockerd's choice"
            out.append(f"init (advertise {advertise})")
        elif isinstance(action, Join):
            out.append(f"join as {action.request.role} through {', '.join(action.request.remote_addrs)}")
        elif isinstance(action, Leave):
            out.append("leave --force" if action.force else "leave")
        elif isinstance(action, UpdateNode):
            out.append(f"update node ({', '.join(action.changes)})")
        elif isinstance(action, Wait):
            out.append(f"wait: {action.reason}")
        else:
            out.append(f"note: {action.message}")
    return out
