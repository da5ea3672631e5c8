"""What a DHCPv4 lease says, as corral uses it: pyroute2's ``Lease`` read into a ``LeaseInfo`` (address,
gateway, DNS, search domains with option 119 decoded, MTU, lifetime), which the plan takes as a
``DhcpLease``. Pure: no socket, no kernel (netconf.dhcp runs the clients)."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from netconf.model import IPAddress, IPInterface
from netconf.observed import DhcpLease

FOREVER = 0xFFFFFFFF


@dataclass
class LeaseInfo:
    """What a lease says, as corral uses it."""

    address: IPInterface
    gateway: IPAddress | None = None
    nameservers: tuple[IPAddress, ...] = ()
    search: tuple[str, ...] = ()
    mtu: int | None = None
    server: str | None = None
    lease_time: int | None = None
    obtained: float = 0.0
    ends: float | None = None  # the lease's end in time.monotonic() seconds (None: it has none)

    @property
    def expires(self) -> float | None:
        """The lease's end, Unix time (for people)."""
        return None if self.lease_time is None else self.obtained + self.lease_time

    def remaining(self, now: float | None = None) -> int | None:
        if self.expires is None:
            return None
        return max(0, int(self.expires - (time.time() if now is None else now)))

    def held(self, link: str, family: int, confirmed: bool = True) -> DhcpLease:
        """The lease as the plan takes it."""
        return DhcpLease(link, family, self.address, self.gateway, self.nameservers, self.search,
                         mtu=self.mtu, expires=self.ends, confirmed=confirmed)


def lease_info(lease: Any) -> LeaseInfo:
    """Read a pyroute2 ``Lease`` (or anything with its ``ack`` dict and ``obtained``, Unix time)."""
    options: dict[str, Any] = dict(lease.ack.get("options") or {})
    mask = options.get("subnet_mask")
    prefix = 32
    if mask:
        with contextlib.suppress(ValueError):
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
    address = ipaddress.ip_interface(f"{lease.ack['yiaddr']}/{prefix}")
    routers = options.get("router") or []
    gateway: IPAddress | None = None
    with contextlib.suppress(ValueError, IndexError):
        gateway = ipaddress.ip_address(routers[0]) if routers else None
    servers: list[IPAddress] = []
    for s in options.get("name_server") or []:
        with contextlib.suppress(ValueError):
            servers.append(ipaddress.ip_address(s))
    search: list[str] = []
    domain = options.get("domain_name")
    if isinstance(domain, str) and domain.strip():
        search.extend(domain.split())
    raw_search = options.get("domain_search")
    if isinstance(raw_search, list):
        search.extend(decode_domain_search(bytes(raw_search)))
    mtu = options.get("interface_mtu")
    lease_time = options.get("lease_time")
    if lease_time is not None and (int(lease_time) < 0 or int(lease_time) >= FOREVER):
        lease_time = None
    ends = None  # the same end on the monotonic clock (as far as the wall clock can tell it)
    if lease_time is not None:
        ends = time.monotonic() + float(lease.obtained) + int(lease_time) - time.time()
    return LeaseInfo(
        address=address,
        gateway=gateway,
        nameservers=tuple(dict.fromkeys(servers)),
        search=tuple(dict.fromkeys(search)),
        mtu=int(mtu) if isinstance(mtu, int) and 68 <= mtu <= 65535 else None,
        server=options.get("server_id"),
        lease_time=int(lease_time) if lease_time is not None else None,
        obtained=float(lease.obtained),
        ends=ends,
    )


def decode_domain_search(data: bytes) -> list[str]:
    """Option 119 (RFC 3397): DNS names in wire format, with compression pointers."""
    names: list[str] = []
    pos = 0
    while pos < len(data):
        labels: list[str] = []
        cursor, end, hops = pos, None, 0
        while cursor < len(data):
            n = data[cursor]
            if n == 0:
                cursor += 1
                break
            if n & 0xC0 == 0xC0:
                if cursor + 1 >= len(data) or hops > 32:
                    return names
                if end is None:
                    end = cursor + 2
                cursor = ((n & 0x3F) << 8) | data[cursor + 1]
                hops += 1
                continue
            labels.append(data[cursor + 1 : cursor + 1 + n].decode(errors="replace"))
            cursor += 1 + n
        pos = end if end is not None else cursor
        if labels:
            names.append(".".join(labels))
    return names
