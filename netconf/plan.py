"""The network plan: desired model + observed state -> ordered operations. Pure.

The desired state is the config and the DHCP leases corral's clients hold (``Desired``): a lease is
desired state like the config, and the plan alone decides what it brings to the kernel (the DHCP client
only talks DHCP). The operations are ``netconf.ops``'s, each one pyroute2 call or one action.

Order: network ``pre`` hooks; renames; stop unwanted DHCP clients; remove routes, then addresses; release
ports; delete links to be re-created; create links (lower layers first: a VLAN after its parent);
MTUs; IPv6 settings (accept_ra...); enslave (a bond member is set down first); set links up; add
addresses; start DHCP; add routes; write DNS; delete virtual links that are no longer wanted (VLANs
before what they sit on); network ``post`` hooks. A link's ``pre_up`` hooks run just before its first
operation, ``post_up`` just after its last. With nothing to do the plan is empty, hooks included. What
a DHCP lease brings, renews or takes away runs no hooks (hooks are about the config).

What a lease brings to its link (``lease_address``, ``lease_route``, ``link_mtu``), config first:

- its address, with the lease's end as the address's lifetime (the kernel drops it then, whatever
  happens to corral), unless the config gives the link the same IP (then that address is made
  permanent if it is there with a lifetime); an address whose lifetime ends before the lease's end, or
  more than ``LIFETIME_SLACK`` seconds after it (a renewal), is replaced;
- a default route via its router, ``proto dhcp``, metric ``route-metric`` (``LEASE_ROUTE_METRIC`` by
  default), unless ``use-routes: false`` or the config gives the link a default route of that family
  in the same table;
- its MTU, unless the config gives one;
- its name servers and search domains, when the config gives none (``use-dns: false``: not these).

A lease counts while the link's rule wants DHCP for its family and its client keeps running (a client
the plan stops or restarts releases its lease). When a lease changes or goes (a new address, expiry,
release, a config that no longer wants DHCP), what it brought and no longer brings is removed like any
address or route corral owns. A lease not confirmed since a restart (``DhcpLease.confirmed``) keeps
what it brought but adds nothing.

Ownership: corral removes what it configured earlier (``Owned``) and the config no longer wants, and
leaves everything else alone (docker0, container veths, links no rule matches, addresses others added),
except on links whose rule is ``exclusive``, where foreign permanent addresses and static routes go
too. Kernel-made addresses and routes and the local table are never touched; addresses with a
lifetime and routes with proto dhcp only when corral added them (its leases'), never for
``exclusive``. ``record`` turns applied operations into the new ``Owned``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from netconf.desired import Desired, lease_address, lease_route, lifetime_current, link_mtu
from netconf.match import match
from netconf.model import (
    DUMMY_SPEC,
    Argv,
    Dns,
    Interface,
    IPAddress,
    IPInterface,
    LinkSpec,
    NetworkConfig,
    Route,
    valid_ifname,
    vlan_spec,
    with_address,
)
from netconf.observed import RTPROT_DHCP, Address, DhcpLease, Link, Observed, Owned, RouteEntry
from netconf.ops import (
    _LINK_OPS,
    AddAddress,
    AddRoute,
    CreateLink,
    DeleteLink,
    Enslave,
    Op,
    Release,
    RemoveAddress,
    RemoveRoute,
    RenameLink,
    RunHook,
    SetDown,
    SetIPv6,
    SetMtu,
    SetUp,
    StartDhcp,
    StopDhcp,
    WriteDns,
    record,
)

_NEW = 1 << 30  # ifindex stand-in for links the plan creates: after every existing one


def plan(desired: NetworkConfig | Desired, observed: Observed) -> list[Op]:
    """The operations that turn ``observed`` into ``desired``; empty when they agree."""
    return _Planner(Desired.of(desired), observed).run()


def desired_dns(desired: NetworkConfig | Desired, observed: Observed) -> Dns | None:
    """The DNS settings the plan writes (None: leave resolv.conf alone)."""
    planner = _Planner(Desired.of(desired), observed)
    planner.project()
    return planner.dns()


def hooks_argv(argv: Argv, link: str | None) -> Argv:
    """``$iface`` in a hook's words becomes the link's name (empty for network-wide hooks)."""
    return tuple(word.replace("$iface", link or "") for word in argv)


class _Planner:
    def __init__(self, desired: Desired, observed: Observed) -> None:
        self.d = desired.config
        self.desired_leases = desired.leases
        self.o = observed
        self.rules = desired.config.interfaces
        self.renames: dict[str, str] = {}
        self.proj: dict[str, Link] = {}
        self.wanted: dict[str, LinkSpec] = {}
        self.created: set[str] = set()
        self.recreate: set[str] = set()
        self.conflicts: set[str] = set()
        self.managed: dict[str, Interface] = {}
        self.leases: dict[str, list[DhcpLease]] = {}
        self.owned = observed.owned

    # -- projection: which links will exist, and which rule configures each --------------------------------

    def _rn(self, name: str | None) -> str | None:
        return None if name is None else self.renames.get(name, name)

    def project(self) -> None:
        links0 = sorted(self.o.links, key=lambda link: (link.index, link.name))
        first = match(self.rules, links0)
        taken = {link.name for link in links0}
        for link in links0:
            rule = first.get(link.name)
            if (
                rule is not None
                and rule.set_name
                and rule.set_name != link.name
                and rule.set_name not in taken
            ):
                self.renames[link.name] = rule.set_name
                taken.add(rule.set_name)
        for link in links0:
            name = self.renames.get(link.name, link.name)
            self.proj[name] = replace(
                link, name=name, master=self._rn(link.master), parent=self._rn(link.parent)
            )
        self.owned = record(self.o.owned, [RenameLink(a, b) for a, b in self.renames.items()])
        for _ in range(16):
            current = match(self.rules, list(self.proj.values()))
            if not self._add_virtual(current):
                break
        for name in list(self.recreate):
            self._cascade(name)
        self.managed = {
            n: r for n, r in match(self.rules, list(self.proj.values())).items() if n not in self.conflicts
        }
        self._project_leases()

    def _project_leases(self) -> None:
        """The leases that count, by link: the link's rule wants DHCP for the family, and the client
        keeps running (one the plan stops or restarts with other options releases its lease)."""
        clients = {(self._rn(c.link), c.family): c.options for c in self.o.dhcp}
        for lease in self.desired_leases:
            link = self._rn(lease.link) or lease.link
            rule = self.managed.get(link)
            if rule is None or self.fresh(link) or not rule.wants_dhcp(lease.family):
                continue
            options = clients.get((link, lease.family))
            if options is not None and options != rule.dhcp_options(lease.family):
                continue
            self.leases.setdefault(link, []).append(lease)

    def _virtual(self, current: Mapping[str, Interface]) -> Iterable[tuple[str, LinkSpec]]:
        for rule in self.rules:
            name = rule.match.exact_name
            if name is None:
                continue
            if rule.kind == "bridge" and rule.bridge is not None:
                yield name, with_address(rule.bridge, rule.macaddress)
            elif rule.kind == "bond" and rule.bond is not None:
                yield name, with_address(rule.bond, rule.macaddress)
            elif rule.kind == "dummy":
                yield name, with_address(DUMMY_SPEC, rule.macaddress)
            elif rule.kind == "vlan" and rule.vlan is not None:
                parent_rule = self.d.rule(rule.vlan.link)
                parents = [n for n, r in current.items() if parent_rule is not None and r == parent_rule]
                if not parents and parent_rule is None and rule.vlan.link in self.proj:
                    parents = [rule.vlan.link]
                if parents:
                    yield name, with_address(vlan_spec(rule.vlan.id, parents[0]), rule.macaddress)
        for link_name, rule in current.items():
            if self.proj[link_name].kind == "vlan":
                continue  # `vlans:` never stacks VLANs on VLANs
            for vd in rule.vlans:
                name = vd.name or f"{link_name}.{vd.id}"
                if valid_ifname(name):
                    yield name, vlan_spec(vd.id, link_name)

    def _add_virtual(self, current: Mapping[str, Interface]) -> bool:
        new = False
        for name, spec in self._virtual(current):
            if name in self.wanted or name in self.conflicts:
                continue
            existing = self.proj.get(name)
            if existing is not None and name not in self.created:
                if existing.kind != spec.kind:
                    self.conflicts.add(name)  # a link of another kind has the name: not ours to change
                    continue
                owned_spec = self.owned.link_spec(name)
                if owned_spec is not None and owned_spec != spec:
                    self.recreate.add(name)
            self.wanted[name] = spec
            if existing is None:
                parent = dict(spec.refs).get("link")
                self.proj[name] = Link(
                    index=_NEW + len(self.created), name=name, kind=spec.kind, parent=parent
                )
                self.created.add(name)
                new = True
        return new

    def _cascade(self, name: str) -> None:
        """VLANs on a link that is deleted go with it: those still wanted are re-created."""
        for child in self.proj.values():
            if (
                child.parent == name
                and child.kind == "vlan"
                and child.name not in self.recreate
                and child.name in self.wanted
                and child.name not in self.created
            ):
                self.recreate.add(child.name)
                self._cascade(child.name)

    def fresh(self, name: str) -> bool:
        """The link does not exist yet, or is deleted and made again: nothing observed on it counts."""
        return name in self.created or name in self.recreate or self._gone_with_parent(name)

    def _gone_with_parent(self, name: str) -> bool:
        link = self.proj.get(name)
        seen: set[str] = set()
        while link is not None and link.kind == "vlan" and link.parent is not None and link.name not in seen:
            seen.add(link.name)
            if link.parent in self.recreate:
                return True
            link = self.proj.get(link.parent)
        return False

    # -- desired, per link ----------------------------------------------------------------------------------

    def master(self, name: str) -> str | None:
        rule = self.managed.get(name)
        if rule is None or rule.master is None or rule.master == name or rule.master in self.conflicts:
            return None
        target = self.proj.get(rule.master)
        return rule.master if target is not None and target.kind in ("bridge", "bond") else None

    def current_master(self, name: str) -> str | None:
        if self.fresh(name):
            return None
        master = self.proj[name].master
        return None if master is None or master in self.recreate else master

    def routes(self, name: str) -> tuple[Route, ...]:
        rule = self.managed.get(name)
        if rule is None:
            return ()
        return tuple(dict.fromkeys(r.canonical() for r in rule.all_routes()))

    def lease_addresses(self, name: str) -> list[tuple[IPInterface, DhcpLease]]:
        rule = self.managed.get(name)
        if rule is None:
            return []
        return [(a, le) for le in self.leases.get(name, ()) if (a := lease_address(rule, le)) is not None]

    def lease_routes(self, name: str) -> list[tuple[Route, DhcpLease]]:
        rule = self.managed.get(name)
        if rule is None:
            return []
        return [(r, le) for le in self.leases.get(name, ()) if (r := lease_route(rule, le)) is not None]

    def layer(self, name: str, seen: frozenset[str] = frozenset()) -> int:
        link = self.proj.get(name)
        if link is None or name in seen:
            return 0
        seen = seen | {name}
        if link.kind == "vlan":
            parent = dict(self.wanted[name].refs).get("link") if name in self.wanted else link.parent
            return 1 + (self.layer(parent, seen) if parent else 0)
        if link.kind in ("bridge", "bond"):
            members = [
                n
                for n in self.proj
                if self.master(n) == name or (n not in self.managed and self.proj[n].master == name)
            ]
            return 1 + max((self.layer(m, seen) for m in members), default=0)
        return 0

    def topo(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=lambda n: (self.layer(n), self.proj[n].index, n))

    def dns(self) -> Dns | None:
        servers: list[IPAddress] = list(self.d.dns.nameservers)
        search: list[str] = list(self.d.dns.search)
        for rule in sorted(set(self.managed.values()), key=lambda r: r.order):
            servers.extend(rule.nameservers)
            search.extend(rule.search)
        if not servers and not search:
            order = {n: i for i, n in enumerate(self.topo(self.managed))}
            held = [(link, le) for link, leases in self.leases.items() for le in leases]
            for link, lease in sorted(held, key=lambda x: (order.get(x[0], 1 << 40), x[1].family)):
                if not self.managed[link].dhcp_options(lease.family).use_dns:
                    continue
                servers.extend(lease.nameservers)
                search.extend(lease.search)
        result = Dns(tuple(dict.fromkeys(servers)), tuple(dict.fromkeys(search)))
        return None if result.empty else result

    # -- the plan -------------------------------------------------------------------------------------------

    def run(self) -> list[Op]:
        self.project()
        o, owned = self.o, self.owned
        addresses = [replace(a, link=self._rn(a.link) or a.link) for a in o.addresses]
        routes = [replace(r, link=self._rn(r.link)) for r in o.routes]
        clients = [replace(c, link=self._rn(c.link) or c.link) for c in o.dhcp]
        up = {n: link.up and not self.fresh(n) for n, link in self.proj.items()}
        topo_managed = self.topo(self.managed)

        renames: list[Op] = []
        for old, new in self.renames.items():
            if up.get(new):
                renames.append(SetDown(old))
                up[new] = False
            renames.append(RenameLink(old, new))

        stops: list[Op] = []
        running: set[tuple[str, int]] = set()
        for c in clients:
            rule = self.managed.get(c.link)
            if (
                rule is not None
                and not self.fresh(c.link)
                and rule.wants_dhcp(c.family)
                and rule.dhcp_options(c.family) == c.options
            ):
                running.add((c.link, c.family))
            else:
                stops.append(StopDhcp(c.link, c.family))

        by_lease: list[Op] = []  # what a lease brings or takes away: no hooks for these
        rm_routes: list[Op] = []
        for e in routes:
            if e.link is not None and self._remove_route(e, owned):
                rm_routes.append(RemoveRoute(e.link, e.route))
                if e.proto == RTPROT_DHCP:
                    by_lease.append(rm_routes[-1])
        rm_addrs: list[Op] = []
        for a in addresses:
            if self._remove_address(a, owned):
                rm_addrs.append(RemoveAddress(a.link, a.address))
                if a.dynamic:
                    by_lease.append(rm_addrs[-1])

        dropped = [
            n
            for n, spec in owned.links
            if n not in self.wanted
            and n in self.proj
            and n not in self.created
            and self.proj[n].kind == spec.kind
            and not self._gone_with_parent(n)
        ]
        releases: list[Op] = []
        for link_name, master in sorted(owned.masters):
            link = self.proj.get(link_name)
            if (
                link is None
                or self.fresh(link_name)
                or link.master != master
                or master in dropped
                or master in self.recreate
                or self.master(link_name) is not None
            ):
                continue
            releases.append(Release(link_name))

        gone = [n for n in self.proj if n in self.recreate]
        deletes_early: list[Op] = [
            DeleteLink(n)
            for n in reversed(self.topo(gone))
            if not any(p in self.recreate for p in self._parents(n))
        ]
        creates: list[Op] = [
            CreateLink.of(n, self.wanted[n])
            for n in self.topo(self.wanted)
            if n in self.created or n in self.recreate or self._gone_with_parent(n)
        ]

        mtus: list[Op] = []
        for n in topo_managed:
            rule = self.managed[n]
            mtu = link_mtu(rule, self.leases.get(n, ()))
            if mtu is not None and (self.fresh(n) or self.proj[n].mtu != mtu):
                mtus.append(SetMtu(n, mtu))
                if rule.mtu is None:
                    by_lease.append(mtus[-1])

        ipv6: list[Op] = []
        for n in topo_managed:
            conf = {} if self.fresh(n) else dict(self.proj[n].ipv6_conf)
            ipv6.extend(SetIPv6(n, k, v) for k, v in self.managed[n].ipv6_conf if conf.get(k) != v)

        enslaves: list[Op] = []
        for n in topo_managed:
            want = self.master(n)
            if want is None or self.current_master(n) == want:
                continue
            if self.proj[want].kind == "bond" and up.get(n):
                enslaves.append(SetDown(n))
                up[n] = False
            enslaves.append(Enslave(n, want))

        ups: list[Op] = [SetUp(n) for n in topo_managed if not up.get(n)]

        adds: list[Op] = []
        starts: list[Op] = []
        add_routes: list[Op] = []
        for n in topo_managed:
            rule = self.managed[n]
            present = {} if self.fresh(n) else {a.address: a for a in addresses if a.link == n}
            for configured in rule.addresses:
                if configured not in present:
                    adds.append(AddAddress(n, configured))
                elif present[configured].dynamic:  # there for a lease, say: the config wants it for good
                    adds.append(AddAddress(n, configured, replace=True))
            for ip, lease in self.lease_addresses(n):
                there = present.get(ip)
                if lease.confirmed and (there is None or not lifetime_current(there, lease)):
                    by_lease.append(AddAddress(n, ip, lease=True, expires=lease.expires,
                                               preferred=lease.preferred))
                    adds.append(by_lease[-1])
            for family in (4, 6):
                if rule.wants_dhcp(family) and (n, family) not in running:
                    starts.append(StartDhcp(n, family, rule.dhcp_options(family)))
            have = set() if self.fresh(n) else {e.route for e in routes if e.link == n}
            add_routes.extend(AddRoute(n, r) for r in self.routes(n) if r not in have)
            for r, lease in self.lease_routes(n):
                if lease.confirmed and r not in have:
                    by_lease.append(AddRoute(n, r, lease=True))
                    add_routes.append(by_lease[-1])

        dns_ops: list[Op] = []
        dns = self.dns()
        if dns is not None and dns != o.dns:
            dns_ops.append(WriteDns(dns.nameservers, dns.search))

        deletes: list[Op] = [DeleteLink(n) for n in reversed(self.topo(dropped))]

        ops: list[Op] = [
            *renames,
            *stops,
            *rm_routes,
            *rm_addrs,
            *releases,
            *deletes_early,
            *creates,
            *mtus,
            *ipv6,
            *enslaves,
            *ups,
            *adds,
            *starts,
            *add_routes,
            *dns_ops,
            *deletes,
        ]
        if not ops:
            return []
        return self._with_hooks(ops, by_lease)

    def _parents(self, name: str) -> list[str]:
        out: list[str] = []
        link = self.proj.get(name)
        while link is not None and link.kind == "vlan" and link.parent is not None and link.parent not in out:
            out.append(link.parent)
            link = self.proj.get(link.parent)
        return out

    def _remove_address(self, a: Address, owned: Owned) -> bool:
        if a.kernel_made or a.link not in self.proj or self.fresh(a.link):
            return False
        rule = self.managed.get(a.link)
        if rule is not None and a.address in rule.addresses:
            return False
        if any(a.address == want for want, _ in self.lease_addresses(a.link)):
            return False
        if (a.link, a.address) in owned.addresses:
            return True
        return not a.dynamic and rule is not None and rule.exclusive

    def _remove_route(self, e: RouteEntry, owned: Owned) -> bool:
        if e.link is None or e.untouchable or e.link not in self.proj or self.fresh(e.link):
            return False
        rule = self.managed.get(e.link)
        if rule is not None and e.route in self.routes(e.link):
            return False
        if any(e.route == want for want, _ in self.lease_routes(e.link)):
            return False
        if (e.link, e.route) in owned.routes:
            return True
        return e.proto != RTPROT_DHCP and rule is not None and rule.exclusive

    def _with_hooks(self, ops: list[Op], by_lease: Sequence[Op] = ()) -> list[Op]:
        skip = {id(op) for op in by_lease}
        if all(id(op) in skip for op in ops):
            return ops
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        for i, op in enumerate(ops):
            link = op.link if isinstance(op, _LINK_OPS) and id(op) not in skip else None
            if link is not None and link in self.managed:
                first.setdefault(link, i)
                last[link] = i
        out: list[Op] = [RunHook(hooks_argv(a, None), "pre") for a in self.d.pre_cmds]
        for i, op in enumerate(ops):
            for link, at in first.items():
                if at == i:
                    out.extend(
                        RunHook(hooks_argv(a, link), "pre_up", link) for a in self.managed[link].pre_up
                    )
            out.append(op)
            for link, at in last.items():
                if at == i:
                    out.extend(
                        RunHook(hooks_argv(a, link), "post_up", link) for a in self.managed[link].post_up
                    )
        out.extend(RunHook(hooks_argv(a, None), "post") for a in self.d.post_cmds)
        return out
