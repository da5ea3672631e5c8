"""The ``/etc/hosts`` and ``/etc/resolv.conf`` of a ``net: none`` unit, written by corral.

A system unit with ``net: none`` is created with ``NetworkDisabled: true`` (``units.spec``): dockerd
makes no libnetwork sandbox for it and runs no ``libnetwork-setkey`` prestart hook at its starts (a
re-exec of dockerd per start, which dockerd serialises: docs/benchmarks.md); runc makes the network
namespace and brings its loopback up. dockerd then mounts no hosts file and no resolv.conf (it still
writes and mounts ``/etc/hostname`` and sets the hostname), so corral gives the container the two files
dockerd's ``none`` network gave it, bound read-only from ``<state>/units-etc/<unit>/``:

- ``hosts``: dockerd's for a container without an address (``hosts_text``): localhost and the IPv6
  names, no line for the container's hostname (dockerd writes one only for an address);
- ``resolv.conf``: the host's, filtered as dockerd filters it for a network without IPv6
  (``resolv_text``): no localhost nameserver, no IPv6 nameserver, Google's two when none is left.

``EtcFiles.ensure`` writes them (atomically, in a thread) before the unit's container is created, and
before its first start after PID 1 started when they are not written yet; the restart path finds them
written and does no I/O. Pure parts first."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import structlog

from supervisor.atomic import write_atomic
from units.model import Unit

log = structlog.get_logger("units")

DIR = "units-etc"  # below corral's state directory: one directory per unit
HOSTS = "hosts"
RESOLV = "resolv.conf"
TARGETS = {HOSTS: "/etc/hosts", RESOLV: "/etc/resolv.conf"}
MAX_RESOLV = 64 * 1024  # bytes of the host's resolv.conf read

# dockerd's (libnetwork/etchosts) default content, byte for byte.
HOSTS_TEXT = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # libnetwork's when no nameserver is left


def hosts_text() -> str:
    return HOSTS_TEXT


def _dropped(address: str) -> bool:
    """A nameserver dockerd drops for a network without IPv6: localhost (127/8, ::1) or any IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.version == 6 or ip.is_loopback


def resolv_text(host: str) -> str:
    """The resolv.conf dockerd gives a ``none`` container from the host's (``host``): every line kept but
    the localhost and IPv6 ``nameserver`` lines; when no nameserver is left, 8.8.8.8 and 8.8.4.4."""
    kept: list[str] = []
    servers = 0
    for line in host.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            if _dropped(words[1]):
                continue
            servers += 1
        kept.append(line)
    if servers == 0:
        kept += [f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS]
    return "\n".join(kept).strip("\n") + "\n"


def read_host_resolv(path: Path) -> str:
    """The host's resolv.conf (at most ``MAX_RESOLV`` bytes); missing or unreadable: empty."""
    try:
        with path.open("rb") as f:
            return f.read(MAX_RESOLV).decode("utf-8", "replace")
    except OSError:
        return ""


def write_files(directory: Path, host_resolv: Path) -> None:
    """Write the unit's two files in ``directory`` (made when missing), each atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / HOSTS, hosts_text().encode())
    write_atomic(directory / RESOLV, resolv_text(read_host_resolv(host_resolv)).encode())


class EtcFiles:
    """Writes the files of the units whose body binds them (``unit.etc_dir`` set); remembers which it
    wrote since PID 1 started, so a start finds them there without I/O."""

    def __init__(self, host_resolv: Path = Path("/etc/resolv.conf")) -> None:
        self.host_resolv = host_resolv
        self._written: set[str] = set()

    async def ensure(self, unit: Unit | None, *, fresh: bool = False) -> None:
        """Write ``unit``'s files when it has any and they are not written yet (``fresh``: again, for a
        container being created: the host's resolv.conf now). An error is logged; the create or start
        then fails with dockerd's word on the missing file."""
        if unit is None or unit.etc_dir is None or (not fresh and unit.etc_dir in self._written):
            return
        try:
            await asyncio.to_thread(write_files, Path(unit.etc_dir), self.host_resolv)
        except OSError as exc:
            log.error("unit's /etc/hosts and /etc/resolv.conf not written", unit=unit.name,
                      directory=unit.etc_dir, error=str(exc))
            return
        self._written.add(unit.etc_dir)
