"""What the plan compares the desired state with: links, addresses, routes, DHCP, DNS as observed, and
``Owned``, the record of what corral itself configured earlier.

Plain data, filled in by the netlink adapter (and the DHCP client and the handler's own record). Names,
not ifindexes, tie things together: a link's ``master`` and ``parent`` are names too.

What the adapter should put in:

- ``Link.kind`` is ``IFLA_INFO_KIND`` (None for a NIC), ``driver`` the ethtool/udev driver name,
  ``up`` is ``IFF_UP`` (administrative state), ``carrier`` is ``IFF_LOWER_UP``.
- ``Address.dynamic`` is true when the address has a lifetime (no ``IFA_F_PERMANENT``: DHCP, SLAAC);
  ``expires`` is when the kernel drops it (``time.monotonic()`` seconds, the clock of the kernel's
  lifetimes: the dump's time plus ``IFA_CACHEINFO``'s ``ifa_valid``; None when it has no end);
  ``proto`` is ``IFA_PROTO`` (1 kernel_lo, 2 kernel_ra, 3 kernel_ll; 0 when unknown or not reported).
- ``RouteEntry.route`` is canonical (metric, table and scope filled in as the kernel reports them);
  ``proto`` is ``rtm_protocol`` (2 kernel, 3 boot, 4 static, 9 ra, 16 dhcp). corral adds its static
  routes with proto static, the routes of its DHCP leases with proto dhcp and their addresses with
  lifetimes.
- ``dhcp`` lists corral's own DHCP clients that are running. What they hold (``DhcpLease``) is not
  observed state: a lease is desired state, next to the config (``netconf.plan.Desired``).
- ``dns`` is what corral last wrote to resolv.conf (None: nothing yet).
- ``owned`` is what corral configured earlier, kept by the caller across reconciles
  (``netconf.plan.record`` updates it from the operations applied; ``Owned.to_json``/``from_json``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from netconf.model import LOCAL_TABLE, DhcpOptions, Dns, IPAddress, IPInterface, LinkSpec, Route

RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_BOOT, RTPROT_STATIC, RTPROT_RA, RTPROT_DHCP = 1, 2, 3, 4, 9, 16
KERNEL_ROUTE_PROTOS = frozenset({RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_RA})
"""Routes the kernel made itself (prefix routes of addresses, router advertisements): never touched."""
IFA_PROTO_KERNEL = frozenset({1, 2, 3})


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str | None = None
    kind: str | None = None
    driver: str | None = None
    master: str | None = None
    parent: str | None = None
    up: bool = False
    carrier: bool = False
    mtu: int = 1500
    ipv6_conf: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Address:
    link: str
    address: IPInterface
    dynamic: bool = False
    proto: int = 0
    expires: float | None = None

    @property
    def kernel_made(self) -> bool:
        """Made by the kernel (loopback, IPv6 link-local, SLAAC): corral never removes these."""
        ip = self.address.ip
        return self.proto in IFA_PROTO_KERNEL or ip.is_loopback or (ip.version == 6 and ip.is_link_local)


@dataclass(frozen=True)
class RouteEntry:
    link: str | None
    route: Route
    proto: int = RTPROT_STATIC

    @property
    def untouchable(self) -> bool:
        """Routes corral never removes: the kernel's own and those in the local table."""
        return self.proto in KERNEL_ROUTE_PROTOS or self.route.table == LOCAL_TABLE


@dataclass(frozen=True)
class DhcpClient:
    link: str
    family: int
    options: DhcpOptions = field(default_factory=DhcpOptions)


