"""netplan's common properties for all device types: their key table and their parsing.

Every definition (ethernet, bond, bridge, VLAN, dummy device) has these: ``dhcp4``/``dhcp6`` and their
``dhcp4-overrides``/``dhcp6-overrides``, ``addresses``, ``gateway4``/``gateway6``, ``routes``,
``mtu``, ``nameservers``, and the accepted-and-ignored ``renderer``, ``optional`` and
``optional-addresses``. Also the schema atoms the other netplan tables are written with."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from netconf.model import (
    METRIC,
    MTU,
    DhcpOptions,
    IPInterface,
    Route,
    as_mtu,
    as_nameservers,
    as_route,
    as_search,
)
from supervisor.config.check import (
    Keys,
    SchemaNode,
    Unsupported,
    as_bool,
    as_enum,
    as_int,
    as_ip_address,
    as_ip_interface,
    as_list,
    as_map,
    as_str,
    check_keys,
    integer,
)
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath

NOT_YET = "is not supported yet"


def not_yet(*keys: str) -> dict[str, Unsupported]:
    return {k: Unsupported(f"{k!r} {NOT_YET}") for k in keys}


# The schema atoms netplan's key tables are written with (structure only: the parsers check values).
STR: SchemaNode = {"type": "string"}
STRS: SchemaNode = {"type": "array", "items": STR}
BOOL: SchemaNode = {"type": "boolean"}
TIME: SchemaNode = {"type": ["integer", "number", "string"]}
_OVERRIDES: SchemaNode = {"$ref": "#/$defs/network_netplan_dhcp_overrides"}

OPTIONAL_ADDRESSES = ("ipv4-ll", "ipv6-ra", "dhcp4", "dhcp6", "static")
"""netplan's address kinds a link is "online" without; corral waits for none (as for ``optional``)."""
NAMESERVERS = Keys("network_netplan_nameservers", {"addresses": STRS, "search": STRS})
COMMON: dict[str, SchemaNode | Unsupported] = {
    "renderer": STR,
    "optional": BOOL,
    "dhcp4": BOOL,
    "dhcp6": BOOL,
    "dhcp4-overrides": _OVERRIDES,
    "dhcp6-overrides": _OVERRIDES,
    "addresses": {"type": "array", "items": {"type": ["string", "object"]}},
    "gateway4": STR,
    "gateway6": STR,
    "nameservers": NAMESERVERS.schema(),
    "routes": {"type": "array", "items": {"$ref": "#/$defs/network_route"}},
    "mtu": integer(*MTU),
    "optional-addresses": {"type": "array", "items": {"enum": list(OPTIONAL_ADDRESSES)}},
    "routing-policy": Unsupported("routing-policy (policy routing rules) is not supported yet"),
    **not_yet(
        "accept-ra",
        "macaddress",
        "critical",
        "dhcp-identifier",
        "ipv6-privacy",
        "link-local",
        "ignore-carrier",
        "activation-mode",
        "ipv6-mtu",
        "ipv6-address-generation",
        "ipv6-address-token",
        "neigh-suppress",
        "openvswitch",
    ),
}
"""The properties every definition has (netplan's "common properties for all device types")."""
HINTS = {
    "dhcp": "netplan has 'dhcp4' and 'dhcp6'",
    "address": "netplan has 'addresses' (a list)",
    "gateway": "netplan has 'gateway4' and 'gateway6', or routes: [{to: default, via: ...}]",
    "dns": "netplan has 'nameservers: {addresses, search}'",
}
DHCP_OVERRIDES = Keys(
    "network_netplan_dhcp_overrides",
    {
        "use-dns": BOOL,
        "use-routes": BOOL,
        "route-metric": integer(*METRIC),
        **not_yet("use-ntp", "send-hostname", "use-hostname", "use-mtu", "hostname", "use-domains"),
    },
)


def common_properties(data: Mapping[str, Any], path: KeyPath, problems: Problems) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def flag(key: str) -> bool:
        return bool(as_bool(data[key], (*path, key), problems, strings=True)) if key in data else False

    out["dhcp4"] = flag("dhcp4")
    out["dhcp6"] = flag("dhcp6")
    flag("optional")
    if "optional-addresses" in data:  # checked, and nothing to do: corral waits for no address
        key_path = (*path, "optional-addresses")
        for i, item in enumerate(as_list(data["optional-addresses"], key_path, problems) or []):
            as_enum(item, (*key_path, i), problems, OPTIONAL_ADDRESSES)
    if "renderer" in data:
        as_str(data["renderer"], (*path, "renderer"), problems)
    for family in (4, 6):
        key = f"dhcp{family}-overrides"
        if key in data:
            out[f"dhcp{family}_options"] = _dhcp_overrides(data[key], (*path, key), problems)
    addresses: list[IPInterface] = []
    for i, item in enumerate(as_list(data.get("addresses"), (*path, "addresses"), problems) or []):
        if isinstance(item, Mapping):
            problems.error((*path, "addresses", i), f"addresses with options (lifetime, label) {NOT_YET}")
            continue
        address = as_ip_interface(item, (*path, "addresses", i), problems)
        if address is not None and address not in addresses:
            addresses.append(address)
    out["addresses"] = tuple(addresses)
    if "gateway4" in data:
        gw4 = as_ip_address(data["gateway4"], (*path, "gateway4"), problems, 4)
        out["gateway4"] = gw4 if isinstance(gw4, IPv4Address) else None
    if "gateway6" in data:
        gw6 = as_ip_address(data["gateway6"], (*path, "gateway6"), problems, 6)
        out["gateway6"] = gw6 if isinstance(gw6, IPv6Address) else None
    routes: list[Route] = []
    for i, item in enumerate(as_list(data.get("routes"), (*path, "routes"), problems) or []):
        route = as_route(item, (*path, "routes", i), problems)
        if route is not None:
            routes.append(route)
    out["routes"] = tuple(routes)
    if "mtu" in data:
        out["mtu"] = as_mtu(data["mtu"], (*path, "mtu"), problems)
    if "nameservers" in data:
        ns_path = (*path, "nameservers")
        ns = as_map(data["nameservers"], ns_path, problems)
        if ns is not None:
            check_keys(ns, ns_path, problems, NAMESERVERS)
            out["nameservers"] = as_nameservers(ns.get("addresses"), (*ns_path, "addresses"), problems)
            out["search"] = as_search(ns.get("search"), (*ns_path, "search"), problems)
    return out


def _dhcp_overrides(value: Any, path: KeyPath, problems: Problems) -> DhcpOptions:
    data = as_map(value, path, problems)
    if not data:
        return DhcpOptions()
    check_keys(data, path, problems, DHCP_OVERRIDES)
    metric = (
        as_int(data["route-metric"], (*path, "route-metric"), problems, *METRIC, strings=True)
        if "route-metric" in data
        else None
    )
    use_dns = (
        as_bool(data["use-dns"], (*path, "use-dns"), problems, strings=True) if "use-dns" in data else True
    )
    use_routes = (
        as_bool(data["use-routes"], (*path, "use-routes"), problems, strings=True)
        if "use-routes" in data
        else True
    )
    return DhcpOptions(metric, use_dns is not False, use_routes is not False)
