"""netplan's common properties for all device types: their key table and their parsing.

Every definition (ethernet, bond, bridge, VLAN, dummy device) has these: ``dhcp4``/``dhcp6`` and their
``dhcp4-overrides``/``dhcp6-overrides``, ``addresses``, ``gateway4``/``gateway6``, ``routes``,
``mtu``, ``nameservers``, and the accepted-and-ignored ``renderer``, ``optional``, ``critical`` and
``optional-addresses``; the keys corral does not implement are ``Ignored`` entries (warnings saying
what corral does instead). Also the schema atoms the other netplan tables are written with."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from netconf.model import (
    ADDR_GEN_MODE_NONE,
    IPV6_MTU,
    METRIC,
    MTU,
    DhcpOptions,
    IPInterface,
    Route,
    as_mac,
    as_mtu,
    as_nameservers,
    as_route,
    as_search,
)
from supervisor.config.check import (
    Ignored,
    Keys,
    SchemaNode,
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

# The schema atoms netplan's key tables are written with (structure only: the parsers check values).
STR: SchemaNode = {"type": "string"}
STRS: SchemaNode = {"type": "array", "items": STR}
BOOL: SchemaNode = {"type": "boolean"}
TIME: SchemaNode = {"type": ["integer", "number", "string"]}
_OVERRIDES: SchemaNode = {"$ref": "#/$defs/network_netplan_dhcp_overrides"}

OPTIONAL_ADDRESSES = ("ipv4-ll", "ipv6-ra", "dhcp4", "dhcp6", "static")
"""netplan's address kinds a link is "online" without; corral waits for none (as for ``optional``)."""
LINK_LOCAL = ("ipv4", "ipv6")
MAC_POLICIES = ("permanent", "random", "stable", "stable-ssid", "preserve")
"""netplan's ``macaddress`` values that are no address (NetworkManager's policies): warned."""
DHCP_IDENTIFIERS = ("mac", "duid")
NAMESERVERS = Keys("network_netplan_nameservers", {"addresses": STRS, "search": STRS})


def ignored(what: str) -> Ignored:
    """A key corral accepts with a warning: ``what`` says what corral does instead."""
    return Ignored(f"not implemented; {what}")


COMMON: dict[str, SchemaNode | Ignored] = {
    "renderer": STR,
    "optional": BOOL,
    "critical": BOOL,
    "dhcp4": BOOL,
    "dhcp6": BOOL,
    "dhcp4-overrides": _OVERRIDES,
    "dhcp6-overrides": _OVERRIDES,
    "dhcp-identifier": {"enum": list(DHCP_IDENTIFIERS)},
    "addresses": {"type": "array", "items": {"type": ["string", "object"]}},
    "gateway4": STR,
    "gateway6": STR,
    "nameservers": NAMESERVERS.schema(),
    "routes": {"type": "array", "items": {"$ref": "#/$defs/network_route"}},
    "mtu": integer(*MTU),
    "optional-addresses": {"type": "array", "items": {"enum": list(OPTIONAL_ADDRESSES)}},
    "link-local": {"type": "array", "items": {"enum": list(LINK_LOCAL)}},
    "ipv6-privacy": BOOL,
    "routing-policy": ignored(
        "the policy rules are not added: traffic follows the main table (routes given a 'table' are "
        "still added to that table)"
    ),
    "accept-ra": BOOL,
    "ipv6-mtu": integer(*IPV6_MTU),
    "ra-overrides": ignored("router advertisements are handled by the kernel, with its defaults"),
    "macaddress": STR,
    "ignore-carrier": ignored("corral configures the link as it does every link"),
    "activation-mode": ignored("corral brings the link up like every configured link"),
    "ipv6-address-generation": ignored("the kernel's default address generation (EUI-64) is used"),
    "ipv6-address-token": ignored("the kernel's default address generation (EUI-64) is used"),
    "neigh-suppress": ignored("the bridge port keeps the kernel's default"),
    "hairpin": ignored("the bridge port keeps the kernel's default"),
    "port-mac-learning": ignored("the bridge port keeps the kernel's default"),
    "openvswitch": ignored("corral makes a Linux bridge or bond; Open vSwitch settings are not used"),
    "networkmanager": ignored("NetworkManager's own settings are not used"),
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
        "send-hostname": BOOL,
        "use-hostname": BOOL,
        "use-mtu": BOOL,
        "use-ntp": ignored("corral has no NTP client that would use the lease's servers"),
        "hostname": ignored("corral's DHCP client sends the machine's hostname"),
        "use-domains": ignored("the lease's search domains are used when 'use-dns' is on"),
    },
)
_OVERRIDE_DEFAULTS = {
    "send-hostname": (True, "corral's DHCP client always sends the machine's hostname"),
    "use-hostname": (False, "corral never takes its hostname from a DHCP lease"),
    "use-mtu": (True, "corral always gives the link the MTU a lease offers (unless 'mtu' is set)"),
}
"""Overrides corral does not implement, with the one value it always behaves as and what it does."""


