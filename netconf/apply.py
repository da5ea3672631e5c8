"""Carry out a plan: each operation in order, through pyroute2 (``netconf.netlink``) or the effects the
handler provides (DHCP clients, resolv.conf, hooks). Report which succeeded, so that
``netconf.plan.record(owned, result.applied)`` stays true to what is in the kernel.

A failed operation does not stop the round: the rest is still tried (a bridge that cannot be created
does not keep an address off another link) and the failure is reported. An operation that finds its
work already done counts as applied: adding an address or a route that exists (``EEXIST``), removing
one that is gone (``EADDRNOTAVAIL``, ``ESRCH``), deleting a link that is gone (``ENODEV``).

Links are named in the plan; names are resolved to ifindexes from the observation the plan was made
from, and kept up to date as links are created, renamed and deleted during the round."""

from __future__ import annotations

import asyncio
import errno
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from netconf.model import Argv, Dns
from netconf.netlink import Netlink, Snapshot
from netconf.observed import Link
from netconf.ops import (
    AddAddress,
    AddRoute,
    CreateLink,
    DeleteLink,
    Enslave,
    Op,
    Release,
    RemoveAddress,
    RemoveRoute,
    RenameLink,
    RunHook,
    SetDown,
    SetIPv6,
    SetMtu,
    SetUp,
    StartDhcp,
    StopDhcp,
    WriteDns,
)

log = structlog.get_logger("netconf.apply")

FOREVER = 0xFFFFFFFF


class Effects(Protocol):
    """What the plan does besides netlink calls."""

    async def start_dhcp(self, op: StartDhcp, link: Link | None) -> None: ...

    async def stop_dhcp(self, op: StopDhcp) -> None: ...

    async def write_dns(self, dns: Dns) -> None: ...

    async def run_hook(self, argv: Argv, link: str | None) -> int:
        """Run argv (never through a shell) and return its exit code."""
        ...


TRANSIENT = frozenset({errno.ENETUNREACH, errno.ENETDOWN, errno.ENODEV, errno.ENXIO, errno.EBUSY,
                       errno.EAGAIN})
"""Errors that a concurrent change explains (the link went down or away during the round): the next
reconcile, which that change triggers, tries again."""


@dataclass(frozen=True)
class Failure:
    op: Op
    error: str
    transient: bool = False

    def __str__(self) -> str:
        return f"{describe(self.op)}: {self.error}"


@dataclass
class ApplyResult:
    applied: list[Op] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class NoSuchLink(LookupError):
    pass


_BENIGN: dict[type, frozenset[int]] = {
    AddAddress: frozenset({errno.EEXIST}),
    RemoveAddress: frozenset({errno.EADDRNOTAVAIL, errno.ENODEV}),
    AddRoute: frozenset({errno.EEXIST}),
    RemoveRoute: frozenset({errno.ESRCH, errno.ENODEV, errno.ENOENT}),
    DeleteLink: frozenset({errno.ENODEV}),
}


async def apply(ops: Sequence[Op], netlink: Netlink, snapshot: Snapshot, effects: Effects) -> ApplyResult:
    """Run ``ops`` in order; every operation is tried."""
    from pyroute2.netlink.exceptions import NetlinkError

    runner = _Runner(netlink, snapshot, effects)
    result = ApplyResult()
    for op in ops:
        transient = False
        try:
            error = await runner.run(op)
        except NetlinkError as exc:
            if exc.code in _BENIGN.get(type(op), frozenset()):
                error = None
            else:
                reason = exc.args[1] if len(exc.args) > 1 else exc
                error = f"{errno.errorcode.get(exc.code, exc.code)}: {reason}"
                transient = exc.code in TRANSIENT
        except NoSuchLink as exc:
            error, transient = f"no link {exc.args[0]}", True
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
            transient = exc.errno in TRANSIENT
        if error is None:
            result.applied.append(op)
        else:
            result.failed.append(Failure(op, error, transient))
    return result


