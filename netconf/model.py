"""The desired network state: one typed model that both input formats parse into.

``NetworkConfig`` holds *rules* (``Interface``): each says which links it applies to (``Match``) and
what those links should look like. Virtual links (bridges, bonds, VLANs, dummies) are rules too,
matched by their exact name, and corral creates them. The RancherOS parser (``netconf.rancher``) and
the netplan v2 parser (``netconf.netplan``) both produce this model; ``netconf.parse.parse_config``
picks between them.

The second half of this module holds what both parsers share: field parsers for links, routes, hooks
and bond options, in the style of core's typed helpers (``supervisor.config.check``: each reports into
one ``Problems`` collector, naming the key), and the ``Keys`` table of a route. Nothing here does I/O."""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any, Literal, TypeAlias, cast

from supervisor.config.check import (
    Ignored,
    Keys,
    SchemaNode,
    as_bool,
    as_enum,
    as_int,
    as_ip_address,
    as_list,
    as_map,
    as_str,
    check_keys,
    describe,
    integer,
    show,
)
from supervisor.config.errors import ConfigError, Problems
from supervisor.config.keypath import KeyPath

IPInterface: TypeAlias = IPv4Interface | IPv6Interface
IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network
Argv: TypeAlias = tuple[str, ...]
OptionValue: TypeAlias = int | str | tuple[str, ...]
Kind: TypeAlias = Literal["link", "bridge", "bond", "vlan", "dummy"]
VirtualKind: TypeAlias = Literal["bridge", "bond", "vlan", "dummy"]
"""The kinds of link corral creates (``IFLA_INFO_KIND``)."""
Scope: TypeAlias = Literal["global", "link", "host"]

MAIN_TABLE = 254
LOCAL_TABLE = 255
DEFAULT_METRIC = {4: 0, 6: 1024}
"""The kernel's metric for a route added without one (IPv6 also turns 0 into 1024)."""

_IFNAME = re.compile(r"[^\s/:]{1,15}")
_GLOB_CHARS = frozenset("*?[")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}|[0-9a-f]{2}(:[0-9a-f]{2}){19}")


# -- the model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which links a rule applies to. Every field given must match (netplan semantics).

    ``name``, ``mac`` and each of ``drivers`` are exact values or shell-style globs (``*``, ``?``,
    ``[...]``). ``mac`` is lower case. Several ``drivers`` mean any of them."""

    name: str | None = None
    mac: str | None = None
    drivers: tuple[str, ...] = ()

    @property
    def exact_name(self) -> str | None:
        """The name, when it is a literal (no glob characters)."""
        return self.name if self.name is not None and not is_glob(self.name) else None


@dataclass(frozen=True)
class Route:
    """A route through the rule's link. ``metric``/``table``/``scope`` left as None take the kernel's
    defaults; ``canonical()`` fills them in, as the kernel reports them back."""

    to: IPNetwork
    via: IPAddress | None = None
    metric: int | None = None
    table: int | None = None
    on_link: bool = False
    source: IPAddress | None = None
    scope: Scope | None = None

    @property
    def family(self) -> int:
        return self.to.version

    def canonical(self) -> Route:
        metric = DEFAULT_METRIC[self.family] if self.metric is None else self.metric
        if self.family == 6 and metric == 0:
            metric = DEFAULT_METRIC[6]
        scope: Scope = self.scope or ("global" if self.via is not None else "link")
        return replace(
            self, metric=metric, table=MAIN_TABLE if self.table is None else self.table, scope=scope
        )


@dataclass(frozen=True)
class DhcpOptions:
    """How corral's DHCP client treats what a lease offers."""

    route_metric: int | None = None
    use_dns: bool = True
    use_routes: bool = True


