"""RancherOS's network config (``corral.network``, or ``rancher.network``) into the model.

Mirrors RancherOS's ``netconf`` package:

- ``interfaces`` is keyed by an interface name, a glob (``eth*``) or ``mac=aa:bb:...`` (``mac:`` works
  too, and MAC globs such as ``mac=aa:bb:*``); ``match:`` in the entry replaces the key as the pattern.
- ``dhcp: true`` runs DHCPv4 (RancherOS ran ``dhcpcd -4``); corral adds ``dhcp6``.
- ``address``/``addresses``, ``gateway`` (IPv4 or IPv6), ``gateway_ipv6``, ``mtu``.
- ``bridge: true`` makes the entry's key a bridge that corral creates; ``bridge: br0`` on another
  entry makes the links it matches ports of ``br0`` (created when no entry says ``br0: {bridge: true}``).
- ``bond: bond0`` on an entry makes the links it matches members of ``bond0``, created with the
  ``bond_opts`` of the entry keyed ``bond0`` (sysfs names and values: ``mode: "4"`` or ``802.3ad``,
  ``miimon: "100"``...).
- ``vlans: "100,200:foobar"`` creates, on each link the entry matches, VLAN 100 named ``<link>.100``
  and VLAN 200 named ``foobar``; configure them with entries keyed by those names.
- ``pre_up``/``post_up`` (per entry) and ``pre_cmds``/``post_cmds`` (around the whole network
  configuration) are commands; ``$iface`` in them is replaced by the link's name.
- ``dns: {nameservers, search}``.

corral's additions: ``dhcp6``, ``routes`` (netplan's route syntax) and ``exclusive``, per entry or for
all entries at ``corral.network.exclusive``. Differences: static addresses apply even with
``dhcp: true`` (RancherOS ignored them then); an exact name beats a MAC (RancherOS put MACs first);
members of a bond or bridge may not have addresses of their own (RancherOS ignored them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from netconf.bond import bond_option
from netconf.model import (
    MTU,
    Argv,
    Dns,
    Interface,
    IPAddress,
    IPInterface,
    LinkSpec,
    Match,
    OptionValue,
    Route,
    VlanDef,
    as_hooks,
    as_ifname,
    as_mac,
    as_mtu,
    as_nameservers,
    as_route,
    as_search,
    bond_spec,
    bridge_spec,
    is_glob,
    valid_ifname,
)
from supervisor.config.check import (
    Ignored,
    Keys,
    SchemaNode,
    Unsupported,
    as_bool,
    as_int,
    as_ip_address,
    as_ip_interface,
    as_list,
    as_map,
    check_keys,
    integer,
    show,
)
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath, format_path

DHCP_TIMEOUT = (1, 3600)
_STR: SchemaNode = {"type": "string"}
_BOOL: SchemaNode = {"type": "boolean"}
_HOOKS: SchemaNode = {"$ref": "#/$defs/network_hooks"}

# The keys of each map, declared once: the parser checks against these tables, and schema.json's
# definitions of `corral.network` are generated from them (python -m supervisor.gen_schema). The
# schema says structure only (types, names, plain ranges); the parser checks values (addresses,
# names) and gives the messages for keys corral knows but does not implement.
_NO_WIFI = "no Wi-Fi support (no wpa_supplicant in the image): the Wi-Fi settings are ignored"
_PROXY = {"type": "string", "description": "a proxy URL: environment of both dockerds and the units"}
TOP = Keys(
    "network_rancher",
    {
        "interfaces": {
            "type": ["object", "null"],
            "description": "Keyed by interface name, glob (eth*) or mac=aa:bb:cc:dd:ee:ff.",
            "additionalProperties": {"$ref": "#/$defs/network_rancher_interface"},
        },
        "dns": {"$ref": "#/$defs/network_dns"},
        "pre_cmds": _HOOKS,
        "post_cmds": _HOOKS,
        "dhcp_timeout": integer(*DHCP_TIMEOUT),
        "exclusive": {"type": "boolean", "description": "Default for every interface (false)."},
        "http_proxy": _PROXY,
        "https_proxy": _PROXY,
        "no_proxy": {"type": "string", "description": "NO_PROXY of both dockerds and the units"},
        "wifi_networks": Ignored(_NO_WIFI),
        "modem_networks": Ignored("no modem (ModemManager/wwan) support: the modem networks are ignored"),
    },
    description="Network configuration in RancherOS's format; see docs/networking.md.",
)
_PER_HOST = "DNS servers are set for the whole host, under corral.network.dns"
_HOST_HOOKS = "pre_cmds and post_cmds belong to corral.network itself; per interface use pre_up/post_up"
IFACE = Keys(
    "network_rancher_interface",
    {
        "match": _STR,
        "dhcp": _BOOL,
        "dhcp6": _BOOL,
        "dhcp_args": {"type": "string", "description": "ignored (corral's DHCP client is built in)"},
        "address": _STR,
        "addresses": {"type": "array", "items": _STR},
        "gateway": _STR,
        "gateway_ipv6": _STR,
        "mtu": integer(*MTU),
        "bridge": {"type": ["boolean", "string"]},
        "bond": _STR,
        "bond_opts": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
        "pre_up": _HOOKS,
        "post_up": _HOOKS,
        "vlans": {"type": ["string", "integer", "array"]},
        "routes": {"type": "array", "items": {"$ref": "#/$defs/network_route"}},
        "exclusive": _BOOL,
        "ipv4ll": Ignored("no IPv4 link-local addressing (169.254.0.0/16): no such address is given"),
        "wifi_network": Ignored(_NO_WIFI),
    },
    hints={
        "dns": _PER_HOST,
        "nameservers": _PER_HOST,
        "dhcp4": "in this format DHCPv4 is 'dhcp'",
        "gateway6": "in this format it is 'gateway_ipv6'",
        "pre_cmds": _HOST_HOOKS,
        "post_cmds": _HOST_HOOKS,
    },
    nullable=True,
)
DNS = Keys(
    "network_dns",
    {
        "nameservers": {"type": ["array", "string"], "items": _STR},
        "search": {"type": ["array", "string"], "items": _STR},
        "domain": Unsupported("'domain' is not supported: list the domain under 'search'"),
    },
    nullable=True,
)
SCHEMA_DEFS: dict[str, SchemaNode] = {
    TOP.name: TOP.schema(),
    IFACE.name: IFACE.schema(),
    DNS.name: DNS.schema(),
    "network_hooks": {
        "anyOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": ["string", "number"]}}]
                },
            },
        ],
        "description": "Commands: a string is split into words (no shell).",
    },
}


@dataclass(frozen=True)
class RancherSettings:
    """``corral.network`` parsed."""

    interfaces: tuple[Interface, ...] = ()
    dns: Dns = field(default_factory=Dns)
    pre_cmds: tuple[Argv, ...] = ()
    post_cmds: tuple[Argv, ...] = ()
    dhcp_timeout: int | None = None
    exclusive: bool = False


@dataclass
class _Entry:
    """One ``interfaces`` entry while parsing (before masters are resolved)."""

    rule: Interface
    path: KeyPath
    is_bridge: bool = False
    master_kind: str | None = None  # "bridge" | "bond" when the entry joins one
    bond_opts: Mapping[str, Any] | None = None


def parse_rancher(data: Any, path: KeyPath, problems: Problems) -> RancherSettings:
    """``corral.network`` (``path`` is where it sits, for messages). Missing means nothing set."""
    if data is None:
        return RancherSettings()
    top = as_map(data, path, problems)
    if top is None:
        return RancherSettings()
    check_keys(top, path, problems, TOP)
    exclusive = (
        bool(as_bool(top["exclusive"], (*path, "exclusive"), problems, strings=True))
        if "exclusive" in top
        else False
    )
    dns = _dns(top.get("dns"), (*path, "dns"), problems)
    pre = as_hooks(top.get("pre_cmds"), (*path, "pre_cmds"), problems)
    post = as_hooks(top.get("post_cmds"), (*path, "post_cmds"), problems)
    timeout = None
    if "dhcp_timeout" in top:
        timeout = as_int(top["dhcp_timeout"], (*path, "dhcp_timeout"), problems, *DHCP_TIMEOUT, strings=True)
    interfaces: tuple[Interface, ...] = ()
    if top.get("interfaces") is not None:
        interfaces = _interfaces(top["interfaces"], (*path, "interfaces"), problems, exclusive)
    return RancherSettings(interfaces, dns, pre, post, timeout, exclusive)


def _dns(value: Any, path: KeyPath, problems: Problems) -> Dns:
    data = as_map(value, path, problems)
    if not data:
        return Dns()
    check_keys(data, path, problems, DNS)
    return Dns(
        as_nameservers(data.get("nameservers"), (*path, "nameservers"), problems),
        as_search(data.get("search"), (*path, "search"), problems),
    )


def _interfaces(value: Any, path: KeyPath, problems: Problems, exclusive: bool) -> tuple[Interface, ...]:
    data = as_map(value, path, problems, "a map of interface name (or glob, or mac=...) to settings")
    if data is None:
        return ()
    entries: list[_Entry] = []
    for order, (key, item) in enumerate(data.items()):
        if not isinstance(key, str):
            problems.error((*path, str(key)), f"interface key {show(key)} is not a string; quote it")
            continue
        entry = _entry(key, item, (*path, key), order, problems, exclusive)
        if entry is not None:
            entries.append(entry)
    return _resolve_masters(entries, problems, exclusive)


def _match(key: str, raw_match: Any, path: KeyPath, problems: Problems) -> Match | None:
    if raw_match is not None:
        path = (*path, "match")
        if not isinstance(raw_match, str):
            problems.error(path, f"expected a name, glob or mac=..., got {show(raw_match)}")
            return None
        pattern = raw_match
    else:
        pattern = key
    if pattern.startswith(("mac=", "mac:")):
        mac = as_mac(pattern[4:], path, problems, allow_glob=True)
        return None if mac is None else Match(mac=mac)
    if (
        not pattern
        or any(c.isspace() or c in "/:" for c in pattern)
        or (not is_glob(pattern) and not valid_ifname(pattern))
    ):
        problems.error(
            path, f"{show(pattern)} is not an interface name, glob (eth*) or mac=aa:bb:cc:dd:ee:ff"
        )
        return None
    return Match(name=pattern)


def _entry(
    key: str, value: Any, path: KeyPath, order: int, problems: Problems, exclusive: bool
) -> _Entry | None:
    data = as_map(value, path, problems, "a map of settings")
    if data is None:
        return None
    before = problems.count()
    check_keys(data, path, problems, IFACE)
    match = _match(key, data.get("match"), path, problems)

    def flag(name: str) -> bool:
        return bool(as_bool(data[name], (*path, name), problems, strings=True)) if name in data else False

    if "dhcp_args" in data:
        problems.warn(
            (*path, "dhcp_args"), "ignored: corral's DHCP client is built in and takes no arguments"
        )
    addresses: list[IPInterface] = []
    if "address" in data:
        address = as_ip_interface(data["address"], (*path, "address"), problems)
        if address is not None:
            addresses.append(address)
    for i, item in enumerate(as_list(data.get("addresses"), (*path, "addresses"), problems) or []):
        address = as_ip_interface(item, (*path, "addresses", i), problems)
        if address is not None and address not in addresses:
            addresses.append(address)
    gateway4, gateway6 = _gateways(data, path, problems)
    routes: list[Route] = []
    for i, item in enumerate(as_list(data.get("routes"), (*path, "routes"), problems) or []):
        route = as_route(item, (*path, "routes", i), problems)
        if route is not None:
            routes.append(route)
    mtu = as_mtu(data["mtu"], (*path, "mtu"), problems) if "mtu" in data else None
    is_bridge, master, master_kind = _membership(data, path, problems)
    vlans = _vlans(data["vlans"], (*path, "vlans"), problems) if data.get("vlans") is not None else ()
    bond_opts = as_map(data.get("bond_opts"), (*path, "bond_opts"), problems) if "bond_opts" in data else None
    dhcp6 = flag("dhcp6")
    rule = Interface(
        id=key,
        key=format_path(path),
        match=match or Match(name=key),
        order=order,
        master=master,
        dhcp4=flag("dhcp"),
        dhcp6=dhcp6,
        addresses=tuple(addresses),
        gateway4=gateway4,
        gateway6=gateway6,
        routes=tuple(routes),
        mtu=mtu,
        vlans=vlans,
        pre_up=as_hooks(data.get("pre_up"), (*path, "pre_up"), problems),
        post_up=as_hooks(data.get("post_up"), (*path, "post_up"), problems),
        exclusive=flag("exclusive") if "exclusive" in data else exclusive,
    )
    if is_bridge and match is not None and (match.exact_name is None or "match" in data):
        problems.error(
            (*path, "bridge"),
            "'bridge: true' makes the key a bridge that corral creates: the key "
            "must be its exact name (no wildcard, mac= or match:)",
        )
    if master is not None:
        configured = [
            k
            for k in ("dhcp", "dhcp6", "address", "addresses", "gateway", "gateway_ipv6", "routes")
            if data.get(k)
        ]
        if configured:
            problems.error(
                (*path, configured[0]),
                f"this interface joins {master} ({master_kind}: {master}); set addresses on {master} instead",
            )
        if match is not None and match.exact_name == master:
            problems.error((*path, master_kind or "bond"), f"{key} cannot join itself")
    if problems.count() > before:
        return None
    return _Entry(rule, path, is_bridge, master_kind, bond_opts)


def _gateways(
    data: Mapping[str, Any], path: KeyPath, problems: Problems
) -> tuple[IPv4Address | None, IPv6Address | None]:
    gateway4: IPv4Address | None = None
    gateway6: IPv6Address | None = None
    if "gateway" in data:
        gw: IPAddress | None = as_ip_address(data["gateway"], (*path, "gateway"), problems)
        if isinstance(gw, IPv4Address):
            gateway4 = gw
        elif isinstance(gw, IPv6Address):
            gateway6 = gw
    if "gateway_ipv6" in data:
        gw6 = as_ip_address(data["gateway_ipv6"], (*path, "gateway_ipv6"), problems, 6)
        if gw6 is not None and gateway6 is not None:
            problems.error((*path, "gateway_ipv6"), "an IPv6 gateway is already given in 'gateway'")
        elif isinstance(gw6, IPv6Address):
            gateway6 = gw6
    return gateway4, gateway6


def _membership(
    data: Mapping[str, Any], path: KeyPath, problems: Problems
) -> tuple[bool, str | None, str | None]:
    """(is a bridge itself, master name, "bridge" | "bond")."""
    is_bridge, master, kind = False, None, None
    bridge = data.get("bridge")
    if bridge is True or (isinstance(bridge, str) and bridge.lower() == "true"):
        is_bridge = True
    elif bridge in (None, False) or (isinstance(bridge, str) and bridge.lower() in ("false", "")):
        pass
    else:
        master = as_ifname(bridge, (*path, "bridge"), problems)
        kind = "bridge"
    if data.get("bond") is not None:
        if master is not None or is_bridge:
            problems.error(
                (*path, "bond"),
                "an interface is either a bridge, a port of a bridge or a member "
                "of a bond, not several of these",
            )
        else:
            master = as_ifname(data["bond"], (*path, "bond"), problems)
            kind = "bond"
    return is_bridge, master, kind


def _vlans(value: Any, path: KeyPath, problems: Problems) -> tuple[VlanDef, ...]:
    """``100``, ``"100,200:foobar"`` (RancherOS's syntax), or a list of such items."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        problems.error(path, f'expected VLANs such as "100,200:name", got {show(value)}')
        return ()
    out: list[VlanDef] = []
    for item in items:
        text = str(item).strip()
        ident, _, name = text.partition(":")
        vid = as_int(ident, path, problems, 1, 4094, strings=True, what=f" (in {show(text)}: a VLAN id)")
        if vid is None:
            continue
        if name and not valid_ifname(name):
            problems.error(path, f"{show(name)} (in {show(text)}) is not an interface name")
            continue
        if any(v.id == vid for v in out):
            problems.error(path, f"VLAN {vid} is given twice")
            continue
        out.append(VlanDef(vid, name or None))
    return tuple(out)


def _bond(opts: Mapping[str, Any] | None, path: KeyPath, problems: Problems) -> LinkSpec:
    mode = 0
    options: dict[str, OptionValue] = {}
    primary: str | None = None
    for name, value in (opts or {}).items():
        opt_path = (*path, "bond_opts", str(name))
        if name == "primary":
            primary = as_ifname(value, opt_path, problems)
            continue
        pair = bond_option(str(name), value, opt_path, problems)
        if pair is None:
            continue
        if pair[0] == "bond_mode":
            mode = int(pair[1])  # type: ignore[arg-type]
        else:
            options[pair[0]] = pair[1]
    return bond_spec(mode, options, primary)


def _resolve_masters(entries: list[_Entry], problems: Problems, exclusive: bool) -> tuple[Interface, ...]:
    """Give the bridges and bonds that members name a rule of their own (created when no entry has
    the master's exact name), with the bond options of the entry keyed by the bond's name."""
    masters: dict[str, tuple[str, KeyPath]] = {}
    for e in entries:
        if e.rule.master is None or e.master_kind is None:
            continue
        seen = masters.get(e.rule.master)
        if seen is not None and seen[0] != e.master_kind:
            problems.error(
                (*e.path, e.master_kind),
                f"{e.rule.master} is used as a {seen[0]} at "
                f"{format_path(seen[1])} and as a {e.master_kind} here",
            )
            continue
        masters.setdefault(e.rule.master, (e.master_kind, (*e.path, e.master_kind)))
    by_name = {
        e.rule.match.exact_name: e for e in entries if e.rule.match.exact_name and e.rule.match.mac is None
    }
    rules: list[Interface] = []
    for e in entries:
        rule = e.rule
        name = rule.match.exact_name
        wanted = masters.get(name) if name is not None and rule.match.mac is None else None
        if e.is_bridge and wanted is not None and wanted[0] == "bond":
            problems.error(
                (*e.path, "bridge"), f"{name} is a bridge here but {format_path(wanted[1])} makes it a bond"
            )
        elif e.is_bridge or (wanted is not None and wanted[0] == "bridge"):
            rule = replace(rule, kind="bridge", bridge=bridge_spec({}))
        elif wanted is not None:
            rule = replace(rule, kind="bond", bond=_bond(e.bond_opts, e.path, problems))
        if e.bond_opts is not None and rule.kind != "bond":
            problems.warn(
                (*e.path, "bond_opts"), f"ignored: no interface joins this bond (bond: {e.rule.id})"
            )
        rules.append(rule)
    order = len(entries)
    for name, (kind, path) in masters.items():
        if name in by_name:
            continue
        spec = bridge_spec({}) if kind == "bridge" else _bond(None, path, problems)
        rules.append(
            Interface(
                id=name,
                key=format_path(path),
                match=Match(name=name),
                order=order,
                kind="bridge" if kind == "bridge" else "bond",
                bridge=spec if kind == "bridge" else None,
                bond=spec if kind == "bond" else None,
                exclusive=exclusive,
            )
        )
        order += 1
    return tuple(rules)
