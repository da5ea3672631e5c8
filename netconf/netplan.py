"""netplan v2 (= cloud-init network-config v2) into the model.

The document is the top-level ``network:`` key of the config: ``{version: 2, ethernets, bonds, bridges,
vlans, dummy-devices}``. Each definition's key is its *id*. An ethernet without ``match`` applies to
the link named like its id; with ``match: {name, macaddress, driver}`` it applies to the links for
which every given field matches (``name`` and ``driver`` may be globs), and ``set-name`` renames the
link. Bonds, bridges, VLANs and dummy devices are created under their id (and deleted when they leave
the config); ``interfaces:`` of a bond or bridge and ``link:`` of a VLAN refer to other definitions
by id. A dummy device takes only the properties common to all device types (addresses, routes, mtu,
nameservers, dhcp4/6...), as in netplan.

Accepted and ignored: ``renderer`` (corral renders everything itself), ``optional`` and
``optional-addresses`` (corral never waits for a link or an address at boot: every one is optional).
``gateway4``/``gateway6`` are deprecated by netplan but accepted. Keys netplan has but corral does not
implement (``routing-policy``, ``accept-ra``, Wi-Fi, tunnels, ...) are errors that
say so; unknown keys are errors naming the key path.

Also accepted: cloud-init's ``network: {config: disabled}``, which turns network configuration off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from netconf.model import (
    METRIC,
    MTU,
    DhcpOptions,
    Interface,
    IPInterface,
    Kind,
    LinkSpec,
    Match,
    OptionValue,
    Route,
    Vlan,
    as_duration_ms,
    as_ifname,
    as_mac,
    as_mtu,
    as_nameservers,
    as_route,
    as_search,
    bond_option,
    bond_spec,
    bridge_spec,
    is_glob,
    valid_ifname,
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
    show,
)
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath, format_path

SECTIONS = ("ethernets", "bonds", "bridges", "vlans", "dummy-devices")
_NOT_YET = "is not supported yet"


def _not_yet(*keys: str) -> dict[str, Unsupported]:
    return {k: Unsupported(f"{k!r} {_NOT_YET}") for k in keys}


_STR: SchemaNode = {"type": "string"}
_STRS: SchemaNode = {"type": "array", "items": _STR}
_BOOL: SchemaNode = {"type": "boolean"}
_TIME: SchemaNode = {"type": ["integer", "number", "string"]}
_OVERRIDES: SchemaNode = {"$ref": "#/$defs/network_netplan_dhcp_overrides"}

# The keys of each map, declared once: the parser checks against these tables, and schema.json's
# definitions of the top-level `network` are generated from them (python -m supervisor.gen_schema).
# The schema says structure only (types, names, plain ranges); the parser checks values and explains
# the keys corral does not implement.
TOP = Keys(
    "network_netplan",
    {
        "version": {"type": "integer"},
        "renderer": _STR,
        "config": {"enum": ["disabled"], "description": "cloud-init: turn network configuration off"},
        **{
            section: {
                "type": "object",
                "additionalProperties": {"$ref": f"#/$defs/network_netplan_{name}"},
            }
            for section, name in (
                ("ethernets", "ethernet"),
                ("bonds", "bond"),
                ("bridges", "bridge"),
                ("vlans", "vlan"),
                ("dummy-devices", "dummy"),
            )
        },
        "wifis": Unsupported("Wi-Fi (wifis) is not supported yet"),
        "tunnels": Unsupported("tunnels are not supported yet"),
        "vrfs": Unsupported("VRFs are not supported yet"),
        "modems": Unsupported("modems are not supported yet"),
        "virtual-ethernets": Unsupported("virtual ethernets (veth pairs) are not supported yet"),
        "nm-devices": Unsupported("nm-devices are for NetworkManager only"),
    },
    description="netplan v2 / cloud-init network-config v2; see docs/networking.md.",
)
OPTIONAL_ADDRESSES = ("ipv4-ll", "ipv6-ra", "dhcp4", "dhcp6", "static")
"""netplan's address kinds a link is "online" without; corral waits for none (as for ``optional``)."""
NAMESERVERS = Keys("network_netplan_nameservers", {"addresses": _STRS, "search": _STRS})
COMMON: dict[str, SchemaNode | Unsupported] = {
    "renderer": _STR,
    "optional": _BOOL,
    "dhcp4": _BOOL,
    "dhcp6": _BOOL,
    "dhcp4-overrides": _OVERRIDES,
    "dhcp6-overrides": _OVERRIDES,
    "addresses": {"type": "array", "items": {"type": ["string", "object"]}},
    "gateway4": _STR,
    "gateway6": _STR,
    "nameservers": NAMESERVERS.schema(),
    "routes": {"type": "array", "items": {"$ref": "#/$defs/network_route"}},
    "mtu": integer(*MTU),
    "optional-addresses": {"type": "array", "items": {"enum": list(OPTIONAL_ADDRESSES)}},
    "routing-policy": Unsupported("routing-policy (policy routing rules) is not supported yet"),
    **_not_yet(
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
MATCH = Keys(
    "network_netplan_match",
    {"name": _STR, "macaddress": _STR, "driver": {"type": ["string", "array"], "items": _STR}},
)
DHCP_OVERRIDES = Keys(
    "network_netplan_dhcp_overrides",
    {
        "use-dns": _BOOL,
        "use-routes": _BOOL,
        "route-metric": integer(*METRIC),
        **_not_yet("use-ntp", "send-hostname", "use-hostname", "use-mtu", "hostname", "use-domains"),
    },
)

# netplan bond parameter -> (sysfs name, how the value is written)
BOND_PARAMS: dict[str, tuple[str, str]] = {
    "mode": ("mode", "enum"),
    "lacp-rate": ("lacp_rate", "enum"),
    "mii-monitor-interval": ("miimon", "ms"),
    "min-links": ("min_links", "int"),
    "transmit-hash-policy": ("xmit_hash_policy", "enum"),
    "ad-select": ("ad_select", "enum"),
    "all-slaves-active": ("all_slaves_active", "bool"),
    "all-members-active": ("all_slaves_active", "bool"),
    "arp-interval": ("arp_interval", "ms"),
    "arp-ip-targets": ("arp_ip_target", "list"),
    "arp-validate": ("arp_validate", "enum"),
    "arp-all-targets": ("arp_all_targets", "enum"),
    "up-delay": ("updelay", "ms"),
    "down-delay": ("downdelay", "ms"),
    "fail-over-mac-policy": ("fail_over_mac", "enum"),
    "gratuitous-arp": ("num_grat_arp", "int"),
    "gratuitious-arp": ("num_grat_arp", "int"),  # netplan accepts its old misspelling
    "packets-per-slave": ("packets_per_slave", "int"),
    "packets-per-member": ("packets_per_slave", "int"),
    "primary-reselect-policy": ("primary_reselect", "enum"),
    "resend-igmp": ("resend_igmp", "int"),
    "learn-packet-interval": ("lp_interval", "s"),
    "primary": ("primary", "ref"),
}
_BOND_SCHEMA = {
    "enum": {"type": ["string", "integer"]},
    "int": {"type": ["string", "integer"]},
    "ms": _TIME,
    "s": _TIME,
    "bool": _BOOL,
    "list": _STRS,
    "ref": _STR,
}
BOND_PARAMETERS = Keys(
    "network_netplan_bond_parameters",
    {name: _BOND_SCHEMA[how] for name, (_, how) in BOND_PARAMS.items()},
    hints={sysfs: f"netplan calls it {name!r}" for name, (sysfs, _) in reversed(BOND_PARAMS.items())},
)
# netplan bridge parameter -> pyroute2 keyword; times are seconds in netplan, centiseconds in the kernel
BRIDGE_TIMES = {
    "ageing-time": "br_ageing_time",
    "aging-time": "br_ageing_time",
    "forward-delay": "br_forward_delay",
    "hello-time": "br_hello_time",
    "max-age": "br_max_age",
}
BRIDGE_PRIORITY = (0, 65535)
BRIDGE_PARAMETERS = Keys(
    "network_netplan_bridge_parameters",
    {
        **{k: _TIME for k in BRIDGE_TIMES},
        "priority": integer(*BRIDGE_PRIORITY),
        "stp": _BOOL,
        **{
            k: Unsupported(f"bridge parameter {k!r} {_NOT_YET}")
            for k in (
                "port-priority", "path-cost", "vlan-filtering", "vlan-default-pvid", "vlans", "port-vlans"
            )
        },
    },
)
VLAN_ID = (0, 4094)

DEFINITIONS: dict[str, Keys] = {
    "ethernets": Keys(
        "network_netplan_ethernet",
        {
            **COMMON,
            "match": MATCH.schema(),
            "set-name": _STR,
            **_not_yet(
                "wakeonlan",
                "emit-lldp",
                "receive-checksum-offload",
                "transmit-checksum-offload",
                "tcp-segmentation-offload",
                "tcp6-segmentation-offload",
                "generic-segmentation-offload",
                "generic-receive-offload",
                "large-receive-offload",
                "infiniband-mode",
                "auth",
                "virtual-function-count",
                "embedded-switch-mode",
                "delay-virtual-functions-rebind",
            ),
            "link": Unsupported(f"SR-IOV virtual functions ('link' on an ethernet) {_NOT_YET}"),
        },
        hints=HINTS,
        nullable=True,
    ),
    "bonds": Keys(
        "network_netplan_bond",
        {**COMMON, "interfaces": _STRS, "parameters": BOND_PARAMETERS.schema()},
        hints=HINTS,
        nullable=True,
    ),
    "bridges": Keys(
        "network_netplan_bridge",
        {**COMMON, "interfaces": _STRS, "parameters": BRIDGE_PARAMETERS.schema()},
        hints=HINTS,
        nullable=True,
    ),
    "vlans": Keys(
        "network_netplan_vlan",
        {**COMMON, "id": integer(*VLAN_ID), "link": _STR},
        hints=HINTS,
        nullable=True,
    ),
    # netplan: a dummy device has only the properties of all device types
    "dummy-devices": Keys("network_netplan_dummy", COMMON, hints=HINTS, nullable=True),
}
"""Each section's definitions: their keys."""

SCHEMA_DEFS: dict[str, SchemaNode] = {
    TOP.name: TOP.schema(),
    DHCP_OVERRIDES.name: DHCP_OVERRIDES.schema(),
    **{keys.name: keys.schema() for keys in DEFINITIONS.values()},
}
"""schema.json's definitions for the top-level ``network`` (generated: supervisor.gen_schema)."""

_KINDS: dict[str, Kind] = {"bonds": "bond", "bridges": "bridge", "vlans": "vlan", "dummy-devices": "dummy"}


@dataclass(frozen=True)
class NetplanResult:
    interfaces: tuple[Interface, ...] = ()
    disabled: bool = False


@dataclass
class _Def:
    id: str
    section: str
    data: Mapping[str, Any]
    path: KeyPath
    rule: Interface | None = None


def parse_netplan(data: Any, path: KeyPath, problems: Problems, exclusive: bool = False) -> NetplanResult:
    """The ``network:`` document (``path`` is where it sits, for messages)."""
    top = as_map(data, path, problems, "a netplan v2 document {version: 2, ethernets: ...}")
    if top is None:
        return NetplanResult()
    if top.get("config") == "disabled" and set(top) <= {"config", "version"}:
        return NetplanResult(disabled=True)
    version = top.get("version")
    if version is None:
        problems.error((*path, "version"), "required: 2 (netplan / cloud-init network-config version 2)")
    elif version == 1:
        problems.error(
            (*path, "version"), "network config version 1 is not supported; write version 2 (netplan)"
        )
    elif version != 2:
        problems.error((*path, "version"), f"{show(version)} is not a supported version (only 2)")
    check_keys(top, path, problems, TOP)
    if "config" in top and version != 1:  # version 1's config (a list) is refused above
        problems.error(
            (*path, "config"),
            "cloud-init's 'config: disabled' stands alone (with 'version' at most): "
            "remove it, or the other keys",
        )
    if "renderer" in top:
        as_str(top["renderer"], (*path, "renderer"), problems)
    defs: dict[str, _Def] = {}
    for section in (k for k in top if k in SECTIONS):
        what = "dummy device" if section == "dummy-devices" else section[:-1]
        body = as_map(top[section], (*path, section), problems, f"a map of id to {what} settings")
        for ident, item in (body or {}).items():
            def_path = (*path, section, str(ident))
            if not isinstance(ident, str):
                problems.error(def_path, f"id {show(ident)} is not a string; quote it")
                continue
            if ident in defs:
                problems.error(def_path, f"{ident!r} is already defined in {defs[ident].section}")
                continue
            item_map = as_map(item, def_path, problems)
            if item_map is not None:
                defs[ident] = _Def(ident, section, item_map, def_path)
    for order, d in enumerate(defs.values()):
        d.rule = _definition(d, order, problems, exclusive)
    _link_members(defs, problems)
    return NetplanResult(tuple(d.rule for d in defs.values() if d.rule is not None))


def _definition(d: _Def, order: int, problems: Problems, exclusive: bool) -> Interface | None:
    before = problems.count()
    data, path = d.data, d.path
    match = Match(name=d.id)
    set_name = None
    kind: Kind = "link"
    if d.section == "ethernets":
        check_keys(data, path, problems, DEFINITIONS[d.section])
        if "match" in data:
            match = _match(data["match"], (*path, "match"), problems) or match
        elif not valid_ifname(d.id) or is_glob(d.id):
            problems.error(
                path,
                f"without 'match', the id is the interface name, and {d.id!r} is not one "
                "(use match: {name: ...} for a glob)",
            )
        if "set-name" in data:
            set_name = as_ifname(data["set-name"], (*path, "set-name"), problems)
            if "match" not in data:
                problems.error((*path, "set-name"), "'set-name' needs 'match' (which link to rename)")
    else:
        check_keys(data, path, problems, DEFINITIONS[d.section])
        if not valid_ifname(d.id):
            problems.error(
                path, f"{d.id!r} is not a valid interface name (1 to 15 characters, no spaces, '/' or ':')"
            )
        kind = _KINDS[d.section]
    rule = Interface(
        id=d.id,
        key=format_path(path),
        match=match,
        order=order,
        kind=kind,
        set_name=set_name,
        exclusive=exclusive,
        **_common(data, path, problems),
    )
    if d.section == "bridges":
        rule = replace(rule, bridge=_bridge(data.get("parameters"), (*path, "parameters"), problems))
    elif d.section == "vlans":
        rule = _vlan(rule, data, path, problems)
    if problems.count() > before:
        return None
    return rule


def _match(value: Any, path: KeyPath, problems: Problems) -> Match | None:
    data = as_map(value, path, problems)
    if data is None:
        return None
    check_keys(data, path, problems, MATCH)
    if not any(k in data for k in MATCH.known):
        problems.error(path, "give at least one of: name, macaddress, driver")
        return None
    name = None
    if "name" in data:
        name = as_str(data["name"], (*path, "name"), problems)
    mac = as_mac(data["macaddress"], (*path, "macaddress"), problems) if "macaddress" in data else None
    drivers: list[str] = []
    if "driver" in data:
        raw = data["driver"]
        for i, item in enumerate(raw if isinstance(raw, list) else [raw]):
            text = as_str(
                item, (*path, "driver", i) if isinstance(raw, list) else (*path, "driver"), problems
            )
            if text is not None:
                drivers.append(text)
    return Match(name=name, mac=mac, drivers=tuple(drivers))


def _common(data: Mapping[str, Any], path: KeyPath, problems: Problems) -> dict[str, Any]:
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
            problems.error((*path, "addresses", i), f"addresses with options (lifetime, label) {_NOT_YET}")
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


def _bridge(value: Any, path: KeyPath, problems: Problems) -> LinkSpec:
    """netplan's bridge ``parameters``. netplan turns STP on unless ``stp: false``; corral does too."""
    data = as_map(value, path, problems) or {}
    check_keys(data, path, problems, BRIDGE_PARAMETERS)
    options: dict[str, OptionValue] = {"br_stp_state": 1}
    for key, item in data.items():
        if key in BRIDGE_TIMES:
            ms = as_duration_ms(item, (*path, key), problems, "s")
            if ms is not None:
                options[BRIDGE_TIMES[key]] = round(ms / 10)  # the kernel counts centiseconds
        elif key == "priority":
            number = as_int(item, (*path, key), problems, *BRIDGE_PRIORITY, strings=True)
            if number is not None:
                options["br_priority"] = number
        elif key == "stp":
            stp = as_bool(item, (*path, key), problems, strings=True)
            options["br_stp_state"] = 1 if stp is not False else 0
    return bridge_spec(options)


def _bond(value: Any, path: KeyPath, problems: Problems, primary: str | None) -> LinkSpec:
    data = as_map(value, path, problems) or {}
    check_keys(data, path, problems, BOND_PARAMETERS)
    mode = 0
    options: dict[str, OptionValue] = {}
    for key, item in data.items():
        if key not in BOND_PARAMS or key == "primary":
            continue
        name, how = BOND_PARAMS[key]
        raw: Any = item
        if how == "ms":
            ms = as_duration_ms(item, (*path, key), problems, "ms")
            if ms is None:
                continue
            raw = round(ms)
        elif how == "s":
            ms = as_duration_ms(item, (*path, key), problems, "s")
            if ms is None:
                continue
            raw = max(1, round(ms / 1000))
        elif how == "bool":
            flag = as_bool(item, (*path, key), problems, strings=True)
            if flag is None:
                continue
            raw = int(flag)
        pair = bond_option(name, raw, (*path, key), problems)
        if pair is None:
            continue
        if pair[0] == "bond_mode":
            mode = int(pair[1])  # type: ignore[arg-type]
        else:
            options[pair[0]] = pair[1]
    return bond_spec(mode, options, primary)


def _vlan(rule: Interface, data: Mapping[str, Any], path: KeyPath, problems: Problems) -> Interface:
    vid = None
    if "id" not in data:
        problems.error((*path, "id"), "required: the VLAN id (0 to 4094)")
    else:
        vid = as_int(data["id"], (*path, "id"), problems, *VLAN_ID, strings=True)
    link = None
    if "link" not in data:
        problems.error((*path, "link"), "required: the id of the definition the VLAN sits on")
    else:
        link = as_str(data["link"], (*path, "link"), problems)
    if vid is None or link is None:
        return rule
    return replace(rule, vlan=Vlan(vid, link))


def _link_name(d: _Def) -> str | None:
    """The link name a definition ends up with, when it is fixed."""
    if d.rule is None:
        return None
    return d.rule.set_name or d.rule.match.exact_name


def _link_members(defs: dict[str, _Def], problems: Problems) -> None:
    """Resolve ``interfaces:`` of bonds and bridges (members get ``master``), bond ``primary`` and VLAN
    ``link:`` references."""
    member_of: dict[str, str] = {}
    for d in defs.values():
        if d.section in ("bonds", "bridges"):
            members_path = (*d.path, "interfaces")
            for i, member in enumerate(as_list(d.data.get("interfaces"), members_path, problems) or []):
                mpath = (*members_path, i)
                target = defs.get(member) if isinstance(member, str) else None
                if target is None:
                    problems.error(
                        mpath,
                        f"{show(member)} is not defined "
                        "(list ids of ethernets, bonds, vlans or dummy-devices)",
                    )
                elif member == d.id:
                    problems.error(mpath, f"{d.id} cannot contain itself")
                elif member in member_of:
                    problems.error(mpath, f"{member!r} is already a member of {member_of[member]}")
                else:
                    member_of[member] = d.id
                    rule = _check_member(target, d.id, problems)
                    if rule is not None:
                        target.rule = replace(rule, master=d.id)
        if d.section == "bonds" and d.rule is not None:
            primary = _primary(d, defs, member_of, problems)
            d.rule = replace(
                d.rule, bond=_bond(d.data.get("parameters"), (*d.path, "parameters"), problems, primary)
            )
        if d.section == "vlans" and d.rule is not None and d.rule.vlan is not None:
            parent = defs.get(d.rule.vlan.link)
            if parent is None or parent.id == d.id:
                problems.error(
                    (*d.path, "link"),
                    f"{d.rule.vlan.link!r} is not defined "
                    "(give the id of an ethernet, bond, bridge or dummy device)",
                )
                d.rule = None


def _check_member(target: _Def, master: str, problems: Problems) -> Interface | None:
    """The member's rule, or None (and an error) when it has addresses of its own."""
    for key in ("dhcp4", "dhcp6", "addresses", "gateway4", "gateway6", "routes"):
        if target.data.get(key):
            problems.error(
                (*target.path, key), f"{target.id} is a member of {master}; set addresses on {master}"
            )
            target.rule = None
    return target.rule


def _primary(
    d: _Def, defs: Mapping[str, _Def], member_of: Mapping[str, str], problems: Problems
) -> str | None:
    params = d.data.get("parameters")
    if not isinstance(params, Mapping) or "primary" not in params:
        return None
    path = (*d.path, "parameters", "primary")
    ident = params["primary"]
    target = defs.get(ident) if isinstance(ident, str) else None
    if target is None or member_of.get(target.id) != d.id:
        problems.error(path, f"{show(ident)} is not one of this bond's interfaces")
        return None
    name = _link_name(target)
    if name is None:
        problems.error(path, f"{target.id!r} has no fixed interface name (give it set-name)")
    return name
