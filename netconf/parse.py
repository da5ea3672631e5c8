"""The network part of a whole config: the RancherOS parser or the netplan v2 parser, into the one model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from netconf import model, netplan, rancher
from netconf.model import Format, Interface, NetworkConfig, Parsed, default_rules
from netconf.netplan import parse_netplan
from netconf.rancher import parse_rancher
from supervisor.config.check import SchemaNode
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath

NETPLAN_KEY: KeyPath = ("network",)
RANCHER_KEY: KeyPath = ("corral", "network")

SCHEMA_DEFS: dict[str, SchemaNode] = {**rancher.SCHEMA_DEFS, **model.SCHEMA_DEFS, **netplan.SCHEMA_DEFS}
"""schema.json's definitions of the network keys, made from the parsers' key tables: ``corral.network``
is ``network_rancher``, the top-level ``network`` is ``network_netplan``. schema.json holds them as
``python -m supervisor.gen_schema`` writes them; they are edited here, never there."""


def parse_config(config: Mapping[str, Any], source: str | Callable[[str], str] = "config") -> Parsed:
    """The network part of a whole (merged) corral config.

    RancherOS-style settings live in ``corral.network`` (``rancher.network`` is folded into it by the
    config loader). A netplan v2 document is the top-level ``network:`` key, as in cloud-init's
    network-config v2 and in netplan's own files, so a file from ``/etc/netplan`` can be dropped into
    ``cloud-config.d/`` as it is. Interfaces may come from one of the two, not both;
    ``corral.network.dns``, ``pre_cmds``, ``post_cmds``, ``dhcp_timeout`` and ``exclusive`` apply to
    either. ``source`` names the file of each error: a string, or a function of the dotted key (the
    config store's provenance)."""
    problems = Problems(source)
    corral = config.get("corral")
    raw_rancher = corral.get("network") if isinstance(corral, Mapping) else None
    raw_netplan = config.get("network")
    settings = parse_rancher(raw_rancher, RANCHER_KEY, problems)
    netplan_rules: tuple[Interface, ...] | None = None
    disabled = False
    if raw_netplan is not None:
        result = parse_netplan(raw_netplan, NETPLAN_KEY, problems, exclusive=settings.exclusive)
        netplan_rules, disabled = result.interfaces, result.disabled
        if settings.interfaces and (netplan_rules or disabled):
            problems.error(
                NETPLAN_KEY,
                "interfaces are given both here (netplan) and in corral.network.interfaces (RancherOS "
                "format): use one of the two",
            )
    if problems.errors:
        return Parsed(None, tuple(problems.errors), tuple(problems.warnings))
    fmt: Format
    if disabled:
        rules: tuple[Interface, ...] = ()
        fmt = "disabled"
    elif netplan_rules:
        rules, fmt = netplan_rules, "netplan"
    elif settings.interfaces:
        rules, fmt = settings.interfaces, "rancher"
    else:
        rules, fmt = default_rules(settings.exclusive), "default"
    net = NetworkConfig(
        interfaces=rules,
        dns=settings.dns,
        pre_cmds=settings.pre_cmds,
        post_cmds=settings.post_cmds,
        dhcp_timeout=settings.dhcp_timeout,
        format=fmt,
    )
    return Parsed(net, (), tuple(problems.warnings))
