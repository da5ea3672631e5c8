"""Bond options, by their sysfs names (RancherOS's ``bond_opts``, netplan's bond ``parameters`` once
renamed): each checked and turned into the pyroute2 keyword and kernel value that create the bond."""

from __future__ import annotations

from typing import Any

from netconf.model import OptionValue
from supervisor.config.check import as_enum, as_int, as_ip_address, as_list
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath

BOND_MODES = {
    "balance-rr": 0,
    "active-backup": 1,
    "balance-xor": 2,
    "broadcast": 3,
    "802.3ad": 4,
    "balance-tlb": 5,
    "balance-alb": 6,
}
_BOND_ENUMS: dict[str, dict[str, int]] = {
    "mode": BOND_MODES,
    "xmit_hash_policy": {
        "layer2": 0,
        "layer3+4": 1,
        "layer2+3": 2,
        "encap2+3": 3,
        "encap3+4": 4,
        "vlan+srcmac": 5,
    },
    "lacp_rate": {"slow": 0, "fast": 1},
    "ad_select": {"stable": 0, "bandwidth": 1, "count": 2},
    "arp_validate": {
        "none": 0,
        "active": 1,
        "backup": 2,
        "all": 3,
        "filter": 4,
        "filter_active": 5,
        "filter_backup": 6,
    },
    "arp_all_targets": {"any": 0, "all": 1},
    "fail_over_mac": {"none": 0, "active": 1, "follow": 2},
    "primary_reselect": {"always": 0, "better": 1, "failure": 2},
}
_BOND_INTS: dict[str, tuple[int, int]] = {
    "miimon": (0, 2**31 - 1),
    "updelay": (0, 2**31 - 1),
    "downdelay": (0, 2**31 - 1),
    "arp_interval": (0, 2**31 - 1),
    "resend_igmp": (0, 255),
    "num_grat_arp": (0, 255),
    "num_unsol_na": (0, 255),
    "min_links": (0, 2**31 - 1),
    "lp_interval": (1, 2**31 - 1),
    "packets_per_slave": (0, 65535),
    "ad_actor_sys_prio": (1, 65535),
    "ad_user_port_key": (0, 1023),
    "use_carrier": (0, 1),
    "all_slaves_active": (0, 1),
    "tlb_dynamic_lb": (0, 1),
}
_BOND_KWARG = {
    "num_grat_arp": "bond_num_peer_notif",
    "num_unsol_na": "bond_num_peer_notif",
    "lacp_rate": "bond_ad_lacp_rate",
}
BOND_OPTION_NAMES = (*_BOND_ENUMS, *_BOND_INTS, "arp_ip_target", "primary")
"""Bond options by their sysfs names (as RancherOS's ``bond_opts`` and ``/sys/class/net/*/bonding``)."""


def bond_option(name: str, value: Any, path: KeyPath, problems: Problems) -> tuple[str, OptionValue] | None:
    """One bond option by sysfs name -> (pyroute2 keyword, kernel value). ``primary`` is not handled
    here (it is a reference to another link)."""
    if name in _BOND_ENUMS:
        table = _BOND_ENUMS[name]
        text = str(value).strip().lower() if not isinstance(value, bool) else ""
        if text in table:
            number = table[text]
        elif text.isdigit() and int(text) in table.values():
            number = int(text)
        else:
            as_enum(value, path, problems, table)  # not one of them: says so, with a "did you mean"
            return None
        return _BOND_KWARG.get(name, f"bond_{name}"), number
    if name in _BOND_INTS:
        low, high = _BOND_INTS[name]
        number_ = as_int(value, path, problems, low, high, strings=True)
        return None if number_ is None else (_BOND_KWARG.get(name, f"bond_{name}"), number_)
    if name == "arp_ip_target":
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        listed = as_list(items, path, problems)
        targets: list[str] = []
        for i, item in enumerate(listed or []):
            address = as_ip_address(item, (*path, i) if isinstance(value, list) else path, problems, 4)
            if address is not None:
                targets.append(str(address))
        return "bond_arp_ip_target", tuple(targets)
    problems.error(path, f"unknown bond option; expected one of: {', '.join(BOND_OPTION_NAMES)}")
    return None
