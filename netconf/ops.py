"""The network plan's operations (netconf/plan.py makes them, netconf/apply.py runs them).

Each operation maps onto one pyroute2 call (or one action of the DHCP client, the resolv.conf writer,
the hook runner); links are named, and the apply layer resolves names to ifindexes
when it runs them:

==============================  =====================================================================
``CreateLink(name, kind, ...)``  ``IPRoute.link("add", ifname=name, kind=kind, **options, **refs)``
``DeleteLink(name)``             ``IPRoute.link("del", index=...)``
``RenameLink(name, new_name)``   ``IPRoute.link("set", index=..., ifname=new_name)`` (the link is down)
``Enslave(link, master)``        ``IPRoute.link("set", index=..., master=index(master))``
``Release(link)``                ``IPRoute.link("set", index=..., master=0)``
``SetMtu(link, mtu)``            ``IPRoute.link("set", index=..., mtu=mtu)``
``SetUp``/``SetDown(link)``      ``IPRoute.link("set", index=..., state="up"/"down")``
``SetIPv6(link, name, value)``   write ``/proc/sys/net/ipv6/conf/LINK/NAME`` (``accept_ra``, ...)
``Add``/``RemoveAddress``        ``IPRoute.addr("add"/"del", index=..., address=ip, prefixlen=n)``; a
                                 lease's: ``"replace"`` with ``valid_lft``/``preferred_lft`` until it ends;
                                 ``replace``: ``"replace"`` without (permanent)
``Add``/``RemoveRoute``          ``IPRoute.route("add"/"del", dst=..., gateway=via, oif=..., priority=metric,
                                 table=..., scope=..., prefsrc=source, flags=onlink, proto="static")``;
                                 a lease's: ``"replace"``, ``proto="dhcp"``
``Start``/``StopDhcp``           corral's DHCP client on that link and family
``WriteDns``                     resolv.conf
``RunHook(argv, phase, link)``   spawn argv (never through a shell) and wait
==============================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

from netconf.model import Argv, DhcpOptions, IPAddress, IPInterface, LinkSpec, OptionValue, Route, VirtualKind
from netconf.observed import Owned

Phase: TypeAlias = Literal["pre", "post", "pre_up", "post_up"]


@dataclass(frozen=True)
class CreateLink:
    name: str
    kind: VirtualKind
    options: tuple[tuple[str, OptionValue], ...] = ()
    refs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, spec: LinkSpec) -> CreateLink:
        return cls(name, spec.kind, spec.options, spec.refs)

    @property
    def spec(self) -> LinkSpec:
        return LinkSpec(self.kind, self.options, self.refs)


@dataclass(frozen=True)
class DeleteLink:
    name: str


@dataclass(frozen=True)
class RenameLink:
    name: str
    new_name: str


@dataclass(frozen=True)
class Enslave:
    link: str
    master: str


@dataclass(frozen=True)
class Release:
    link: str


@dataclass(frozen=True)
class SetMtu:
    link: str
    mtu: int


@dataclass(frozen=True)
class SetIPv6:
    """One of the link's IPv6 settings (``netconf.model.IPV6_CONF``): netlink reports them, only the
    sysctl file (in the link's namespace) sets them."""

    link: str
    name: str
    value: int


@dataclass(frozen=True)
class SetUp:
    link: str


@dataclass(frozen=True)
class SetDown:
    link: str


@dataclass(frozen=True)
class AddAddress:
    """``lease``: a DHCP lease's address, put in place (or replaced) with a lifetime that ends at
    ``expires`` (``time.monotonic()`` seconds; None: it does not end), preferred until ``preferred``
    (None: until ``expires``; a DHCPv6 lease's preferred lifetime). ``replace``: a configured
    address that is there with a lifetime (a lease's) is made permanent."""

    link: str
    address: IPInterface
    lease: bool = False
    expires: float | None = None
    replace: bool = False
    preferred: float | None = None


@dataclass(frozen=True)
class RemoveAddress:
    link: str
    address: IPInterface


@dataclass(frozen=True)
class AddRoute:
    """``lease``: a DHCP lease's route, put in place (or replaced) with proto dhcp."""

    link: str
    route: Route
    lease: bool = False


@dataclass(frozen=True)
class RemoveRoute:
    link: str
    route: Route


@dataclass(frozen=True)
class StartDhcp:
    link: str
    family: int
    options: DhcpOptions = field(default_factory=DhcpOptions)


@dataclass(frozen=True)
class StopDhcp:
    link: str
    family: int


@dataclass(frozen=True)
class WriteDns:
    nameservers: tuple[IPAddress, ...]
    search: tuple[str, ...]


@dataclass(frozen=True)
class RunHook:
    argv: Argv
    phase: Phase
    link: str | None = None


Op: TypeAlias = (
    CreateLink
    | DeleteLink
    | RenameLink
    | Enslave
    | Release
    | SetMtu
    | SetIPv6
    | SetUp
    | SetDown
    | AddAddress
    | RemoveAddress
    | AddRoute
    | RemoveRoute
    | StartDhcp
    | StopDhcp
    | WriteDns
    | RunHook
)
_LINK_OPS = (
    Enslave,
    Release,
    SetMtu,
    SetIPv6,
    SetUp,
    SetDown,
    AddAddress,
    RemoveAddress,
    AddRoute,
    RemoveRoute,
    StartDhcp,
    StopDhcp,
)


def record(owned: Owned, ops: Sequence[Op]) -> Owned:
    """What corral owns after ``ops`` were applied (pass only those that succeeded)."""
    addresses = set(owned.addresses)
    routes = set(owned.routes)
    links = dict(owned.links)
    masters = dict(owned.masters)
    for op in ops:
        if isinstance(op, AddAddress):
            addresses.add((op.link, op.address))
        elif isinstance(op, RemoveAddress):
            addresses.discard((op.link, op.address))
        elif isinstance(op, AddRoute):
            routes.add((op.link, op.route))
        elif isinstance(op, RemoveRoute):
            routes.discard((op.link, op.route))
        elif isinstance(op, CreateLink):
            links[op.name] = op.spec
        elif isinstance(op, Enslave):
            masters[op.link] = op.master
        elif isinstance(op, Release):
            masters.pop(op.link, None)
        elif isinstance(op, DeleteLink):
            links.pop(op.name, None)
            addresses = {a for a in addresses if a[0] != op.name}
            routes = {r for r in routes if r[0] != op.name}
            masters = {k: v for k, v in masters.items() if op.name not in (k, v)}
        elif isinstance(op, RenameLink):
            old, new = op.name, op.new_name

            def rn(name: str) -> str:
                return new if name == old else name  # noqa: B023 - used at once, in this iteration

            addresses = {(rn(n), a) for n, a in addresses}
            routes = {(rn(n), r) for n, r in routes}
            links = {rn(n): replace(s, refs=tuple((k, rn(v)) for k, v in s.refs)) for n, s in links.items()}
            masters = {rn(k): rn(v) for k, v in masters.items()}
    return Owned(
        frozenset(addresses), frozenset(routes), frozenset(links.items()), frozenset(masters.items())
    )