@dataclass(frozen=True)
class LinkSpec:
    """How to create a virtual link: pyroute2 ``IPRoute.link("add", ifname=NAME, kind=kind, **options)``.

    ``options`` are pyroute2 keyword arguments with their kernel values (``bond_mode=4``,
    ``br_forward_delay=1500`` in centiseconds, ``vlan_id=100``). ``refs`` are keyword arguments whose
    value is another link's *name*, resolved to its ifindex when applied (``link`` of a VLAN,
    ``bond_primary``); a ref whose link does not exist is left out."""

    kind: VirtualKind
    options: tuple[tuple[str, OptionValue], ...] = ()
    refs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VlanDef:
    """A VLAN to create on each link the rule matches (RancherOS ``vlans: "100,200:name"``). Without a
    name it is called ``<link>.<id>``."""

    id: int
    name: str | None = None


@dataclass(frozen=True)
class Vlan:
    """The VLAN a ``kind == "vlan"`` rule creates: ``id`` on the link that the rule with id ``link``
    matched (netplan ``vlans: {name: {id, link}}``)."""

    id: int
    link: str


@dataclass(frozen=True)
class Interface:
    """One rule: which links (``match``) and what they should look like.

    ``kind`` is ``link`` for a rule applied to links that exist (NICs), or the kind of virtual link
    corral creates under ``match.name``. ``master`` names the bridge or bond the matched links join.
    ``macaddress``: the MAC a virtual link is created with (``with_address``). ``ipv6_conf``: the
    link's IPv6 settings (``/proc/sys/net/ipv6/conf/LINK/NAME``, one of ``IPV6_CONF``) and their values.
    ``exclusive``: on the links this rule matches, addresses and routes that others added (and that the
    rule does not want) are removed; by default they are left alone and only what corral added itself
    is removed when the config stops wanting it."""

    id: str
    key: str
    match: Match
    order: int = 0
    kind: Kind = "link"
    set_name: str | None = None
    bond: LinkSpec | None = None
    bridge: LinkSpec | None = None
    vlan: Vlan | None = None
    vlans: tuple[VlanDef, ...] = ()
    master: str | None = None
    dhcp4: bool = False
    dhcp6: bool = False
    dhcp4_options: DhcpOptions = DhcpOptions()
    dhcp6_options: DhcpOptions = DhcpOptions()
    addresses: tuple[IPInterface, ...] = ()
    gateway4: IPv4Address | None = None
    gateway6: IPv6Address | None = None
    routes: tuple[Route, ...] = ()
    mtu: int | None = None
    macaddress: str | None = None
    ipv6_conf: tuple[tuple[str, int], ...] = ()
    nameservers: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    pre_up: tuple[Argv, ...] = ()
    post_up: tuple[Argv, ...] = ()
    exclusive: bool = False

    def all_routes(self) -> tuple[Route, ...]:
        """``routes`` plus the default routes ``gateway4``/``gateway6`` stand for."""
        extra: list[Route] = []
        if self.gateway4 is not None:
            extra.append(Route(IPv4Network("0.0.0.0/0"), self.gateway4))
        if self.gateway6 is not None:
            extra.append(Route(IPv6Network("::/0"), self.gateway6))
        return (*self.routes, *extra)

    def dhcp_options(self, family: int) -> DhcpOptions:
        return self.dhcp4_options if family == 4 else self.dhcp6_options

    def wants_dhcp(self, family: int) -> bool:
        return self.dhcp4 if family == 4 else self.dhcp6


@dataclass(frozen=True)
class Dns:
    nameservers: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.nameservers and not self.search


Format: TypeAlias = Literal["default", "rancher", "netplan", "disabled"]


@dataclass(frozen=True)
class NetworkConfig:
    """The whole desired network state. ``pre_cmds``/``post_cmds`` run around every plan that changes
    something; ``dhcp_timeout`` (seconds) is for the DHCP client."""

    interfaces: tuple[Interface, ...] = ()
    dns: Dns = Dns()
    pre_cmds: tuple[Argv, ...] = ()
    post_cmds: tuple[Argv, ...] = ()
    dhcp_timeout: int | None = None
    format: Format = "default"

    def rule(self, rule_id: str) -> Interface | None:
        return next((r for r in self.interfaces if r.id == rule_id), None)


