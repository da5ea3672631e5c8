"""The network reconciler: config and DHCP leases (desired) vs kernel (observed) -> netconf.plan ->
netconf.apply. It is the one writer of the kernel's network state: the DHCP client only holds leases.

Level-triggered, like every handler: a netlink event, a DHCP lease event, a config change or a resync
only marks it dirty (the runner coalesces a storm into one reconcile). Each reconcile dumps links,
addresses and routes, lets the DHCP clients follow the links' carrier, takes the leases they hold,
plans, applies, and records what corral now owns (``network-owned.json`` in the state directory, written
atomically).

So, with no code path of its own for each case:

- a NIC that appears is matched and configured; one that goes away is forgotten (its DHCP client too);
- an address or route that someone deleted is put back (drift); one that someone added on a managed
  link is removed only when that link's rule is ``exclusive``;
- a config change is applied as a difference: what is no longer wanted goes, what is new comes;
- carrier down pauses a link's DHCP client, carrier up starts a new exchange;
- a lease bound, renewed, changed, released or expired changes what the plan wants on its link.

`corral net try` applies a candidate config without persisting it and rolls it back unless
`corral net confirm` comes in time; confirming persists it like `corral config merge`."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from netconf import dns as resolv
from netconf.apply import ApplyResult, Failure, apply, describe, op_link
from netconf.desired import Desired
from netconf.dhcp import DhcpManager
from netconf.match import match
from netconf.model import Argv, Dns, NetworkConfig
from netconf.netlink import Netlink, Snapshot
from netconf.observed import DhcpLease, Link, Observed, Owned
from netconf.ops import Op, RunHook, StartDhcp, StopDhcp, record
from netconf.parse import parse_config
from netconf.plan import desired_dns, plan
from supervisor.atomic import write_atomic
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import ConfigChanged, Event
from supervisor.events.netlink import NETWORK_EVENTS, NetworkApplied, NetworkPoke, NetworkTry
from supervisor.tasks import spawn_task

log = structlog.get_logger("handlers.network")

OWNED_FILE = "network-owned.json"
LEASE_DIR = "dhcp"
FIRST_ROUND_TIMEOUT = 10.0  # the boot phase waits this long for static config to be in place
HOOK_TIMEOUT = 60.0
PERSISTENT_FAILURE = 10.0  # seconds a transient-looking failure may last before it is an error
DEFAULT_TRY_TIMEOUT = 120.0


class NetworkError(Exception):
    """A request the network handler refuses (a try already pending, nothing to confirm)."""


@dataclass
class Round:
    """One reconcile: what was planned, applied and failed."""

    reason: str
    started: float
    took: float = 0.0
    planned: list[Op] = field(default_factory=list)
    result: ApplyResult = field(default_factory=ApplyResult)
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "at": self.started,
            "took": round(self.took, 6),
            "applied": [describe(op) for op in self.result.applied],
            "failed": [str(f) for f in self.result.failed],
        }


@dataclass
class _Try:
    config: NetworkConfig
    text: str
    deadline: float
    handle: asyncio.TimerHandle | None = None
    confirming: bool = False


@dataclass
class _LinkDrift:
    corrected: int = 0
    last: list[str] = field(default_factory=list)
    last_at: float | None = None


class _Effects:
    """What the plan does besides netlink calls, for one round."""

    def __init__(self, handler: NetworkHandler, snapshot: Snapshot) -> None:
        self.h = handler
        self.snapshot = snapshot

    async def start_dhcp(self, op: StartDhcp, link: Link | None) -> None:
        await self.h.dhcp.start(link if link is not None else op.link, op.family, op.options)

    async def stop_dhcp(self, op: StopDhcp) -> None:
        exists = any(link.name == op.link for link in self.snapshot.links)
        await self.h.dhcp.stop(op.link, op.family, release=exists)

    async def write_dns(self, dns: Dns) -> None:
        await resolv.awrite(self.h.resolv_conf, dns)
        for copy in self.h.resolv_copies:
            await resolv.awrite(copy, dns)
        self.h.dns_written = dns
        log.info("resolv.conf written", path=str(self.h.resolv_conf),
                 nameservers=[str(s) for s in dns.nameservers], search=list(dns.search))

    async def run_hook(self, argv: Argv, link: str | None) -> int:
        return await self.h.run_hook(argv, link)


HookRunner = Callable[[Argv, "str | None"], Awaitable[int]]


class NetworkHandler:
    """The network Reconciler (driven by a HandlerRunner)."""

    name = "network"
    kinds: tuple[type[Event], ...] = (*NETWORK_EVENTS, ConfigChanged)
    config_keys: tuple[str, ...] | None = ("network", "corral.network")  # netplan's, RancherOS's

    def __init__(
        self,
        *,
        bus: Bus,
        netlink: Netlink,
        dhcp: DhcpManager,
        network: Callable[[], NetworkConfig],
        state_dir: Path,
        resolv_conf: Path,
        resolv_copies: tuple[Path, ...] = (),
        run_hook: HookRunner | None = None,
    ) -> None:
        self.bus = bus
        self.netlink = netlink
        self.dhcp = dhcp
        self._network = network  # the network config in force (parsed once per generation, off the loop)
        self.state_dir = state_dir
        self.resolv_conf = resolv_conf
        # Kept the same as resolv.conf: the console's (/var/lib/corral/console/resolv.conf, which its
        # /etc/resolv.conf links to; docker's own copy is made once, at the container's start).
        self.resolv_copies = resolv_copies
        self._run_hook = run_hook
        self.owned = Owned()
        self.dns_written: Dns | None = None
        self._lock = asyncio.Lock()
        self._try: _Try | None = None
        self._retry = Backoff(initial=1.0, cap=60.0, first=1.0, reset_after=120.0)
        self._retry_handle: asyncio.TimerHandle | None = None
        self._failing: dict[str, float] = {}  # failure -> since when it fails in every round
        self._reported: set[str] = set()
        self.failures: list[str] = []
        self._prev: tuple[Desired, dict[str, int]] | None = None  # (desired, link -> index)
        self.drift: dict[str, _LinkDrift] = {}
        self.rounds = 0
        self.history: deque[tuple[int, Round]] = deque(maxlen=64)  # (round number, round) with changes
        self.last_round: Round | None = None
        self.last_change: Round | None = None
        self.first_round = asyncio.Event()
        self.closed = False

    # ---- state kept across reconciles ------------------------------------------------------------
    @property
    def owned_path(self) -> Path:
        return self.state_dir / OWNED_FILE

    async def load(self) -> None:
        """Read the owned record and what resolv.conf says now."""

        def read_owned() -> Owned:
            try:
                return Owned.from_json(json.loads(self.owned_path.read_text()))
            except FileNotFoundError:
                return Owned()
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("network owned record unreadable; starting from an empty one",
                            path=str(self.owned_path), error=str(exc))
                return Owned()

        self.owned = await asyncio.to_thread(read_owned)
        written = await resolv.aread(self.resolv_conf)
        copies = [await resolv.aread(copy) for copy in self.resolv_copies]
        # a copy that is missing or differs: as if nothing were written, so the plan writes them all
        self.dns_written = written if all(c == written for c in copies) else None

    async def _save_owned(self, owned: Owned) -> None:
        data = json.dumps(owned.to_json(), indent=1).encode()

        def write() -> None:
            self.owned_path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.owned_path, data)

        await asyncio.to_thread(write)

    def close(self) -> None:
        """Shutdown: no more reconciles, no pending timers (a try in progress is not rolled back: the
        persisted config, which the next boot applies, never had it)."""
        self.closed = True
        if self._try is not None and self._try.handle is not None:
            self._try.handle.cancel()
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None

    # ---- desired -----------------------------------------------------------------------------------
    def desired(self) -> NetworkConfig:
        """The network config a round applies: a `net try` candidate while one is pending, else the
        config in force."""
        return self._try.config if self._try is not None else self._network()

    # ---- the reconcile ------------------------------------------------------------------------------
    async def reconcile(self, full: bool) -> None:
        if self.closed:
            return
        try:
            async with self._lock:
                await self._round("resync" if full else "event")
        finally:
            self.first_round.set()  # boot waits for the first attempt, not for success

    async def apply_now(self, reason: str = "requested", since: int | None = None) -> dict[str, Any]:
        """Reconcile now. The result lists what this round changed, and with ``since`` (a ``rounds``
        count taken earlier) also what the rounds in between changed (a config change made by the
        caller is usually applied by the runner first)."""
        async with self._lock:
            rnd = await self._round(reason)
            result = rnd.to_dict()
            if since is not None:
                applied: list[str] = []
                failed: list[str] = []
                for number, earlier in self.history:
                    if number > since:
                        applied += [describe(op) for op in earlier.result.applied]
                        failed += [str(f) for f in earlier.result.failed]
                result["applied"], result["failed"] = applied, failed
            return result

    async def _observe(self, snap: Snapshot) -> Observed:
        names = [link.name for link in snap.links]
        return Observed(
            links=snap.links,
            addresses=snap.addresses,
            routes=snap.routes,
            dhcp=self.dhcp.clients(),
            dns=self.dns_written,
            owned=self.owned.prune(names),
        )

    async def _round(self, reason: str) -> Round:
        started = time.time()
        t0 = time.monotonic()
        rnd = Round(reason, started)
        desired = self.desired()
        snap = await self.netlink.observe()
        rnd.attempts = snap.attempts
        await self.dhcp.sync(snap.links)
        observed = await self._observe(snap)
        wanted = Desired(desired, self.dhcp.leases())
        ops = plan(wanted, observed)
        rnd.planned = ops
        if ops:
            rnd.result = await apply(ops, self.netlink, snap, _Effects(self, snap))
            self._after_apply(wanted, snap, rnd)
        else:
            self._note_failures([])
        owned = record(observed.owned, rnd.result.applied)
        if owned != self.owned:
            self.owned = owned
            await self._save_owned(owned)
        self._prev = (wanted, snap.index())
        rnd.took = time.monotonic() - t0
        self.rounds += 1
        self.last_round = rnd
        if ops:
            self.last_change = rnd
            self.history.append((self.rounds, rnd))
        self.first_round.set()
        return rnd

    def _after_apply(self, desired: Desired, snap: Snapshot, rnd: Round) -> None:
        result = rnd.result
        applied = [describe(op) for op in result.applied]
        failed = [str(f) for f in result.failed]
        self.bus.publish(NetworkApplied(applied=tuple(applied), failed=tuple(failed), reason=rnd.reason))
        if applied:
            log.info("network changed", reason=rnd.reason, applied=applied)
        self._note_drift(desired, snap, result)
        self._note_failures(result.failed)

    def _note_drift(self, desired: Desired, snap: Snapshot, result: ApplyResult) -> None:
        """Changes on links that were there before, with the same config and the same leases, put back
        what someone else changed: that is drift."""
        if self._prev is None or self._prev[0].config != desired.config:
            return
        before = self._prev[1]
        now = snap.index()
        leases_before, leases_now = _leases_by_link(self._prev[0]), _leases_by_link(desired)
        per_link: dict[str, list[str]] = {}
        for op in result.applied:
            if isinstance(op, StartDhcp | StopDhcp | RunHook):
                continue
            link = op_link(op)
            if (
                link is not None
                and link in before
                and now.get(link) == before[link]
                and leases_before.get(link) == leases_now.get(link)
            ):
                per_link.setdefault(link, []).append(describe(op))
        for link, changes in per_link.items():
            d = self.drift.setdefault(link, _LinkDrift())
            d.corrected += len(changes)
            d.last, d.last_at = changes, time.time()
            log.debug("network drift corrected", link=link, changes=changes)

    def _note_failures(self, failures: list[Failure]) -> None:
        """A failure a concurrent change explains (the link went down during the round) is retried
        quietly; one that is not, or that lasts, is an error (logged once, shown in `net status`)."""
        now = time.monotonic()
        self._failing = {str(f): self._failing.get(str(f), now) for f in failures}
        self._reported &= set(self._failing)
        self.failures = sorted(self._failing)
        if not failures:
            self._retry.reset()
            return
        for failure in failures:
            text = str(failure)
            if text in self._reported:
                continue
            if not failure.transient or now - self._failing[text] >= PERSISTENT_FAILURE:
                self._reported.add(text)
                log.error("network change failed", failure=text)
            elif self._failing[text] == now:
                log.info("network change failed; retrying", failure=text)
        if self._retry_handle is None:
            delay = self._retry.next_delay()

            def fire() -> None:
                self._retry_handle = None
                self.bus.publish(NetworkPoke(reason="retry after a failed change"))

            self._retry_handle = asyncio.get_running_loop().call_later(delay, fire)

    async def run_hook(self, argv: Argv, link: str | None) -> int:
        if self._run_hook is None:
            log.warning("no hook runner; hook skipped", argv=list(argv))
            return 0
        return await self._run_hook(argv, link)

    # ---- try / confirm ------------------------------------------------------------------------------
    async def try_config(self, config: NetworkConfig, text: str, timeout: float) -> dict[str, Any]:
        """Apply ``config`` now, without persisting it; roll back after ``timeout`` seconds unless
        ``confirm`` is called."""
        async with self._lock:
            if self._try is not None:
                raise NetworkError("a network try is pending: `corral net confirm` it, or wait for its "
                                   "rollback")
            deadline = time.time() + timeout
            self._try = _Try(config, text, deadline)
            self._try.handle = asyncio.get_running_loop().call_later(timeout, self._try_timed_out)
            rnd = await self._round("try")
        self.bus.publish(NetworkTry(state="started", deadline=deadline))
        log.info("network try applied; confirm or it is rolled back", deadline=deadline,
                 applied=[describe(op) for op in rnd.result.applied])
        return {**rnd.to_dict(), "deadline": deadline, "timeout": timeout}

    def _try_timed_out(self) -> None:
        spawn_task(self.rollback("not confirmed in time"), name="network-try-rollback")

    async def rollback(self, why: str) -> dict[str, Any] | None:
        async with self._lock:
            t = self._try
            if t is None or t.confirming:
                return None
            if t.handle is not None:
                t.handle.cancel()
            self._try = None
            if self.closed:
                return None
            rnd = await self._round("rollback")
        self.bus.publish(NetworkTry(state="rolled-back"))
        log.warning("network try rolled back", reason=why,
                    applied=[describe(op) for op in rnd.result.applied])
        return rnd.to_dict()

    async def confirm(self, persist: Callable[[str], Awaitable[None]]) -> dict[str, Any]:
        """Keep the tried config: ``persist`` its text (merge it into the config and reload)."""
        t = self._try
        if t is None:
            raise NetworkError("no network try is pending")
        if t.confirming:
            raise NetworkError("the network try is being confirmed already")
        t.confirming = True
        try:
            await persist(t.text)
        except BaseException:
            t.confirming = False
            if time.time() >= t.deadline:
                spawn_task(self.rollback("confirm failed after the deadline"), name="network-try-rollback")
            raise
        async with self._lock:
            if t.handle is not None:
                t.handle.cancel()
            if self._try is t:
                self._try = None
        self.bus.publish(NetworkTry(state="confirmed"))
        self.bus.publish(NetworkPoke(reason="try confirmed: the config in force decides again"))
        log.info("network try confirmed")
        return {"confirmed": True}

    def try_status(self) -> dict[str, Any] | None:
        t = self._try
        if t is None:
            return None
        return {"deadline": t.deadline, "remaining": max(0.0, t.deadline - time.time()), "text": t.text}

    # ---- reporting ----------------------------------------------------------------------------------
    async def preview(self, config: NetworkConfig | None = None) -> tuple[list[Op], Observed, NetworkConfig]:
        """What a reconcile would do now (with ``config`` instead of the desired one), applying nothing."""
        desired = config if config is not None else self.desired()
        snap = await self.netlink.observe()
        observed = await self._observe(snap)
        return plan(Desired(desired, self.dhcp.leases()), observed), observed, desired

    async def status(self) -> dict[str, Any]:
        ops, observed, desired = await self.preview()
        rules = match(desired.interfaces, list(observed.links))
        dhcp = self.dhcp.status()
        pending: dict[str | None, list[str]] = {}
        for op in ops:
            pending.setdefault(op_link(op), []).append(describe(op))
        links = []
        for link in sorted(observed.links, key=lambda x: x.index):
            rule = rules.get(link.name)
            drift = self.drift.get(link.name, _LinkDrift())
            leases = [v for v in dhcp.values() if v["link"] == link.name]
            links.append({
                "name": link.name,
                "index": link.index,
                "kind": link.kind,
                "mac": link.mac,
                "driver": link.driver,
                "master": link.master,
                "mtu": link.mtu,
                "state": "up" if link.up else "down",
                "carrier": link.carrier,
                "managed": rule is not None,
                "rule": None if rule is None else {"id": rule.id, "key": rule.key,
                                                   "exclusive": rule.exclusive},
                "addresses": [
                    {"address": str(a.address), "dynamic": a.dynamic,
                     "owned": (link.name, a.address) in observed.owned.addresses}
                    for a in observed.addresses if a.link == link.name
                ],
                "routes": [
                    {"to": str(e.route.to), "via": str(e.route.via) if e.route.via else None,
                     "metric": e.route.metric, "table": e.route.table, "proto": e.proto,
                     "owned": (link.name, e.route) in observed.owned.routes}
                    for e in observed.routes if e.link == link.name
                ],
                "dhcp": leases,
                "drift": {"pending": pending.get(link.name, []), "corrected": drift.corrected,
                          "last": drift.last, "last_at": drift.last_at},
            })
        wanted_dns = desired_dns(Desired(desired, self.dhcp.leases()), observed)
        return {
            "format": desired.format,
            "links": links,
            "dns": {
                "path": str(self.resolv_conf),
                "written": None if self.dns_written is None else _dns_dict(self.dns_written),
                "wanted": None if wanted_dns is None else _dns_dict(wanted_dns),
            },
            "pending": [describe(op) for op in ops],
            "failures": list(self.failures),
            "try": self.try_status(),
            "rounds": self.rounds,
            "last_change": None if self.last_change is None else self.last_change.to_dict(),
            "netlink": {"dumps": self.netlink.dumps, "interrupted_dumps": self.netlink.interrupted,
                        "sockets_reopened": self.netlink.reopened},
            "dhcp_exchanges": self.dhcp.exchanges,
        }


def _leases_by_link(desired: Desired) -> dict[str, list[DhcpLease]]:
    out: dict[str, list[DhcpLease]] = {}
    for lease in desired.leases:
        out.setdefault(lease.link, []).append(lease)
    return out


def _dns_dict(dns: Dns) -> dict[str, Any]:
    return {"nameservers": [str(s) for s in dns.nameservers], "search": list(dns.search)}


# ---- candidates (net plan FILE, net try FILE) ---------------------------------------------------------
def candidate_config(current: Mapping[str, Any], text: str, source: str = "<try>") -> NetworkConfig:
    """The network config that ``current`` merged with the cloud-config document ``text`` would give.
    Raises NetworkError naming every problem (the document's schema errors, then the network's)."""
    from supervisor.config.layers import check_text
    from supervisor.config.merge import merge
    from supervisor.config.schema import Schema
    from supervisor.config.validate import Validator

    layer, errors = check_text(text, source, Validator(Schema()))
    if layer is None or errors:
        raise NetworkError("; ".join(str(e) for e in errors) or f"{source}: not a cloud-config document")
    merged = merge(dict(current), layer.data)
    parsed = parse_config(merged, source)
    if not parsed.ok or parsed.config is None:
        raise NetworkError("; ".join(str(e) for e in parsed.errors))
    return parsed.config