class _Runner:
    def __init__(self, netlink: Netlink, snapshot: Snapshot, effects: Effects) -> None:
        self.nl = netlink
        self.effects = effects
        self.index = snapshot.index()
        self.links = {link.name: link for link in snapshot.links}

    def idx(self, name: str) -> int:
        if name not in self.index:
            raise NoSuchLink(name)
        return self.index[name]

    async def run(self, op: Op) -> str | None:
        """Carry out one operation; a returned string is a failure that raised nothing."""
        nl = self.nl
        if isinstance(op, CreateLink):
            kwargs: dict[str, Any] = dict(op.options)
            for key, ref in op.refs:
                if ref in self.index:
                    kwargs[key] = self.index[ref]
            await nl.link("add", ifname=op.name, kind=op.kind, **kwargs)
            index = await nl.lookup(op.name)
            if index is None:
                return "created, but not found afterwards"
            self.index[op.name] = index
        elif isinstance(op, DeleteLink):
            await nl.link("del", index=self.idx(op.name))
            self.index.pop(op.name, None)
        elif isinstance(op, RenameLink):
            await nl.link("set", index=self.idx(op.name), ifname=op.new_name)
            self.index[op.new_name] = self.index.pop(op.name)
        elif isinstance(op, Enslave):
            await nl.link("set", index=self.idx(op.link), master=self.idx(op.master))
        elif isinstance(op, Release):
            await nl.link("set", index=self.idx(op.link), master=0)
        elif isinstance(op, SetMtu):
            await nl.link("set", index=self.idx(op.link), mtu=op.mtu)
        elif isinstance(op, SetIPv6):
            self.idx(op.link)
            await asyncio.to_thread(write_ipv6_conf, op.link, op.name, op.value)
        elif isinstance(op, SetUp):
            await nl.link("set", index=self.idx(op.link), state="up")
        elif isinstance(op, SetDown):
            await nl.link("set", index=self.idx(op.link), state="down")
        elif isinstance(op, AddAddress) and op.lease:
            now = time.monotonic()
            lifetime = lease_lifetime(op.expires, now)
            preferred = lifetime if op.preferred is None else min(lifetime, lease_lifetime(op.preferred, now))
            await nl.add_address(self.idx(op.link), op.address, replace=True, valid_lft=lifetime,
                                 preferred_lft=preferred)
        elif isinstance(op, AddAddress):
            await nl.add_address(self.idx(op.link), op.address, replace=op.replace)
        elif isinstance(op, RemoveAddress):
            await nl.remove_address(self.idx(op.link), op.address)
        elif isinstance(op, AddRoute) and op.lease:
            await nl.add_route(self.idx(op.link), op.route, proto="dhcp")
        elif isinstance(op, AddRoute):
            await nl.add_route(self.idx(op.link), op.route)
        elif isinstance(op, RemoveRoute):
            await nl.remove_route(self.idx(op.link), op.route)
        elif isinstance(op, StartDhcp):
            await self.effects.start_dhcp(op, self.links.get(op.link))
        elif isinstance(op, StopDhcp):
            await self.effects.stop_dhcp(op)
        elif isinstance(op, WriteDns):
            await self.effects.write_dns(Dns(op.nameservers, op.search))
        elif isinstance(op, RunHook):
            code = await self.effects.run_hook(op.argv, op.link)
            if code != 0:
                return f"exited {code}"
        return None


IPV6_CONF_DIR = Path("/proc/sys/net/ipv6/conf")


def write_ipv6_conf(link: str, name: str, value: int, root: Path = IPV6_CONF_DIR) -> None:
    """Write one IPv6 setting of ``link`` (blocking: run in a thread). /proc/sys/net is the namespace's
    of the task that opens it: PID 1's, whose links these are."""
    (root / link / name).write_text(f"{value}\n")


def lease_lifetime(expires: float | None, now: float) -> int:
    """The kernel's lifetime (seconds) for a lease address ending at ``expires`` (monotonic), rounded up:
    the address never goes before its lease (the lease goes at its end, and the plan then removes the
    address); at least 1, FOREVER when it does not end."""
    if expires is None:
        return FOREVER
    return max(1, min(FOREVER - 1, math.ceil(expires - now)))


def describe(op: Op) -> str:
    """One line for people: ``add address 198.18.0.2/24 to eth0``."""
    if isinstance(op, CreateLink):
        opts = ", ".join(f"{k}={v}" for k, v in (*op.options, *op.refs))
        return f"create {op.kind} {op.name}" + (f" ({opts})" if opts else "")
    if isinstance(op, DeleteLink):
        return f"delete link {op.name}"
    if isinstance(op, RenameLink):
        return f"rename {op.name} to {op.new_name}"
    if isinstance(op, Enslave):
        return f"attach {op.link} to {op.master}"
    if isinstance(op, Release):
        return f"detach {op.link} from its master"
    if isinstance(op, SetMtu):
        return f"set mtu {op.mtu} on {op.link}"
    if isinstance(op, SetIPv6):
        return f"set IPv6 {op.name} {op.value} on {op.link}"
    if isinstance(op, SetUp):
        return f"set {op.link} up"
    if isinstance(op, SetDown):
        return f"set {op.link} down"
    if isinstance(op, AddAddress) and op.lease:
        return f"set address {op.address} on {op.link} for its DHCP lease"
    if isinstance(op, AddAddress) and op.replace:
        return f"make address {op.address} on {op.link} permanent"
    if isinstance(op, AddAddress):
        return f"add address {op.address} to {op.link}"
    if isinstance(op, RemoveAddress):
        return f"remove address {op.address} from {op.link}"
    if isinstance(op, AddRoute | RemoveRoute):
        r = op.route
        words = [f"{'add' if isinstance(op, AddRoute) else 'remove'} route {r.to}"]
        if r.via is not None:
            words.append(f"via {r.via}")
        words.append(f"dev {op.link}")
        if r.metric:
            words.append(f"metric {r.metric}")
        if r.table not in (None, 254):
            words.append(f"table {r.table}")
        if r.on_link:
            words.append("onlink")
        if r.source is not None:
            words.append(f"src {r.source}")
        if isinstance(op, AddRoute) and op.lease:
            words.append("proto dhcp")
        return " ".join(words)
    if isinstance(op, StartDhcp):
        return f"start DHCPv{op.family} on {op.link}"
    if isinstance(op, StopDhcp):
        return f"stop DHCPv{op.family} on {op.link}"
    if isinstance(op, WriteDns):
        servers = " ".join(str(s) for s in op.nameservers) or "-"
        search = " ".join(op.search)
        return f"write resolv.conf: nameservers {servers}" + (f", search {search}" if search else "")
    where = f" for {op.link}" if op.link else ""  # RunHook, the last kind
    return f"run {op.phase} hook{where}: {' '.join(op.argv)}"


def op_link(op: Op) -> str | None:
    """The link an operation is about (None for network-wide ones)."""
    for attr in ("link", "name"):
        value = getattr(op, attr, None)
        if isinstance(value, str):
            return value
    return None