@dataclass(frozen=True)
class DhcpLease:
    """What a DHCP lease held by corral's client on ``link`` offers. The plan takes leases as desired
    state (config wins over a lease where both say something).

    ``expires`` is the lease's end in ``time.monotonic()`` seconds (the clock of the kernel's address
    lifetimes and of the client's timers, which a step of the wall clock does not move; None: it has
    none): the address gets it as its lifetime.
    ``preferred`` is the end of the address's preferred lifetime, the same clock (DHCPv6 gives one; None:
    the lease's end). ``confirmed`` is false for a lease kept from before a restart that the server has
    not confirmed again yet (the client asks for it): what it brought stays, nothing is added for it."""

    link: str
    family: int
    address: IPInterface | None = None
    gateway: IPAddress | None = None
    nameservers: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    mtu: int | None = None
    expires: float | None = None
    confirmed: bool = True
    preferred: float | None = None


@dataclass(frozen=True)
class Owned:
    """What corral configured earlier: addresses and routes it added, virtual links it created (with the
    spec they were created with), and links it made join a master."""

    addresses: frozenset[tuple[str, IPInterface]] = frozenset()
    routes: frozenset[tuple[str, Route]] = frozenset()
    links: frozenset[tuple[str, LinkSpec]] = frozenset()
    masters: frozenset[tuple[str, str]] = frozenset()

    def link_spec(self, name: str) -> LinkSpec | None:
        return next((spec for n, spec in self.links if n == name), None)

    def master_of(self, name: str) -> str | None:
        return next((m for n, m in self.masters if n == name), None)

    def prune(self, existing: Iterable[str]) -> Owned:
        """Forget what was on links that are gone (their addresses and routes went with them)."""
        names = set(existing)
        return Owned(
            frozenset(a for a in self.addresses if a[0] in names),
            frozenset(r for r in self.routes if r[0] in names),
            frozenset(link for link in self.links if link[0] in names),
            frozenset(m for m in self.masters if m[0] in names and m[1] in names),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "addresses": sorted([link, str(a)] for link, a in self.addresses),
            "routes": sorted(([link, _route_json(r)] for link, r in self.routes), key=repr),
            "links": sorted(
                (
                    [
                        name,
                        {
                            "kind": s.kind,
                            "options": [list(o) for o in s.options],
                            "refs": [list(r) for r in s.refs],
                        },
                    ]
                    for name, s in self.links
                ),
                key=repr,
            ),
            "masters": sorted([link, master] for link, master in self.masters),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Owned:
        return cls(
            frozenset((link, ipaddress.ip_interface(a)) for link, a in data.get("addresses", [])),
            frozenset((link, _route_from_json(r)) for link, r in data.get("routes", [])),
            frozenset(
                (
                    name,
                    LinkSpec(
                        s["kind"],
                        tuple((k, _option(v)) for k, v in s["options"]),
                        tuple((k, v) for k, v in s["refs"]),
                    ),
                )
                for name, s in data.get("links", [])
            ),
            frozenset((link, master) for link, master in data.get("masters", [])),
        )


def _option(value: Any) -> int | str | tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else value


def _route_json(route: Route) -> dict[str, Any]:
    return {
        "to": str(route.to),
        "via": None if route.via is None else str(route.via),
        "metric": route.metric,
        "table": route.table,
        "on_link": route.on_link,
        "source": None if route.source is None else str(route.source),
        "scope": route.scope,
    }


def _route_from_json(data: Mapping[str, Any]) -> Route:
    return Route(
        to=ipaddress.ip_network(data["to"]),
        via=None if data.get("via") is None else ipaddress.ip_address(data["via"]),
        metric=data.get("metric"),
        table=data.get("table"),
        on_link=bool(data.get("on_link")),
        source=None if data.get("source") is None else ipaddress.ip_address(data["source"]),
        scope=data.get("scope"),
    )


@dataclass(frozen=True)
class Observed:
    links: tuple[Link, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    dhcp: tuple[DhcpClient, ...] = ()
    dns: Dns | None = None
    owned: Owned = field(default_factory=Owned)

    def link(self, name: str) -> Link | None:
        return next((link for link in self.links if link.name == name), None)

    def with_owned(self, owned: Owned) -> Observed:
        return replace(self, owned=owned)
