"""Events of the network domain: what the netlink source saw, what the DHCP client did, what the network
handler applied.

Netlink events are hints, not truth: each says "a link, an address or a route changed" and marks the
network handler dirty; the handler then dumps the kernel's state. The source coalesces what arrives in
one read (a storm of flaps of one link becomes a few events, not thousands)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from supervisor.events import Event


@dataclass(frozen=True, kw_only=True)
class LinkChanged(Event):
    """RTM_NEWLINK / RTM_DELLINK. ``action`` is "new" or "del"; ``up`` is IFF_UP, ``carrier``
    IFF_LOWER_UP, as the message said."""

    kind: ClassVar[str] = "net.link"
    action: str
    index: int
    name: str | None = None
    up: bool = False
    carrier: bool = False


@dataclass(frozen=True, kw_only=True)
class AddressChanged(Event):
    """RTM_NEWADDR / RTM_DELADDR on the link ``index``."""

    kind: ClassVar[str] = "net.address"
    action: str
    index: int
    family: int
    prefixlen: int = 0


@dataclass(frozen=True, kw_only=True)
class RouteChanged(Event):
    """RTM_NEWROUTE / RTM_DELROUTE. ``oif`` is 0 when the route has none (multipath, blackhole)."""

    kind: ClassVar[str] = "net.route"
    action: str
    family: int
    table: int
    oif: int = 0
    protocol: int = 0


@dataclass(frozen=True, kw_only=True)
class DhcpLeaseChanged(Event):
    """corral's DHCP client on ``link``: ``state`` is bound, renewed, rebound, expired, released, paused,
    resumed or stopped. ``expires`` is the lease's end (Unix time), None when unknown or infinite."""

    kind: ClassVar[str] = "net.dhcp"
    link: str
    family: int
    state: str
    address: str | None = None
    gateway: str | None = None
    server: str | None = None
    lease_time: int | None = None
    expires: float | None = None


@dataclass(frozen=True, kw_only=True)
class NetworkApplied(Event):
    """One round of network changes: the operations applied and those that failed (as text)."""

    kind: ClassVar[str] = "net.applied"
    applied: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class NetworkTry(Event):
    """`corral net try`: ``state`` is started, confirmed or rolled-back; ``deadline`` in Unix time."""

    kind: ClassVar[str] = "net.try"
    state: str
    deadline: float | None = None


@dataclass(frozen=True, kw_only=True)
class NetworkPoke(Event):
    """The network handler asks itself to look again (a retry after a failed operation, a try that
    timed out)."""

    kind: ClassVar[str] = "net.poke"
    reason: str


NETWORK_EVENTS: tuple[type[Event], ...] = (
    LinkChanged,
    AddressChanged,
    RouteChanged,
    DhcpLeaseChanged,
    NetworkPoke,
)
"""What marks the network handler dirty (besides ConfigChanged and Resync)."""
