"""What the network should be: the config and the DHCP leases corral's clients hold (``Desired``), and
what a lease brings to its link, config first (the rules netconf/plan.py applies; see its doc)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from netconf.model import Interface, IPInterface, NetworkConfig, Route
from netconf.observed import Address, DhcpLease

LEASE_ROUTE_METRIC = 1024
"""A lease's default route's metric unless ``route-metric`` says otherwise: a static one (0) wins."""
LIFETIME_SLACK = 2.0
"""Seconds a lease address's lifetime may run past the lease's end (the kernel counts whole seconds)."""
LIFETIME_EARLY = 1.0
"""Seconds a lease address's lifetime may seem to end before the lease: only the kernel's whole seconds
(it reports the seconds left rounded down). An address that really ends before its lease is replaced."""


@dataclass(frozen=True)
class Desired:
    """What the network should be: the config, and the DHCP leases corral's clients hold now."""

    config: NetworkConfig
    leases: tuple[DhcpLease, ...] = ()

    @classmethod
    def of(cls, desired: NetworkConfig | Desired) -> Desired:
        """A config alone is a desired state without leases."""
        return desired if isinstance(desired, Desired) else cls(desired)


# -- what a lease brings: config first ---------------------------------------------------------------------


def lease_address(rule: Interface, lease: DhcpLease) -> IPInterface | None:
    """The lease's address, unless the config gives the link the same IP (config wins)."""
    if lease.address is None or any(a.ip == lease.address.ip for a in rule.addresses):
        return None
    return lease.address


def lease_route(rule: Interface, lease: DhcpLease) -> Route | None:
    """The default route via the lease's router, with the config's metric (``route-metric``, else
    ``LEASE_ROUTE_METRIC``); none with ``use-routes: false``, or when the config gives the link a
    default route of that family in the same table (config wins)."""
    options = rule.dhcp_options(lease.family)
    if lease.gateway is None or not options.use_routes:
        return None
    default = ipaddress.ip_network("0.0.0.0/0" if lease.gateway.version == 4 else "::/0")
    metric = LEASE_ROUTE_METRIC if options.route_metric is None else options.route_metric
    route = Route(default, lease.gateway, metric=metric).canonical()
    for configured in rule.all_routes():
        c = configured.canonical()
        if c.to == default and c.table == route.table:
            return None
    return route


def link_mtu(rule: Interface, leases: Iterable[DhcpLease]) -> int | None:
    """The config's MTU; without one, the first confirmed lease's that offers one."""
    if rule.mtu is not None:
        return rule.mtu
    return next((le.mtu for le in leases if le.confirmed and le.mtu is not None), None)


def lifetime_current(address: Address, lease: DhcpLease) -> bool:
    """The address in the kernel ends when the lease does: not before it (beyond the kernel's rounding:
    ``LIFETIME_EARLY``), at most ``LIFETIME_SLACK`` after it. A lease moved on by less than the slack (a
    rebind soon after a renewal) would otherwise keep an address that goes while the lease still holds."""
    if lease.expires is None or address.expires is None:
        return lease.expires is None and address.expires is None
    return lease.expires - LIFETIME_EARLY <= address.expires <= lease.expires + LIFETIME_SLACK
