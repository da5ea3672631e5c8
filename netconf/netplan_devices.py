"""netplan's sections, kind by kind: each definition's key table (``DEFINITIONS``) and what only one
kind has: an ethernet's ``match``, a bond's and a bridge's ``parameters``, a VLAN's ``id`` and ``link``.

The properties they all have are ``netconf.netplan_common``'s; references between definitions (bond
and bridge members, a bond's ``primary``, a VLAN's ``link``) are resolved by ``netconf.netplan``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from netconf.bond import bond_option
from netconf.model import (
    Interface,
    LinkSpec,
    Match,
    OptionValue,
    Vlan,
    as_duration_ms,
    as_mac,
    bond_spec,
    bridge_spec,
)
from netconf.netplan_common import BOOL, COMMON, HINTS, STR, STRS, TIME, ignored
from supervisor.config.check import Keys, as_bool, as_int, as_map, as_str, check_keys, integer
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath

MATCH = Keys(
    "network_netplan_match",
    {"name": STR, "macaddress": STR, "driver": {"type": ["string", "array"], "items": STR}},
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
    "ms": TIME,
    "s": TIME,
    "bool": BOOL,
    "list": STRS,
    "ref": STR,
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
        **{k: TIME for k in BRIDGE_TIMES},
        "priority": integer(*BRIDGE_PRIORITY),
        "stp": BOOL,
        **{
            k: ignored("the bridge's ports keep the kernel's defaults")
            for k in ("port-priority", "path-cost")
        },
        **{
            k: ignored("the bridge does no VLAN filtering: it forwards every VLAN")
            for k in ("vlan-filtering", "vlan-default-pvid", "vlans", "port-vlans")
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
            "set-name": STR,
            "wakeonlan": ignored("Wake-on-LAN stays as the driver set it"),
            "emit-lldp": ignored("corral sends no LLDP"),
            **{
                k: ignored("offloads stay as the driver set them")
                for k in (
                    "receive-checksum-offload",
                    "transmit-checksum-offload",
                    "tcp-segmentation-offload",
                    "tcp6-segmentation-offload",
                    "generic-segmentation-offload",
                    "generic-receive-offload",
                    "large-receive-offload",
                )
            },
            "infiniband-mode": ignored("the InfiniBand link keeps the driver's mode"),
            "auth": ignored("the link is configured without 802.1X authentication"),
            **{
                k: ignored("no SR-IOV virtual functions are set up; the link is configured as it is")
                for k in (
                    "link",
                    "virtual-function-count",
                    "embedded-switch-mode",
                    "delay-virtual-functions-rebind",
                )
            },
        },
        hints=HINTS,
        nullable=True,
    ),
    "bonds": Keys(
        "network_netplan_bond",
        {**COMMON, "interfaces": STRS, "parameters": BOND_PARAMETERS.schema()},
        hints=HINTS,
        nullable=True,
    ),
    "bridges": Keys(
        "network_netplan_bridge",
        {**COMMON, "interfaces": STRS, "parameters": BRIDGE_PARAMETERS.schema()},
        hints=HINTS,
        nullable=True,
    ),
    "vlans": Keys(
        "network_netplan_vlan",
        {**COMMON, "id": integer(*VLAN_ID), "link": STR},
        hints=HINTS,
        nullable=True,
    ),
    # netplan: a dummy device has only the properties of all device types
    "dummy-devices": Keys("network_netplan_dummy", COMMON, hints=HINTS, nullable=True),
}
"""Each section's definitions: their keys."""


def parse_match(value: Any, path: KeyPath, problems: Problems) -> Match | None:
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


def bridge_parameters(value: Any, path: KeyPath, problems: Problems) -> LinkSpec:
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


def bond_parameters(value: Any, path: KeyPath, problems: Problems, primary: str | None) -> LinkSpec:
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


def parse_vlan(rule: Interface, data: Mapping[str, Any], path: KeyPath, problems: Problems) -> Interface:
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
