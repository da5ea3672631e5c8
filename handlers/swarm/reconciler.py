"""The swarm reconciler: keeps the user dockerd's Docker Swarm membership true to ``corral.swarm``.

Level-triggered like every reconciler. It is marked dirty by a change of ``corral.swarm``, by the user
dockerd's event stream (re)connecting (the daemon started, restarted, came back), and by its own
``SwarmPoke``: the periodic resync (``RESYNC`` seconds) and the retries. Each reconcile observes
(``GET /info``'s Swarm fields; this node on a manager), plans (``swarm.plan``, pure) and acts through the
thin adapter (``handlers/swarm/client.py``).

A failure (a manager that does not answer, a refused token, a token file not there yet) never fails the
boot and never reaches the runner's crash path: it is kept as the status's ``error``, said once in the
journal (structlog, ``swarm`` context bound), and the reconcile runs again after the shared backoff
(``supervisor.backoff.Backoff``, as ``corral.handlers`` tunes it). A join dockerd keeps trying in the
background (``pending``) is waited for on the same backoff. Nothing here ever logs or shows a token."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import structlog

from handlers.swarm.client import SwarmClient
from supervisor.atomic import remove_durably, write_atomic
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event
from supervisor.events.docker import EventStreamState, SwarmPoke
from swarm.config import SwarmConfig, token_problem
from swarm.plan import (
    INACTIVE,
    Action,
    Init,
    Join,
    JoinRequest,
    Leave,
    Note,
    Observed,
    UpdateNode,
    Wait,
    describe,
    plan,
)
from units.runtime import DockerAPIError, DockerUnavailable, Runtime

log = structlog.get_logger("handlers.swarm")

RESYNC = 60.0  # seconds between periodic looks at the membership
MAX_TOKEN_FILE = 4096  # bytes read of join.token_file
PASSES = 3  # plans carried out per reconcile: init or join, then the node's update, then nothing


class TokenError(Exception):
    """join.token_file cannot give a token (missing, unreadable, not a token's shape)."""


def read_token_file(path: str) -> str:
    """The token ``path`` holds (blocking: run it in a thread). Never quotes the file's content."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOKEN_FILE + 1)
    except OSError as exc:
        raise TokenError(f"corral.swarm.join.token_file: {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_FILE:
        raise TokenError(f"corral.swarm.join.token_file: {path}: over {MAX_TOKEN_FILE} bytes: not a token")
    text = data.decode("utf-8", "replace").strip()
    reason = token_problem(text)
    if reason is not None:
        raise TokenError(f"corral.swarm.join.token_file: {path}: {reason}")
    return text


def _write_marker(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, b"corral.swarm manages this node's swarm membership\n")


# dockerd's words for a token the swarm refuses: its secret part wrong ("A valid join token is necessary"),
# or its first part, the digest of the swarm's CA certificate, not this swarm's ("remote CA does not match
# fingerprint": a token of another swarm) or not a digest at all ("invalid checksum digest length": one
# mistyped, or made up, of the right shape).
TOKEN_REFUSED = ("join token", "does not match fingerprint", "invalid checksum digest")


def explain(exc: Exception) -> str:
    """What went wrong, in words for status and the journal."""
    text = str(exc)
    lowered = text.lower()
    if any(words in lowered for words in TOKEN_REFUSED) or ("token" in lowered and "invalid" in lowered):
        return f"the swarm refused the join token (check corral.swarm.join.token): {text}"
    return text


class SwarmHandler:
    name = "swarm"
    kinds: tuple[type[Event], ...] = (ConfigChanged, EventStreamState, SwarmPoke)
    config_keys: tuple[str, ...] | None = ("corral.swarm",)

    def __init__(self, bus: Bus, socket: Path, desired: Callable[[], SwarmConfig | None],
                 connected: Callable[[], bool], backoff: Backoff, marker: Path, *,
                 runtime: Callable[[Path], AbstractAsyncContextManager[Runtime]] = Runtime,
                 read_token: Callable[[str], str] = read_token_file, resync: float = RESYNC) -> None:
        self.bus = bus
        self.socket = socket
        self.desired = desired
        self.connected = connected  # the user dockerd's event stream is up (it answers)
        self.backoff = backoff
        self.runtime = runtime
        self.read_token = read_token
        self.resync = resync
        self.marker = marker  # there while corral.swarm manages the membership (until the node is out)
        self._managed: bool | None = None  # the marker's presence, once read
        self.attempt: JoinRequest | None = None  # the last join sent (dockerd may still be trying it)
        self.observed: Observed | None = None
        self.error: str | None = None
        self.waiting: str | None = None
        self.notes: list[str] = []
        self.done: list[str] = []  # the last reconcile's actions, described
        self.checked_at: float | None = None
        self.retry_in: float | None = None
        self._reported: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    # ---- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        desired = self.desired()
        bound = log.bind(swarm=_mode(desired))
        managed = await self._is_managed(desired)
        if desired is None and not managed:  # hands off a swarm corral.swarm never put this node in
            self.error = self.waiting = None
            self.notes, self.done = [], []
            self._schedule(None)
            return
        if not self.connected():
            self.error = None if desired is None else "the user dockerd does not answer (yet)"
            self.waiting = None
            self._schedule(None)  # its event stream connecting wakes this again
            return
        self.error = self.waiting = None
        self.notes, self.done = [], []
        try:
            join = await self._join_request(desired)
            async with self.runtime(self.socket) as runtime:
                client = SwarmClient(runtime)
                observed = self.observed = await client.observe()
                for _ in range(PASSES):  # an init or a join, then this node's labels on the next pass
                    self.notes, self.waiting = [], None
                    actions = plan(desired, observed, join, self.attempt, managed=managed)
                    if not await self._act(client, actions, bound):
                        break
                    observed = self.observed = await client.observe()
            if desired is None and observed.state == INACTIVE:
                await self._set_managed(False)
        except TokenError as exc:
            self.error = str(exc)
        except (DockerUnavailable, DockerAPIError) as exc:
            self.error = explain(exc)
        self.checked_at = time.time()
        self._report(bound)

    async def _is_managed(self, desired: SwarmConfig | None) -> bool:
        if self._managed is None:
            self._managed = await asyncio.to_thread(self.marker.exists)
        if desired is not None and not self._managed:
            await self._set_managed(True)
        return self._managed

    async def _set_managed(self, managed: bool) -> None:
        if managed == self._managed:
            return
        if managed:
            await asyncio.to_thread(_write_marker, self.marker)
        else:
            await asyncio.to_thread(remove_durably, self.marker)
        self._managed = managed

    async def _join_request(self, desired: SwarmConfig | None) -> JoinRequest | None:
        if desired is None or desired.join is None:
            return None
        spec = desired.join
        token = spec.token
        if token is None and spec.token_file is not None:
            token = await asyncio.to_thread(self.read_token, spec.token_file)
        assert token is not None  # the config's check insists on one of them
        return JoinRequest(remote_addrs=spec.remote_addrs, token=token, role=desired.role,
                           listen_addr=spec.listen_addr, advertise_addr=spec.advertise_addr)

    async def _act(self, client: SwarmClient, actions: list[Action], bound: Any) -> bool:
        """Carry out ``actions`` in order; True when one of them changed something."""
        changed = False
        for action, words in zip(actions, describe(actions), strict=True):
            if isinstance(action, Note):
                self.notes.append(action.message)
                continue
            if isinstance(action, Wait):
                self.waiting = action.reason
                continue
            self.done.append(words)
            changed = True
            if isinstance(action, Init):
                node_id = await client.init(action.spec)
                bound.info("swarm initialised: this node is its first manager", node=node_id,
                           advertise=action.spec.advertise_addr)
            elif isinstance(action, Join):
                self.attempt = action.request
                through = ", ".join(action.request.remote_addrs)
                bound.info("joining the swarm", role=action.request.role, through=through)
                try:
                    await client.join(action.request)
                except DockerAPIError as exc:
                    if "continue in the background" not in str(exc):
                        raise
                    self.waiting = (f"joining through {through}: no manager has let this node in yet; "
                                    "dockerd keeps trying")
                else:
                    bound.info("joined the swarm", role=action.request.role)
            elif isinstance(action, Leave):
                if action.warning:
                    bound.warning("leaving the swarm with --force", reason=action.reason,
                                  consequence=action.warning)
                await client.leave(action.force)
                self.attempt = None
                bound.info("left the swarm", reason=action.reason, force=action.force)
            elif isinstance(action, UpdateNode):
                await client.update_node(action.node_id, action.version, action.spec)
                bound.info("node updated", changes=list(action.changes))
        return changed

    def _report(self, bound: Any) -> None:
        """Say each new problem once; retry on the backoff while there is one, else resync later."""
        problems = [p for p in (self.error, self.waiting, *self.notes) if p]
        for problem in problems:
            if problem in self._reported:
                continue
            if problem == self.error:
                bound.error("swarm membership not as configured; retrying", error=problem)
            elif problem == self.waiting:
                bound.info("swarm join pending", waiting=problem)
            else:
                bound.warning("swarm membership differs from the config", note=problem)
        if self._reported and not problems:
            bound.info("swarm membership as configured")
        self._reported = set(problems)
        if self.error or self.waiting:
            self._schedule(self.backoff.next_delay(ran_for=0.0))
        else:
            self.backoff.reset()
            self._schedule(self.resync)

    def _schedule(self, delay: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.retry_in = delay if (self.error or self.waiting) else None
        if delay is None or self.closed or not math.isfinite(delay):
            return
        self._timer = asyncio.get_running_loop().call_later(delay, self._poke)

    def _poke(self) -> None:
        self._timer = None
        if not self.closed:
            self.bus.publish(SwarmPoke(reason="retry" if self.error or self.waiting else "resync"))

    def close(self) -> None:
        self.closed = True
        self._schedule(None)

    # ---- views ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """For ``corral status``: what is wanted, what is, and what is wrong (never a token)."""
        desired = self.desired()
        observed = self.observed
        return {
            "desired": _mode(desired),
            "state": None if observed is None else observed.state,
            "node_id": None if observed is None else observed.node_id or None,
            "manager": None if observed is None else observed.manager,
            "error": self.error,
            "waiting": self.waiting,
            "notes": list(self.notes),
            "last_actions": list(self.done),
            "retry_in": self.retry_in,
            "checked_at": self.checked_at,
        }

    async def live(self) -> dict[str, Any]:
        """For ``corral swarm status``: this node, its managers, their reachability and the tasks here."""
        out = self.status()
        if not self.connected():
            out["error"] = out["error"] or "the user dockerd does not answer"
            return out
        async with self.runtime(self.socket) as runtime:
            client = SwarmClient(runtime)
            observed = await client.observe()
            out.update(state=observed.state, node_id=observed.node_id or None, manager=observed.manager,
                       node_addr=observed.node_addr or None, cluster_id=observed.cluster_id or None,
                       managers=observed.managers if observed.manager else None,
                       nodes=observed.nodes if observed.manager else None,
                       remote_managers=list(observed.remote_managers), swarm_error=observed.error or None,
                       role=None, availability=None, labels=None, reachability=None, leader=None, tasks=[])
            if observed.node is not None:
                node = observed.node
                out.update(role=node.role, availability=node.availability, labels=dict(node.labels),
                           reachability=node.reachability or None, leader=node.leader)
            elif observed.state == "active":
                out.update(role="worker")
            if observed.state == "active":
                out["tasks"] = await client.tasks_here()
        return out

    async def token(self, kind: str) -> str:
        """The join token for a ``worker`` or a ``manager`` (this node must be a manager)."""
        if not self.connected():
            raise DockerUnavailable("the user dockerd does not answer")
        async with self.runtime(self.socket) as runtime:
            client = SwarmClient(runtime)
            observed = await client.observe()
            if not observed.manager:
                where = "in no swarm" if observed.state != "active" else "a worker"
                raise DockerAPIError(0, f"this node is {where}: only a manager has the join tokens")
            tokens = (await client.swarm()).get("JoinTokens") or {}
        return str(tokens.get("Worker" if kind == "worker" else "Manager") or "")


def _mode(desired: SwarmConfig | None) -> str | None:
    if desired is None:
        return None
    return "init" if desired.init is not None else f"join as {desired.role}"
