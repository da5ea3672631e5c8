"""Several guests on one private L2 network that never leaves this machine (issue 16's three-guest tests).

The network is a bridge inside a network namespace the test creates (``integration/netns.py``), with one
tap device per guest; every guest's QEMU runs inside that namespace (``ip netns exec``), so its tap NIC is
a port of the bridge, and its user-mode NIC (the boot NIC, DHCP from QEMU's slirp) keeps the ssh forward
on the namespace's loopback, which ssh reaches by running there too (``GuestSpec.netns``). The bridge has
no address and no route: nothing on it can reach the host or beyond, and nothing is multicast on the
host's links (the namespace has none of them). QMP and the serial console are a unix socket and pipes,
the same in any namespace. Deleting the namespace kills what still runs in it.

Each guest's second NIC (MAC ``52:54:00:c1:00:NN``) gets a static address ``198.18.16.(10+N)/24`` from its
cloud-config (``corral.network.interfaces``, matched by MAC; the boot NIC keeps DHCP, matched by its MAC
too). The guests boot in parallel (threads, each :func:`integration.guest.boot`).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from image import run as run_mod
from integration import netns
from integration.guest import Guest, GuestError, GuestSpec, SshKey, boot

LAN_PREFIX = "198.18.16"  # 198.18.0.0/15 is for benchmarks (RFC 2544): on no real network
LAN_PREFIXLEN = 24
BRIDGE = "br0"
FLEET_BOOT_TIMEOUT = float(os.environ.get("CORRAL_FLEET_BOOT_TIMEOUT", "900"))  # three TCG guests on 2 cores


def lan_mac(index: int) -> str:
    """The MAC of guest ``index``'s NIC on the private network (unique across the fleet)."""
    if not 0 <= index <= 0xFF:
        raise ValueError(f"guest index {index} out of range (0..255)")
    return f"52:54:00:c1:00:{index:02x}"


def lan_address(index: int) -> str:
    """Guest ``index``'s static address on the private network (without the prefix length)."""
    if not 0 <= index < 240:
        raise ValueError(f"guest index {index} out of range (0..239)")
    return f"{LAN_PREFIX}.{10 + index}"


def tap_name(index: int) -> str:
    return f"tap{index}"


def network_config(index: int) -> dict[str, Any]:
    """``corral.network`` for guest ``index``: DHCP on the boot NIC, the static address on the LAN NIC."""
    return {"interfaces": {
        f"mac={run_mod.nic_mac(0)}": {"dhcp": True},
        f"mac={lan_mac(index)}": {"address": f"{lan_address(index)}/{LAN_PREFIXLEN}"},
    }}


def lan_qemu_args(index: int) -> list[str]:
    """The tap NIC on the bridge (QEMU opens the tap the namespace already has; no scripts run)."""
    return ["-netdev", f"tap,id=lan,ifname={tap_name(index)},script=no,downscript=no",
            "-device", f"virtio-net-pci,netdev=lan,mac={lan_mac(index)}"]


def fleet_spec(index: int, ns: str, spec: GuestSpec) -> GuestSpec:
    """``spec`` for guest ``index`` on the LAN of namespace ``ns``: its network config merged in."""
    config = copy.deepcopy(spec.config)
    corral = config.setdefault("corral", {})
    network = corral.setdefault("network", {})
    network.setdefault("interfaces", {}).update(network_config(index)["interfaces"])
    return dataclasses.replace(spec, config=config, netns=ns,
                               qemu_args=[*spec.qemu_args, *lan_qemu_args(index)],
                               boot_timeout=max(spec.boot_timeout, FLEET_BOOT_TIMEOUT))


class Lan:
    """The namespace with the bridge and one tap per guest."""

    def __init__(self, size: int) -> None:
        self.ns = netns.create_netns()
        try:
            self.ns.ip("link", "add", BRIDGE, "type", "bridge")
            self.ns.ip("link", "set", BRIDGE, "up")
            for i in range(size):
                self.ns.ip("tuntap", "add", "dev", tap_name(i), "mode", "tap")
                self.ns.ip("link", "set", tap_name(i), "master", BRIDGE)
                self.ns.ip("link", "set", tap_name(i), "up")
        except BaseException:
            self.ns.delete()
            raise

    def delete(self) -> None:
        self.ns.delete()


class Fleet:
    """N guests on one :class:`Lan`; ``fleet[i]`` is guest i (None while it is off)."""

    def __init__(self, workdir: Path, key: SshKey, specs: Sequence[GuestSpec], out: Path) -> None:
        self.workdir = workdir
        self.key = key
        self.out = out
        self.lan = Lan(len(specs))
        self.specs = [dataclasses.replace(fleet_spec(i, self.lan.ns.name, s), out=out)
                      for i, s in enumerate(specs)]
        self.guests: list[Guest | None] = [None] * len(specs)
        self.boots = [0] * len(specs)
        self.figures: dict[str, Any] = {}  # what a test measured, for its report

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, index: int) -> Guest:
        g = self.guests[index]
        if g is None:
            raise GuestError(f"guest {index} is not running")
        return g

    def address(self, index: int) -> str:
        return lan_address(index)

    def boot(self, indices: Sequence[int] | None = None) -> list[Guest]:
        """Boot the guests ``indices`` (default: all) in parallel, each to ready."""
        wanted = list(range(len(self))) if indices is None else list(indices)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            futures = {i: pool.submit(self._boot_one, i) for i in wanted}
            errors = []
            for i, f in futures.items():
                try:
                    f.result()
                except Exception as exc:
                    errors.append(f"guest {i}: {exc}")
        if errors:
            raise GuestError("\n\n".join(errors))
        return [self[i] for i in wanted]

    def _boot_one(self, index: int) -> Guest:
        self.boots[index] += 1
        d = self.workdir / f"guest{index}"
        if self.boots[index] > 1:  # keep the earlier boot's log beside the new one
            log = d / "serial.log"
            if log.exists():
                os.replace(log, d / f"serial-boot{self.boots[index] - 1}.log")
        g = boot(d, self.specs[index], self.key)
        self.guests[index] = g
        return g

    def stopped(self, index: int) -> None:
        """Guest ``index`` is off (it powered off, or was stopped): forget it, keep its disks."""
        g = self.guests[index]
        if g is not None:
            g.stop()
        self.guests[index] = None

    def report_sections(self) -> list[tuple[str, str]]:
        return [s for g in self.guests if g is not None for s in g.report_sections()]

    def stop_all(self) -> None:
        for i in range(len(self)):
            self.stopped(i)

    def close(self) -> None:
        try:
            self.stop_all()
        finally:
            self.lan.delete()

