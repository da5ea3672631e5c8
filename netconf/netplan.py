"""netplan v2 (= cloud-init network-config v2) into the model.

The document is the top-level ``network:`` key of the config: ``{version: 2, ethernets, bonds, bridges,
vlans, dummy-devices}``. Each definition's key is its *id*. An ethernet without ``match`` applies to
the link named like its id; with ``match: {name, macaddress, driver}`` it applies to the links for
which every given field matches (``name`` and ``driver`` may be globs), and ``set-name`` renames the
link. Bonds, bridges, VLANs and dummy devices are created under their id (and deleted when they leave
the config); ``interfaces:`` of a bond or bridge and ``link:`` of a VLAN refer to other definitions
by id. A dummy device takes only the properties common to all device types (addresses, routes, mtu,
nameservers, dhcp4/6...), as in netplan.

``version`` is 2 when left out (netplan's default). Version 1 is cloud-init's network-config v1,
translated into version 2 first (``netconf.network_config``), its problems named on its own entries.

Accepted and ignored: ``renderer`` (corral renders everything itself), ``optional``,
``optional-addresses`` and ``critical`` (corral never waits for a link or an address at boot, and
keeps a lease's address over its own restarts), and the values of ``dhcp-identifier``, ``link-local``
and the DHCP overrides that are what corral does anyway. ``gateway4``/``gateway6`` are deprecated by
netplan but accepted. ``accept-ra``, ``ipv6-privacy`` and ``ipv6-mtu`` are the link's IPv6 settings;
``macaddress`` is the MAC of a link corral creates. Keys netplan has but corral does not implement
(``routing-policy``, offloads, ``macaddress`` on an ethernet, ...) are warnings that say what corral
does instead (the ``Ignored`` entries of the key tables); so are the sections ``wifis``, ``tunnels``,
``vrfs``, ``modems``, ``virtual-ethernets``, ``nm-devices`` and the global ``openvswitch``, which are
skipped while the rest of the document applies. ``dhcp6: true`` runs corral's DHCPv6 client
(``netconf.dhcp6``) and brings SLAAC up (``accept_ra`` 2). Unknown keys are errors naming the key path.

Also accepted: cloud-init's ``network: {config: disabled}``, which turns network configuration off.

This module reads the document and resolves the references between definitions (members, a bond's
``primary``, a VLAN's ``link``). The properties every definition has are read by
``netconf.netplan_common``, what only one kind has (and each section's key table) by
``netconf.netplan_devices``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from netconf.model import Interface, Kind, Match, as_ifname, is_glob, valid_ifname
from netconf.netplan_common import DHCP_OVERRIDES, STR, common_properties, ignored
from netconf.netplan_devices import DEFINITIONS, bond_parameters, bridge_parameters, parse_match, parse_vlan
from netconf.network_config import translate_with_origins
from supervisor.config.check import Keys, SchemaNode, as_list, as_map, as_str, check_keys, show
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath, format_path

SECTIONS = ("ethernets", "bonds", "bridges", "vlans", "dummy-devices")
SKIPPED = {
    "wifis": "Wi-Fi links",
    "tunnels": "tunnels",
    "vrfs": "VRFs",
    "modems": "modems",
    "virtual-ethernets": "virtual ethernets (veth pairs)",
    "nm-devices": "NetworkManager devices",
}
"""netplan's sections corral skips with a warning (naming a definition of them elsewhere is a warning
too: a bond or bridge is made without that member, a VLAN on it is skipped)."""

# The keys of each map, declared once: the parser checks against these tables, and schema.json's
# definitions of the top-level `network` are generated from them (python -m supervisor.gen_schema).
# The schema says structure only (types, names, plain ranges); the parser checks values and explains
# the keys corral does not implement.
TOP = Keys(
    "network_netplan",
    {
        "version": {"enum": [1, 2], "description": "2 when not given (netplan's default)"},
        "renderer": STR,
        "config": {
            "anyOf": [{"enum": ["disabled"]}, {"type": "array", "items": {"type": "object"}}],
            "description": "cloud-init: 'disabled' turns network configuration off; with version 1, "
            "the network-config v1 list (translated into version 2)",
        },
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
        **{
            section: ignored(f"{what} are not set up: this section is skipped, the rest is applied")
            for section, what in SKIPPED.items()
        },
        "openvswitch": ignored("corral runs no Open vSwitch; its global settings are not used"),
    },
    description="netplan v2 / cloud-init network-config v2; see docs/networking.md.",
)

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
    version = top.get("version", 2)  # netplan's default
    origins: dict[tuple[str, str], KeyPath] = {}
    if version == 1:  # cloud-init's network-config v1: translated, then read as version 2
        top, origins = translate_with_origins(top, path, problems)
    elif version != 2:
        problems.error((*path, "version"), f"{show(version)} is not a supported version (1 or 2)")
    mark = problems.mark()
    check_keys(top, path, problems, TOP)
    if "config" in top:
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
    skipped = {
        str(ident): section
        for section in SKIPPED
        for ident in (top[section] if isinstance(top.get(section), Mapping) else {})
    }
    ovs = top.get("openvswitch")
    ports = ovs.get("ports") if isinstance(ovs, Mapping) else None
    for pair in ports if isinstance(ports, list) else []:  # Open vSwitch patch ports: skipped too
        for port in pair if isinstance(pair, list) else []:
            skipped[str(port)] = "openvswitch.ports"
    for order, d in enumerate(defs.values()):
        d.rule = _definition(d, order, problems, exclusive)
    _link_members(defs, skipped, problems)
    if origins:
        problems.rekey(
            mark, {problems.key((*path, *where)): problems.key(v1) for where, v1 in origins.items()}
        )
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
            match = parse_match(data["match"], (*path, "match"), problems) or match
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
        **common_properties(data, path, problems),
    )
    if rule.macaddress is not None and kind == "link":
        problems.warn(
            (*path, "macaddress"),
            "not implemented on ethernets; the link keeps its own MAC address (corral sets the MAC of "
            "the bonds, bridges, VLANs and dummy devices it creates)",
        )
        rule = replace(rule, macaddress=None)
    if d.section == "bridges":
        rule = replace(
            rule, bridge=bridge_parameters(data.get("parameters"), (*path, "parameters"), problems)
        )
    elif d.section == "vlans":
        rule = parse_vlan(rule, data, path, problems)
    if problems.count() > before:
        return None
    return rule


def _link_name(d: _Def) -> str | None:
    """The link name a definition ends up with, when it is fixed."""
    if d.rule is None:
        return None
    return d.rule.set_name or d.rule.match.exact_name


def _link_members(defs: dict[str, _Def], skipped: Mapping[str, str], problems: Problems) -> None:
    """Resolve ``interfaces:`` of bonds and bridges (members get ``master``), bond ``primary`` and VLAN
    ``link:`` references."""
    member_of: dict[str, str] = {}
    for d in defs.values():
        if d.section in ("bonds", "bridges"):
            members_path = (*d.path, "interfaces")
            for i, member in enumerate(as_list(d.data.get("interfaces"), members_path, problems) or []):
                mpath = (*members_path, i)
                target = defs.get(member) if isinstance(member, str) else None
                if target is None and member in skipped:
                    problems.warn(
                        mpath, f"{member!r} is in {skipped[member]}, which is skipped: not made a member"
                    )
                elif target is None:
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
                d.rule,
                bond=bond_parameters(d.data.get("parameters"), (*d.path, "parameters"), problems, primary),
            )
        if d.section == "vlans" and d.rule is not None and d.rule.vlan is not None:
            link = d.rule.vlan.link
            parent = defs.get(link)
            if parent is None and link in skipped:
                problems.warn(
                    (*d.path, "link"),
                    f"{link!r} is in {skipped[link]}, which is skipped: this VLAN is skipped too",
                )
                d.rule = None
            elif parent is None or parent.id == d.id:
                problems.error(
                    (*d.path, "link"),
                    f"{link!r} is not defined "
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
