"""cloud-init's network-config, version 1 or 2, with or without the ``network:`` wrapper, as the
netplan v2 document corral reads (``netconf.netplan``).

The one entry point, for datasources (NoCloud's ``network-config``, ConfigDrive) and for the config's
own ``network:`` key::

    from netconf.network_config import to_netplan
    netplan, problems = to_netplan(yaml_document, source="/media/cidata/network-config")
    if netplan is not None and not problems.errors:
        config["network"] = netplan       # the netplan v2 mapping: {version: 2, ethernets: ...}
    # problems.errors / problems.warnings: ConfigErrors naming the file and the key (v1: config[3].name)

``doc`` is the parsed YAML (any value: a non-map is an error). What it accepts:

- version 2 (netplan), with or without the ``network:`` wrapper, ``version`` left out meaning 2: the
  document is returned unwrapped, as it is (its keys are checked when the config's ``network:`` is
  parsed: ``netconf.parse.parse_config``);
- ``{config: disabled}``: returned as is (network configuration off);
- version 1: ``config`` is a list of ``physical``, ``bond``, ``bridge``, ``vlan``, ``nameserver`` and
  ``route`` entries, translated as cloud-init's netplan renderer does: a ``physical`` with
  ``mac_address`` is an ethernet matched by that MAC and renamed to ``name``; ``subnets`` of type
  ``dhcp``/``dhcp4`` turn on dhcp4, ``dhcp6`` and the ``ipv6_dhcpv6-*`` types dhcp6, ``ipv6_slaac``
  accept-ra, ``static``/``static6`` give ``addresses`` (``netmask``, ``prefix`` or a CIDR; 24 or 64
  bits when none), a default route via ``gateway``, ``routes`` and ``dns_*``; ``metric`` is the
  routes' metric (DHCP's ``route-metric``); bond ``params`` (``bond-mode`` or ``mode``...) become
  netplan's ``parameters``, bridge ``params`` (``bridge_stp``, ``bridge_fd``...) too; a
  ``nameserver`` with ``interface`` goes to that definition, without it to every definition with
  static addresses and no name servers of its own (cloud-init's rule); a ``route`` goes to the
  definition whose static address's network holds its gateway.

The return value is ``(netplan, problems)``: ``netplan`` is a new mapping (the input is not changed),
or None when the document cannot be read at all (not a map, an unknown version). ``problems`` holds
what the translation found, on the input's key paths; keys v1 has and corral does not implement
(``bridge_maxwait``, ``broadcast``, a ``control`` other than auto...) are warnings.

``netconf.netplan.parse_netplan`` calls ``translate`` for a version 1 document under the config's
``network:`` key (cloud-init accepts ``network: {version: 1, config: [...]}`` in a cloud-config)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from netconf.model import as_mac
from supervisor.config.check import Ignored, Keys, as_list, as_map, as_str, check_keys, describe, show
from supervisor.config.errors import Problems, Source
from supervisor.config.keypath import KeyPath

V1_TYPES = ("physical", "bond", "bridge", "vlan", "nameserver", "route")
_ANY: dict[str, Any] = {}
_DEVICE = {"type": _ANY, "name": _ANY, "mtu": _ANY, "subnets": _ANY, "accept-ra": _ANY}
V1_KEYS: dict[str, Keys] = {
    "physical": Keys("network_v1_physical", {**_DEVICE, "mac_address": _ANY, "keep_configuration": _ANY}),
    "bond": Keys(
        "network_v1_bond", {**_DEVICE, "mac_address": _ANY, "bond_interfaces": _ANY, "params": _ANY}
    ),
    "bridge": Keys(
        "network_v1_bridge", {**_DEVICE, "mac_address": _ANY, "bridge_interfaces": _ANY, "params": _ANY}
    ),
    "vlan": Keys("network_v1_vlan", {**_DEVICE, "mac_address": _ANY, "vlan_id": _ANY, "vlan_link": _ANY}),
    "nameserver": Keys(
        "network_v1_nameserver", {"type": _ANY, "address": _ANY, "search": _ANY, "interface": _ANY}
    ),
    "route": Keys(
        "network_v1_route",
        {
            "type": _ANY,
            "destination": _ANY,
            "network": _ANY,
            "netmask": _ANY,
            "prefix": _ANY,
            "gateway": _ANY,
            "metric": _ANY,
        },
    ),
}
"""The keys of each v1 ``config`` entry, by type (cloud-init's schema-network-config-v1.json)."""
SUBNET = Keys(
    "network_v1_subnet",
    {
        "type": _ANY,
        "address": _ANY,
        "netmask": _ANY,
        "prefix": _ANY,
        "gateway": _ANY,
        "dns_nameservers": _ANY,
        "dns_search": _ANY,
        "routes": _ANY,
        "metric": _ANY,
        "mtu": _ANY,
        "control": _ANY,
        "ipv4": _ANY,  # what the subnet is (OpenStack's converter writes them): nothing to do
        "ipv6": _ANY,
        "broadcast": Ignored("not implemented; the address is added with the kernel's broadcast"),
    },
)
SUBNET_ROUTE = Keys(
    "network_v1_subnet_route",
    {"type": _ANY, "destination": _ANY, "network": _ANY, "netmask": _ANY, "prefix": _ANY, "gateway": _ANY,
     "metric": _ANY},
)
ROUTE_TYPE = "route"
"""A subnet route's ``type``: cloud-init's schema allows this one value; any other is a warning."""
_DHCP4 = ("dhcp", "dhcp4")
_DHCP6 = ("dhcp6", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless")
SUBNET_TYPES = (*_DHCP4, *_DHCP6, "ipv6_slaac", "static", "static6", "manual")

BOND_V1_TO_V2 = {
    "ad-select": "ad-select",
    "all-slaves-active": "all-slaves-active",
    "arp-all-targets": "arp-all-targets",
    "arp-interval": "arp-interval",
    "arp-ip-target": "arp-ip-targets",
    "arp-validate": "arp-validate",
    "downdelay": "down-delay",
    "fail-over-mac": "fail-over-mac-policy",
    "lacp-rate": "lacp-rate",
    "learn-packet-interval": "learn-packet-interval",
    "lp-interval": "learn-packet-interval",
    "miimon": "mii-monitor-interval",
    "min-links": "min-links",
    "mode": "mode",
    "num-grat-arp": "gratuitous-arp",
    "packets-per-slave": "packets-per-slave",
    "primary": "primary",
    "primary-reselect": "primary-reselect-policy",
    "updelay": "up-delay",
    "xmit-hash-policy": "transmit-hash-policy",
    "resend-igmp": "resend-igmp",
}
"""v1 bond params (``bond-`` or ``bond_`` prefix optional, ``_`` or ``-``) -> netplan's ``parameters``."""
BRIDGE_V1_TO_V2 = {
    "bridge_ageing": "ageing-time",
    "bridge_bridgeprio": "priority",
    "bridge_fd": "forward-delay",
    "bridge_hello": "hello-time",
    "bridge_maxage": "max-age",
    "bridge_stp": "stp",
    "bridge_pathcost": "path-cost",
    "bridge_portprio": "port-priority",
}
BRIDGE_V1_IGNORED = {
    "bridge_maxwait": "corral waits for no port",
    "bridge_waitport": "corral waits for no port",
    "bridge_gcint": "the kernel's default is used",
    "bridge_ports": "the ports are 'bridge_interfaces'",
}
_SECTION = {"physical": "ethernets", "bond": "bonds", "bridge": "bridges", "vlan": "vlans"}


def to_netplan(doc: Any, source: Source = "network-config") -> tuple[dict[str, Any] | None, Problems]:
    """cloud-init network-config (v1 or v2, wrapped in ``network:`` or not) -> the netplan v2 mapping
    to put under the config's ``network:`` key, and the problems found (see the module's doc)."""
    problems = Problems(source)
    path: KeyPath = ()
    if isinstance(doc, Mapping) and "network" in doc and set(doc) <= {"network"}:
        doc, path = doc["network"], ("network",)
    data = as_map(doc, path, problems, "a network-config document {version: 1 or 2, ...}")
    if data is None:
        return None, problems
    version = data.get("version", 2)
    if version == 2 or data.get("config") == "disabled":
        return dict(data), problems
    if version != 1:
        problems.error((*path, "version"), f"{show(version)} is not a network-config version (1 or 2)")
        return None, problems
    return translate(data, path, problems), problems


def translate(data: Mapping[str, Any], path: KeyPath, problems: Problems) -> dict[str, Any]:
    """A version 1 document (``{version: 1, config: [...]}`` at ``path``) -> netplan v2; problems on
    the v1 key paths. ``origins`` of the result are not kept: see ``translate_with_origins``."""
    return translate_with_origins(data, path, problems)[0]


def translate_with_origins(
    data: Mapping[str, Any], path: KeyPath, problems: Problems
) -> tuple[dict[str, Any], dict[tuple[str, str], KeyPath]]:
    """``translate``, and where each netplan definition came from: (section, id) -> the v1 entry's
    path, so that what the netplan parser says about a definition can name the entry."""
    check_keys(data, path, problems, ("version", "config"))
    entries = as_list(data.get("config"), (*path, "config"), problems, "a list of network-config entries")
    out: dict[str, Any] = {"version": 2}
    origins: dict[tuple[str, str], KeyPath] = {}
    defs: dict[str, dict[str, Any]] = {}
    nameservers: list[tuple[KeyPath, Mapping[str, Any]]] = []
    routes: list[tuple[KeyPath, Mapping[str, Any]]] = []
    for i, entry in enumerate(entries or []):
        epath = (*path, "config", i)
        item = as_map(entry, epath, problems, "a network-config entry {type: ..., ...}")
        if item is None:
            continue
        kind = item.get("type")
        if kind not in V1_TYPES:
            problems.error(
                (*epath, "type"),
                f"{show(kind)} is not a network-config v1 type (one of: {', '.join(V1_TYPES)})"
                if "type" in item
                else f"required: the entry's type (one of: {', '.join(V1_TYPES)})",
            )
            continue
        check_keys(item, epath, problems, V1_KEYS[kind])
        if kind == "nameserver":
            nameservers.append((epath, item))
            continue
        if kind == "route":
            routes.append((epath, item))
            continue
        name = as_str(item.get("name"), (*epath, "name"), problems) if "name" in item else None
        if name is None:
            if "name" not in item:
                problems.error((*epath, "name"), "required: the interface's name")
            continue
        if name in defs:
            problems.error((*epath, "name"), f"{name!r} is defined twice")
            continue
        section = _SECTION[kind]
        definition = _device(kind, name, item, epath, problems)
        defs[name] = definition
        origins[(section, name)] = epath
        out.setdefault(section, {})[name] = definition
    global_dns: list[tuple[KeyPath, Mapping[str, Any]]] = []
    for epath, item in nameservers:
        if "interface" in item:
            _nameserver(item, epath, defs, problems)
        else:
            global_dns.append((epath, item))
    if global_dns:  # cloud-init: all of them, on every definition with static addresses and no own
        targets = [d for d in defs.values() if d.get("addresses") and "nameservers" not in d]
        for epath, item in global_dns:
            _nameserver(item, epath, defs, problems, targets)
    for epath, item in routes:
        _global_route(item, epath, defs, problems)
    return out, origins


def _device(
    kind: str, name: str, item: Mapping[str, Any], path: KeyPath, problems: Problems
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mac = None
    if "mac_address" in item:
        mac = as_mac(item["mac_address"], (*path, "mac_address"), problems)
    if kind == "physical":
        if mac is not None:
            out["match"] = {"macaddress": mac}
            out["set-name"] = name
        if "keep_configuration" in item:
            out["critical"] = item["keep_configuration"]
    elif mac is not None:
        out["macaddress"] = mac
    if kind == "bond":
        out["interfaces"] = item.get("bond_interfaces") or []
        params = _bond_params(item.get("params"), (*path, "params"), problems)
        if params:
            out["parameters"] = params
    elif kind == "bridge":
        out["interfaces"] = item.get("bridge_interfaces") or []
        params = _bridge_params(item.get("params"), (*path, "params"), problems)
        if "macaddress" in params:
            out["macaddress"] = params.pop("macaddress")
        if params:
            out["parameters"] = params
    elif kind == "vlan":
        for v1, v2 in (("vlan_id", "id"), ("vlan_link", "link")):
            if v1 not in item:
                problems.error(
                    (*path, v1), f"required: the VLAN's {'id' if v2 == 'id' else 'parent link name'}"
                )
            else:
                out[v2] = item[v1]
    if item.get("mtu") is not None:
        out["mtu"] = item["mtu"]
    if item.get("accept-ra") is not None:
        out["accept-ra"] = item["accept-ra"]
    for j, subnet in enumerate(as_list(item.get("subnets"), (*path, "subnets"), problems) or []):
        _subnet(subnet, (*path, "subnets", j), out, problems)
    return out


def _subnet(value: Any, path: KeyPath, out: dict[str, Any], problems: Problems) -> None:
    subnet = as_map(value, path, problems, "a subnet {type: ..., ...}")
    if subnet is None:
        return
    check_keys(subnet, path, problems, SUBNET)
    kind = subnet.get("type")
    if kind not in SUBNET_TYPES:
        problems.error(
            (*path, "type"), f"{show(kind)} is not a subnet type (one of: {', '.join(SUBNET_TYPES)})"
        )
        return
    control = subnet.get("control", "auto")
    if control != "auto":
        problems.warn(
            (*path, "control"), "not implemented; corral configures the subnet at boot (as 'auto')"
        )
    metric = subnet.get("metric")
    if kind in _DHCP4 or kind in _DHCP6:
        family = "dhcp4" if kind in _DHCP4 else "dhcp6"
        out[family] = True
        if metric is not None:
            out.setdefault(f"{family}-overrides", {})["route-metric"] = metric
        return
    if kind == "ipv6_slaac":
        out["accept-ra"] = True
        return
    if kind == "manual":
        return
    address = _network(subnet, ("address",), path, problems, host=True)
    if address is None:
        return
    out.setdefault("addresses", []).append(str(address))
    if subnet.get("gateway"):
        route: dict[str, Any] = {"to": "default", "via": str(subnet["gateway"])}
        try:
            if ipaddress.ip_address(str(subnet["gateway"]).strip()) not in address.network:
                route["on-link"] = True  # cloud-init's renderer does the same
        except ValueError:
            pass  # the netplan parser names the key and the bad address
        if metric is not None:
            route["metric"] = metric
        out.setdefault("routes", []).append(route)
    if subnet.get("mtu") is not None:
        out["ipv6-mtu" if address.version == 6 else "mtu"] = subnet["mtu"]
    for key, v2 in (("dns_nameservers", "addresses"), ("dns_search", "search")):
        values = subnet.get(key)
        if isinstance(values, str):
            values = values.split()
        if values:
            listed = as_list(values, (*path, key), problems) or []
            ns = out.setdefault("nameservers", {})
            ns[v2] = [*ns.get(v2, []), *listed]
    for j, raw in enumerate(as_list(subnet.get("routes"), (*path, "routes"), problems) or []):
        rpath = (*path, "routes", j)
        r = as_map(raw, rpath, problems, "a route {destination, netmask, gateway, metric}")
        if r is None:
            continue
        check_keys(r, rpath, problems, SUBNET_ROUTE)
        if r.get("type", ROUTE_TYPE) != ROUTE_TYPE:
            problems.warn((*rpath, "type"), f"{show(r['type'])} is not a route type corral knows "
                          f"(cloud-init's is {ROUTE_TYPE!r}); the route is added as a plain route")
        v2_route = _route(r, rpath, problems, metric)
        if v2_route is not None:
            out.setdefault("routes", []).append(v2_route)


def _network(
    data: Mapping[str, Any], keys: tuple[str, ...], path: KeyPath, problems: Problems, host: bool = False
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """An address or network from v1's ``address``/``network``/``destination`` (a CIDR, or with
    ``netmask`` (dotted or a length) or ``prefix``; 24 or 64 bits when none, as cloud-init)."""
    key = next((k for k in keys if data.get(k) not in (None, "")), None)
    if key is None:
        problems.error((*path, keys[0]), f"required: {' or '.join(keys)}")
        return None
    raw = data[key]
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else None
    if text is None:
        problems.error((*path, key), f"expected an IP address, got {describe(raw)}")
        return None
    if "/" not in text:
        length = data.get("prefix", data.get("netmask"))
        if length is None:
            length = 64 if ":" in text else 24
        text = f"{text}/{length}"
    try:
        value = ipaddress.ip_interface(text)
    except ValueError as exc:
        problems.error((*path, key), f"{show(raw)} is not an IP address with a netmask or prefix: {exc}")
        return None
    return value if host else ipaddress.ip_interface(value.network)


def _route(
    r: Mapping[str, Any], path: KeyPath, problems: Problems, metric: Any = None
) -> dict[str, Any] | None:
    to = _network(r, ("destination", "network"), path, problems)
    if to is None:
        return None
    route: dict[str, Any] = {"to": str(to.network)}
    if r.get("gateway") not in (None, ""):
        route["via"] = str(r["gateway"])
    if r.get("metric") is not None:
        route["metric"] = r["metric"]
    elif metric is not None:
        route["metric"] = metric
    return route


def _bond_params(value: Any, path: KeyPath, problems: Problems) -> dict[str, Any]:
    params = as_map(value, path, problems) or {}
    out: dict[str, Any] = {}
    for key, item in params.items():
        name = str(key).replace("_", "-")
        name = name[len("bond-") :] if name.startswith("bond-") else name
        v2 = BOND_V1_TO_V2.get(name)
        if v2 is None:
            problems.warn((*path, str(key)), "not implemented; the bond is made without this parameter")
        else:
            out[v2] = item
    return out


def _bridge_params(value: Any, path: KeyPath, problems: Problems) -> dict[str, Any]:
    params = as_map(value, path, problems) or {}
    out: dict[str, Any] = {}
    for key, item in params.items():
        kpath = (*path, str(key))
        if key in BRIDGE_V1_IGNORED:
            problems.warn(kpath, f"not implemented; {BRIDGE_V1_IGNORED[key]}")
        elif key == "bridge_hw":
            out["macaddress"] = item  # not a parameter in netplan: _device moves it up
        elif key not in BRIDGE_V1_TO_V2:
            problems.warn(kpath, "unknown bridge parameter; ignored")
        elif key == "bridge_stp":
            out["stp"] = (
                item if isinstance(item, bool) else str(item).strip().lower() in ("on", "yes", "true", "1")
            )
        elif key in ("bridge_pathcost", "bridge_portprio"):
            ports: dict[str, Any] = {}
            for entry in item if isinstance(item, list) else [item]:
                port, _, number = str(entry).partition(" ")
                ports[port] = number.strip()
            out[BRIDGE_V1_TO_V2[key]] = ports
        else:
            out[BRIDGE_V1_TO_V2[key]] = item
    return out


def _nameserver(
    item: Mapping[str, Any],
    path: KeyPath,
    defs: Mapping[str, dict[str, Any]],
    problems: Problems,
    targets: list[dict[str, Any]] | None = None,
) -> None:
    addresses = item.get("address")
    if isinstance(addresses, str):
        addresses = addresses.replace(",", " ").split()
    search = item.get("search")
    if isinstance(search, str):
        search = search.split()
    addresses = as_list(addresses, (*path, "address"), problems) or []
    search = as_list(search, (*path, "search"), problems) or []
    if "interface" in item:
        target = defs.get(item["interface"]) if isinstance(item["interface"], str) else None
        if target is None:
            problems.error(
                (*path, "interface"), f"{show(item['interface'])} is not an interface of this config"
            )
            return
        targets = [target]
    elif not targets:
        problems.warn(
            path,
            "not applied: no interface has static addresses without name servers of its own "
            "(cloud-init puts global name servers there); interfaces on DHCP use the lease's",
        )
        return
    for target in targets:
        ns = target.setdefault("nameservers", {})
        if addresses:
            ns["addresses"] = [*ns.get("addresses", []), *addresses]
        if search:
            ns["search"] = [*ns.get("search", []), *search]


def _global_route(
    item: Mapping[str, Any], path: KeyPath, defs: Mapping[str, dict[str, Any]], problems: Problems
) -> None:
    route = _route(item, path, problems)
    if route is None:
        return
    via = route.get("via")
    try:
        gateway = ipaddress.ip_address(str(via).strip()) if via is not None else None
    except ValueError:
        problems.error((*path, "gateway"), f"{show(via)} is not an IP address")
        return
    for definition in defs.values():
        for address in definition.get("addresses", []):
            if gateway is not None and gateway in ipaddress.ip_interface(address).network:
                definition.setdefault("routes", []).append(route)
                return
    problems.warn(
        path,
        "not applied: no interface has a static address on the gateway's network "
        "(give the route in that interface's subnet instead)",
    )
