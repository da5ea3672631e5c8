"""Which rule applies to which link: deterministic, pure.

A link is configured by at most one rule: the best of those that match it, by

1. **class**: an exact name (the rule's literal name, or its ``set-name``) beats a MAC address, which
   beats anything with a wildcard (a name glob, a MAC glob, a driver);
2. **specificity**: more literal characters across the rule's patterns win (``eth1*`` beats ``eth*``,
   a name plus a driver beats the name alone);
3. **order**: the rule given first in the file wins.

Every field of a rule's match must hold (netplan semantics). Globs never match ``lo`` (name it exactly).
MAC and driver criteria only match links that are not virtual links inheriting another link's MAC (bond,
bridge, vlan, macvlan, macvtap, ipvlan, team). A rule with ``set-name`` also matches the link that
already has the new name (if its other criteria hold) and applies to one link only: the one already
renamed, else the one with the lowest ifindex."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Protocol

from netconf.model import Interface, is_glob

VIRTUAL_KINDS = frozenset({"bridge", "bond", "vlan", "macvlan", "macvtap", "ipvlan", "team"})

EXACT, MAC, GLOB = 3, 2, 1
Rank = tuple[int, int, int]


class LinkLike(Protocol):
    """What matching looks at (``netconf.observed.Link`` has it)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def mac(self) -> str | None: ...
    @property
    def driver(self) -> str | None: ...
    @property
    def kind(self) -> str | None: ...


def literal_chars(pattern: str) -> int:
    """How many characters of a pattern must match literally (``[...]`` and wildcards count 0)."""
    return len(re.sub(r"\[[^\]]*\]|[*?]", "", pattern))


def _fits(pattern: str, value: str) -> bool:
    return fnmatchcase(value, pattern) if is_glob(pattern) else value == pattern


def rank(rule: Interface, link: LinkLike) -> Rank | None:
    """How well ``rule`` matches ``link`` (higher is better), or None when it does not match."""
    m = rule.match
    exact = False
    if rule.set_name is not None and link.name == rule.set_name:
        exact = True
    elif m.name is not None:
        if is_glob(m.name):
            if link.name == "lo" or not fnmatchcase(link.name, m.name):
                return None
        elif link.name != m.name:
            return None
        else:
            exact = True
    elif rule.set_name is not None and m.mac is None and not m.drivers:
        return None
    physical = (link.kind or "") not in VIRTUAL_KINDS
    if m.mac is not None and not (physical and link.mac is not None and _fits(m.mac, link.mac.lower())):
        return None
    if m.drivers and not (
        physical and link.driver is not None and any(_fits(d, link.driver) for d in m.drivers)
    ):
        return None
    if m.name is None and m.mac is None and not m.drivers and not exact:
        return None
    klass = EXACT if exact else MAC if m.mac is not None and not is_glob(m.mac) else GLOB
    specificity = sum(literal_chars(p) for p in (m.name, m.mac, *m.drivers) if p is not None)
    return (klass, specificity, -rule.order)


def match(rules: Sequence[Interface], links: Sequence[LinkLike]) -> dict[str, Interface]:
    """``{link name: rule}`` for every link some rule matches, in ifindex order."""
    ordered = sorted(links, key=lambda link: (link.index, link.name))
    excluded: set[tuple[str, int]] = set()  # (link name, rule position) pairs ruled out by set-name
    while True:
        chosen: dict[str, tuple[Rank, int]] = {}
        for link in ordered:
            best: tuple[Rank, int] | None = None
            for pos, rule in enumerate(rules):
                if (link.name, pos) in excluded:
                    continue
                r = rank(rule, link)
                if r is not None and (best is None or r > best[0]):
                    best = (r, pos)
            if best is not None:
                chosen[link.name] = best
        changed = False
        for pos, rule in enumerate(rules):
            if rule.set_name is None:
                continue
            takers = [link for link in ordered if link.name in chosen and chosen[link.name][1] == pos]
            if len(takers) > 1:
                keep = next((t for t in takers if t.name == rule.set_name), takers[0])
                for t in takers:
                    if t is not keep:
                        excluded.add((t.name, pos))
                        changed = True
        if not changed:
            return {name: rules[pos] for name, (_, pos) in chosen.items()}