@dataclass(frozen=True)
class Parsed:
    """What ``parse_config`` found. ``config`` is None when there are errors."""

    config: NetworkConfig | None
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[ConfigError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


IPV6_CONF = ("accept_ra", "use_tempaddr", "mtu", "addr_gen_mode")
"""The per-link IPv6 settings corral sets (netplan's ``accept-ra``, ``ipv6-privacy``, ``ipv6-mtu``,
``link-local``): each is ``/proc/sys/net/ipv6/conf/LINK/NAME`` in the link's namespace, and reported
by netlink (``IFLA_AF_SPEC`` / ``AF_INET6`` / ``IFLA_INET6_CONF``, ``IFLA_INET6_ADDR_GEN_MODE``)."""
ADDR_GEN_MODE_NONE = 1
"""``addr_gen_mode`` 1: the kernel makes no link-local address when the link comes up."""
IPV6_MTU = (1280, 65535)
"""IPv6's minimum MTU, and the largest a link takes."""

DEFAULT_PATTERNS = ("eth*", "en*")
"""When the config names no interfaces, every link called ``eth*`` or ``en*`` runs DHCPv4 (RancherOS
did the same for ``eth*``)."""


def default_rules(exclusive: bool = False) -> tuple[Interface, ...]:
    return tuple(
        Interface(id=p, key="(default)", match=Match(name=p), order=i, dhcp4=True, exclusive=exclusive)
        for i, p in enumerate(DEFAULT_PATTERNS)
    )


# -- field parsers ---------------------------------------------------------------------------------------
# The generic ones (maps, lists, strings, numbers, booleans, addresses, key tables) are core's
# (supervisor.config.check); these know about links, routes and hooks.


def is_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def valid_ifname(name: str) -> bool:
    return bool(_IFNAME.fullmatch(name)) and name not in (".", "..")


def as_ifname(value: Any, path: KeyPath, problems: Problems) -> str | None:
    text = as_str(value, path, problems)
    if text is None:
        return None
    if not valid_ifname(text) or is_glob(text):
        problems.error(
            path,
            f"{show(text)} is not an interface name (1 to 15 characters, no spaces, '/', ':' or wildcards)",
        )
        return None
    return text


def as_mac(value: Any, path: KeyPath, problems: Problems, allow_glob: bool = False) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 59:
        problems.error(
            path,
            f"expected a string, got the number {value}: YAML 1.1 reads an unquoted "
            "value such as 11:22:33 as a base-60 number; quote it",
        )
        return None
    text = as_str(value, path, problems)
    if text is None:
        return None
    mac = text.strip().lower().replace("-", ":")
    if allow_glob and is_glob(mac):
        ok = bool(re.fullmatch(r"[0-9a-f*?\[\]:!-]+", mac))
    else:
        ok = bool(_MAC.fullmatch(mac))
    if not ok:
        problems.error(
            path,
            f"{show(text)} is not a MAC address (6 bytes such as aa:bb:cc:dd:ee:ff, or 20 for InfiniBand)",
        )
        return None
    return mac


MTU = (68, 65535)
"""The MTUs a link may be given (the kernel's IPv4 minimum; the largest a link takes)."""


def as_mtu(value: Any, path: KeyPath, problems: Problems) -> int | None:
    return as_int(value, path, problems, *MTU, strings=True)


def as_argv(value: Any, path: KeyPath, problems: Problems) -> Argv | None:
    """A hook: a list of strings is an argv; a string is split like a shell would split words
    (``shlex.split``), but never run by a shell: no pipes, redirections or variables."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            problems.error(path, f"cannot split {show(value)} into words: {exc}")
            return None
        return tuple(words)
    if isinstance(value, list | tuple):
        if not value:
            problems.error(path, "empty command")
            return None
        if not all(isinstance(w, str | int | float) and not isinstance(w, bool) for w in value):
            problems.error(path, "a command given as a list must hold strings")
            return None
        return tuple(str(w) for w in value)
    problems.error(path, f"expected a command (a string or a list of strings), got {describe(value)}")
    return None


def as_hooks(value: Any, path: KeyPath, problems: Problems) -> tuple[Argv, ...]:
    if isinstance(value, str):  # one command
        value = [value]
    items = as_list(value, path, problems)
    out: list[Argv] = []
    for i, item in enumerate(items or []):
        argv = as_argv(item, (*path, i), problems)
        if argv:  # an empty string is no command (RancherOS skipped those too)
            out.append(argv)
    return tuple(out)


def as_search(value: Any, path: KeyPath, problems: Problems) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    items = as_list(value, path, problems)
    out: list[str] = []
    for i, item in enumerate(items or []):
        text = as_str(item, (*path, i), problems)
        if text is None:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
            problems.error((*path, i), f"{show(text)} is not a domain name")
            continue
        out.append(text)
    return tuple(out)


def as_nameservers(value: Any, path: KeyPath, problems: Problems) -> tuple[IPAddress, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    items = as_list(value, path, problems)
    out: list[IPAddress] = []
    for i, item in enumerate(items or []):
        address = as_ip_address(item, (*path, i), problems)
        if address is not None:
            out.append(address)
    return tuple(out)


METRIC = (0, 2**32 - 1)
TABLE = (1, 2**32 - 1)
SCOPES = ("global", "link", "host")
ROUTE = Keys(
    "network_route",
    {
        "to": {"type": "string"},
        "via": {"type": "string"},
        "metric": integer(*METRIC),
        "table": integer(*TABLE),
        "on-link": {"type": "boolean"},
        "from": {"type": "string"},
        "scope": {"enum": list(SCOPES)},
        "type": {"type": "string"},
        **{
            k: Ignored(f"route option {k!r} is not implemented; the route is added without it")
            for k in ("mtu", "congestion-window", "advertised-receive-window", "advertised-mss")
        },
    },
)
"""A route in netplan's syntax, which both formats take (RancherOS's ``routes`` is corral's addition)."""
SCHEMA_DEFS: dict[str, SchemaNode] = {ROUTE.name: ROUTE.schema()}
"""The schema definitions both formats refer to (schema.json's are generated: supervisor.gen_schema)."""


def as_route(value: Any, path: KeyPath, problems: Problems) -> Route | None:
    """A route in netplan's syntax: ``{to, via, metric, table, on-link, from, scope}``; ``to: default``
    is 0.0.0.0/0 or ::/0 after the family of ``via``."""
    data = as_map(value, path, problems, "a route map {to, via, ...}")
    if data is None:
        return None
    before = problems.count()
    check_keys(data, path, problems, ROUTE)
    via = as_ip_address(data["via"], (*path, "via"), problems) if "via" in data else None
    raw_to = data.get("to")
    to: IPNetwork | None = None
    if raw_to is None:
        problems.error((*path, "to"), "required: the destination (a network such as 10.0.0.0/8, or default)")
    elif raw_to == "default":
        if via is None and "via" not in data:
            problems.error(
                (*path, "to"),
                "'default' needs 'via' (it says whether IPv4 or IPv6 is meant); or write 0.0.0.0/0 or ::/0",
            )
        elif via is not None:
            to = IPv4Network("0.0.0.0/0") if via.version == 4 else IPv6Network("::/0")
    elif isinstance(raw_to, str) and "/" not in raw_to and _host(raw_to) is not None:
        to = _host(raw_to)  # networkd's Destination=: without a length, a route to that one host
    elif isinstance(raw_to, str) and "/" not in raw_to:
        host = "/128" if ":" in raw_to else "/32"
        problems.error(
            (*path, "to"),
            f"{show(raw_to)} has no prefix length: write 'default' (or 0.0.0.0/0, ::/0) "
            f"for the default route, {raw_to.strip()}{host} for one host",
        )
    elif isinstance(raw_to, str):
        try:
            to = ipaddress.ip_network(raw_to.strip())
        except ValueError as exc:
            problems.error((*path, "to"), f"{show(raw_to)} is not a network (expected 10.0.0.0/8): {exc}")
    else:
        problems.error((*path, "to"), f"{show(raw_to)} is not a network (expected 10.0.0.0/8)")
    if to is not None and via is not None and to.version != via.version:
        problems.error((*path, "via"), f"{via} is IPv{via.version} but 'to' {to} is IPv{to.version}")
    metric = table = None
    if "metric" in data:
        metric = as_int(data["metric"], (*path, "metric"), problems, *METRIC, strings=True)
    if "table" in data:
        table = as_int(data["table"], (*path, "table"), problems, *TABLE, strings=True)
    if table in (0, LOCAL_TABLE):
        problems.error((*path, "table"), f"table {table} is reserved")
    on_link = False
    if "on-link" in data:
        on_link = bool(as_bool(data["on-link"], (*path, "on-link"), problems, strings=True))
    source = as_ip_address(data["from"], (*path, "from"), problems) if "from" in data else None
    scope: Scope | None = None
    if "scope" in data:
        scope = cast(Scope | None, as_enum(data["scope"], (*path, "scope"), problems, SCOPES))
    if problems.count() > before or to is None:
        return None
    if "type" in data and data["type"] != "unicast":
        problems.warn(
            (*path, "type"),
            f"route type {show(data['type'])} is not implemented (only unicast); this route is not added",
        )
        return None
    return Route(to=to, via=via, metric=metric, table=table, on_link=on_link, source=source, scope=scope)


def _host(text: str) -> IPNetwork | None:
    """``10.0.0.1`` as the one-host network 10.0.0.1/32; None for the unspecified address (0.0.0.0
    and ``::`` without a length mean the default route, most likely: an error says so) and non-addresses."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return None if address.is_unspecified else ipaddress.ip_network(address)


def as_duration_ms(value: Any, path: KeyPath, problems: Problems, default_unit: str) -> float | None:
    """A duration as a number (in ``default_unit``: "ms" or "s") or text with a unit (100ms, 2s)."""
    factors = {"ms": 1.0, "msec": 1.0, "s": 1000.0, "sec": 1000.0, "m": 60000.0, "min": 60000.0}
    if isinstance(value, int | float) and not isinstance(value, bool):
        number, unit = float(value), default_unit
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*", value)):
        number, unit = float(m.group(1)), m.group(2) or default_unit
    else:
        problems.error(
            path, f"{show(value)} is not a duration (a number of {default_unit}, or e.g. 100ms, 2s)"
        )
        return None
    if unit not in factors:
        problems.error(path, f"{show(value)}: unknown unit {unit!r} (use ms or s)")
        return None
    if number < 0:
        problems.error(path, f"{show(value)} is negative")
        return None
    return number * factors[unit]


# -- link specs ------------------------------------------------------------------------------------------

def bond_spec(mode: int, options: Mapping[str, OptionValue], primary: str | None) -> LinkSpec:
    opts = {"bond_mode": mode, **options}
    return LinkSpec(
        "bond", tuple(sorted(opts.items())), (("bond_primary", primary),) if primary is not None else ()
    )


def bridge_spec(options: Mapping[str, OptionValue]) -> LinkSpec:
    return LinkSpec("bridge", tuple(sorted(options.items())))


def with_address(spec: LinkSpec, mac: str | None) -> LinkSpec:
    """``spec`` creating the link with the MAC address ``mac`` (``IFLA_ADDRESS``; None: the kernel's
    choice). A bridge or bond given its MAC keeps it when ports join."""
    if mac is None:
        return spec
    return replace(spec, options=tuple(sorted((*spec.options, ("address", mac)))))


def vlan_spec(vlan_id: int, parent: str) -> LinkSpec:
    return LinkSpec("vlan", (("vlan_id", vlan_id),), (("link", parent),))


DUMMY_SPEC = LinkSpec("dummy")
"""A dummy link (``kind=dummy``): no options; what a ``kind == "dummy"`` rule creates."""
