"""Matching precedence: exact name > MAC > glob by specificity > order in the file; one rule per link;
netplan's all-fields match (with driver); set-name."""

from __future__ import annotations

from netconf.match import literal_chars, match, rank
from netconf.model import Interface, Match
from netconf.observed import Link


def rule(ident: str, order: int, **match_fields: object) -> Interface:
    return Interface(id=ident, key=ident, match=Match(**match_fields), order=order)  # type: ignore[arg-type]


ETH0 = Link(2, "eth0", mac="52:54:00:aa:00:01", driver="virtio_net")
ETH1 = Link(3, "eth1", mac="52:54:00:aa:00:02", driver="e1000")
ETH10 = Link(4, "eth10", mac="52:54:00:aa:00:03", driver="e1000")
LO = Link(1, "lo")


def chosen(rules: list[Interface], links: list[Link]) -> dict[str, str]:
    return {name: r.id for name, r in match(rules, links).items()}


def test_exact_name_beats_mac_beats_glob_regardless_of_order() -> None:
    rules = [
        rule("glob", 0, name="eth*"),
        rule("mac", 1, mac="52:54:00:aa:00:01"),
        rule("exact", 2, name="eth0"),
    ]
    assert chosen(rules, [ETH0]) == {"eth0": "exact"}
    assert chosen(rules[:2], [ETH0]) == {"eth0": "mac"}
    assert chosen(rules[:1], [ETH0]) == {"eth0": "glob"}


def test_more_literal_characters_win_among_globs() -> None:
    rules = [rule("eth*", 0, name="eth*"), rule("eth1*", 1, name="eth1*"), rule("*", 2, name="*")]
    assert chosen(rules, [ETH0, ETH1, ETH10]) == {"eth0": "eth*", "eth1": "eth1*", "eth10": "eth1*"}
    assert literal_chars("eth1*") == 4 and literal_chars("en[ops]?s*") == 3


def test_equal_rank_goes_to_the_rule_first_in_the_file() -> None:
    rules = [rule("second", 1, name="e*"), rule("first", 0, name="*0")]
    assert chosen(rules, [ETH0]) == {"eth0": "first"}
    assert chosen(list(reversed(rules)), [ETH0]) == {"eth0": "first"}


def test_a_link_gets_one_rule_and_a_glob_rule_many_links() -> None:
    result = match([rule("all", 0, name="eth*")], [ETH1, ETH0, LO])
    assert list(result) == ["eth0", "eth1"]  # ifindex order; lo is never globbed


def test_lo_only_by_its_exact_name() -> None:
    assert chosen([rule("star", 0, name="*")], [LO]) == {}
    assert chosen([rule("lo", 0, name="lo")], [LO]) == {"lo": "lo"}


def test_mac_match_is_case_insensitive_and_may_glob() -> None:
    upper = Link(2, "eth0", mac="52:54:00:AA:00:01")
    assert chosen([rule("m", 0, mac="52:54:00:aa:00:01")], [upper]) == {"eth0": "m"}
    rules = [rule("vendor", 0, mac="52:54:00:*"), rule("nic", 1, mac="52:54:00:aa:00:0[12]")]
    assert chosen(rules, [ETH0, ETH1, ETH10]) == {"eth0": "nic", "eth1": "nic", "eth10": "vendor"}
    assert rank(rules[0], ETH0) is not None and rank(rules[1], ETH0) > rank(rules[0], ETH0)  # type: ignore[operator]


def test_mac_and_driver_never_match_links_that_copy_a_mac() -> None:
    vlan = Link(9, "eth0.100", mac=ETH0.mac, kind="vlan", driver="802.1Q VLAN Support")
    bond = Link(10, "bond0", mac=ETH0.mac, kind="bond", driver="bonding")
    rules = [rule("by-mac", 0, mac=ETH0.mac), rule("by-driver", 1, drivers=("*",))]
    assert chosen(rules, [ETH0, vlan, bond]) == {"eth0": "by-mac"}


def test_netplan_match_needs_every_field() -> None:
    rules = [rule("intel", 0, name="eth*", drivers=("e1000", "ixgbe"))]
    assert chosen(rules, [ETH0, ETH1, ETH10]) == {"eth1": "intel", "eth10": "intel"}
    both = [rule("both", 0, name="eth1", mac="52:54:00:aa:00:01")]
    assert chosen(both, [ETH0, ETH1]) == {}


def test_driver_plus_name_is_more_specific_than_the_name_glob_alone() -> None:
    rules = [rule("name", 0, name="eth*"), rule("name+driver", 1, name="eth*", drivers=("e1000",))]
    assert chosen(rules, [ETH0, ETH1]) == {"eth0": "name", "eth1": "name+driver"}


def test_set_name_matches_the_renamed_link_and_one_link_only() -> None:
    renamer = Interface(id="lan", key="lan", match=Match(mac="52:54:00:aa:00:0*"), set_name="lan0")
    assert chosen([renamer], [ETH0, ETH1]) == {"eth0": "lan"}  # the lowest ifindex
    renamed = Link(3, "lan0", mac="52:54:00:aa:00:02")
    assert chosen([renamer], [ETH0, renamed]) == {"lan0": "lan"}  # the one already renamed wins
    by_name = Interface(id="x", key="x", match=Match(name="eth1"), set_name="wan0")
    assert chosen([by_name], [Link(3, "wan0")]) == {"wan0": "x"}


def test_a_link_left_by_a_set_name_rule_falls_back_to_its_next_best_rule() -> None:
    renamer = Interface(id="lan", key="lan", match=Match(name="eth*"), set_name="lan0", order=0)
    rest = rule("rest", 1, name="e*")
    assert chosen([renamer, rest], [ETH0, ETH1]) == {"eth0": "lan", "eth1": "rest"}