def common_properties(data: Mapping[str, Any], path: KeyPath, problems: Problems) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def flag(key: str) -> bool:
        return bool(as_bool(data[key], (*path, key), problems, strings=True)) if key in data else False

    out["dhcp4"] = flag("dhcp4")
    out["dhcp6"] = flag("dhcp6")
    flag("optional")  # corral never waits for a link at boot: every one is optional
    flag("critical")  # corral keeps a lease's address over its own restarts: every link is critical
    if "dhcp-identifier" in data:
        key_path = (*path, "dhcp-identifier")
        if as_enum(data["dhcp-identifier"], key_path, problems, DHCP_IDENTIFIERS) == "duid":
            problems.warn(
                key_path, "not implemented; corral's DHCP client identifies itself by the MAC address"
            )
    link_local: set[str | None] = {"ipv6"}
    if "link-local" in data:
        key_path = (*path, "link-local")
        link_local = {
            as_enum(item, (*key_path, i), problems, LINK_LOCAL)
            for i, item in enumerate(as_list(data["link-local"], key_path, problems) or [])
        }
        if "ipv4" in link_local:
            problems.warn(key_path, "IPv4 link-local addressing is not implemented: the link gets none")
    if "macaddress" in data:
        key_path = (*path, "macaddress")
        if data["macaddress"] in MAC_POLICIES:
            policy = data["macaddress"]
            problems.warn(key_path, f"not implemented; {policy!r}: the link keeps its MAC address")
        else:
            mac = as_mac(data["macaddress"], key_path, problems)
            if mac is not None and int(mac[:2], 16) & 1:
                problems.warn(
                    key_path,
                    f"{mac} is a multicast address, which no link can have: the kernel's MAC is kept",
                )
                mac = None
            out["macaddress"] = mac
    ipv6: list[tuple[str, int]] = []
    if "accept-ra" in data:  # 2: accepted even while the host forwards IPv6 (docker may turn it on)
        accept = as_bool(data["accept-ra"], (*path, "accept-ra"), problems, strings=True)
        if accept is not None:
            ipv6.append(("accept_ra", 2 if accept else 0))
    elif out["dhcp6"]:  # netplan: dhcp6 brings SLAAC up too; the kernel's RA handling is corral's
        ipv6.append(("accept_ra", 2))
    if "ipv6-privacy" in data and flag("ipv6-privacy"):
        ipv6.append(("use_tempaddr", 2))  # temporary addresses, preferred (netplan's meaning)
    if "ipv6-mtu" in data:
        mtu6 = as_int(data["ipv6-mtu"], (*path, "ipv6-mtu"), problems, *IPV6_MTU, strings=True)
        if mtu6 is not None:
            ipv6.append(("mtu", mtu6))
    if "ipv6" not in link_local:  # no IPv6 link-local address when the link comes up
        ipv6.append(("addr_gen_mode", ADDR_GEN_MODE_NONE))
    out["ipv6_conf"] = tuple(ipv6)
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
        if isinstance(item, Mapping) and len(item) == 1:  # {10.0.0.2/24: {lifetime: 0, label: x}}
            [(item, options)] = item.items()
            if options:
                problems.warn(
                    (*path, "addresses", i),
                    "address options (lifetime, label) are not implemented; the address is added "
                    "without them (permanent, no label)",
                )
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
    for key, (default, what) in _OVERRIDE_DEFAULTS.items():
        if key in data:
            value = as_bool(data[key], (*path, key), problems, strings=True)
            if value is not None and value is not default:
                problems.warn((*path, key), f"not implemented; {what}")
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
