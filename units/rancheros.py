"""RancherOS's built-in units and what corral has instead: the one table (pure).

RancherOS's service files (rancher/os-services, ``rancher.services``) name RancherOS's own services
(its os-config.tpl.yml) in their ordering labels (``io.rancher.os.after: network``) and in
``volumes_from`` (``all-volumes``). RancherOS ignored an ordering target that was not there. In corral
such a name, when no unit of that name is configured, is one of:

- ``unit``: corral has a unit for it (``docker``: the user's dockerd; ``console``): the reference is to
  that unit when it is configured; otherwise it is ignored with a warning;
- ``phase``: corral does it in PID 1 before any unit starts (its network handler, udev's coldplug, the
  cloud-config): ``after`` it is already true and is dropped silently; ``before`` it cannot be, and is
  ignored with a warning;
- ``none``: corral has nothing like it (``ntp``, ``logrotate``): ignored with a warning.

A RancherOS volume container named in ``volumes_from`` becomes the binds it gave that corral has the
paths for (``binds``); the paths corral has not (``ros``, ``system-docker``'s binaries, RancherOS's own
directories) are left out, and a warning names them. Propagation (``:shared``) is dropped: corral's
mounts are private."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from units.model import Volume

Kind = Literal["unit", "phase", "none"]


@dataclass(frozen=True)
class Builtin:
    name: str
    kind: Kind
    instead: str  # what corral does instead, for messages and docs
    unit: str | None = None  # kind "unit": corral's unit
    binds: tuple[Volume, ...] = ()  # a volume container: the binds corral gives instead
    skipped: tuple[str, ...] = ()  # a volume container: its paths corral has not
    propagation: bool = False  # a volume container whose binds were shared in RancherOS


def _binds(*specs: str) -> tuple[Volume, ...]:
    out = []
    for spec in specs:
        source, _, target = spec.partition(":")
        out.append(Volume(target or source, source))
    return tuple(out)


_COMMAND = _binds()
_COMMAND_SKIPPED = ("/usr/bin/ros", "/usr/bin/system-docker", "/usr/bin/system-docker-runc")
_SYSTEM = _binds(
    "/dev:/host/dev", "/etc/hosts", "/etc/resolv.conf",
    "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt.rancher",
    "/lib/firmware", "/lib/modules", "/run", "/var/log", "/var/run",
)  # fmt: skip
_SYSTEM_SKIPPED = (
    "/etc/docker", "/etc/logrotate.d", "/etc/selinux", "/usr/share/ros", "/var/lib/boot2docker",
    "/var/lib/rancher", "/var/lib/rancher/cache", "/var/lib/rancher/conf", "/var/lib/waagent",
)  # fmt: skip
_USER = _binds("/home", "/opt", "/var/lib/kubelet")
_MEDIA = _binds("/media", "/mnt")
_DATA = _binds("/var/lib/user-docker:/var/lib/docker")
_DATA_SKIPPED = ("/var/lib/m-user-docker",)

_ALREADY = "corral starts units after it"

BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("docker", "unit", "corral's user dockerd (the unit 'docker')", unit="docker"),
    Builtin("console", "unit", "corral's console (the unit 'console')", unit="console"),
    Builtin("network", "phase", f"corral's network handler (netconf) runs in PID 1; {_ALREADY}"),
    Builtin("udev", "phase", f"corral handles udev events in PID 1; {_ALREADY}"),
    Builtin("udev-cold", "phase", f"corral's coldplug runs in PID 1; {_ALREADY}"),
    Builtin("cloud-init", "phase", f"corral reads the cloud-config in PID 1; {_ALREADY}"),
    Builtin("cloud-init-execute", "phase", f"corral applies the cloud-config in PID 1; {_ALREADY}"),
    Builtin("bootstrap", "phase", f"corral's boot phases run in PID 1; {_ALREADY}"),
    Builtin("syslog", "phase", f"corral's journal runs in PID 1; {_ALREADY}"),
    Builtin("acpid", "phase", f"corral handles ACPI power events in PID 1; {_ALREADY}"),
    Builtin("preload-user-images", "none",
            "corral preloads images into the system dockerd only (/var/lib/corral/preload/)"),
    Builtin("ntp", "none", "corral runs no NTP service: add one as a unit"),
    Builtin("logrotate", "none", "corral's journal rotates its own files (corral.log)"),
    Builtin("system-cron", "none", "corral runs no cron service"),
    Builtin("subscriber", "none", "corral has no update subscriber"),
    Builtin("command-volumes", "none", "corral has no ros or system-docker binaries to share",
            binds=_COMMAND, skipped=_COMMAND_SKIPPED),
    Builtin("system-volumes", "none", "the same host paths, bound directly",
            binds=_SYSTEM, skipped=_SYSTEM_SKIPPED),
    Builtin("user-volumes", "none", "the same host paths, bound directly", binds=_USER),
    Builtin("media-volumes", "none", "the same host paths, bound directly (not shared)", binds=_MEDIA,
            propagation=True),
    Builtin("container-data-volumes", "none", "the same host paths, bound directly",
            binds=_DATA, skipped=_DATA_SKIPPED),
    Builtin("all-volumes", "none", "the same host paths, bound directly",
            binds=(*_DATA, *_COMMAND, *_MEDIA, *_USER, *_SYSTEM),
            skipped=(*_DATA_SKIPPED, *_COMMAND_SKIPPED, *_SYSTEM_SKIPPED), propagation=True),
)}  # fmt: skip

VOLUME_CONTAINERS = frozenset(name for name, b in BUILTINS.items() if name.endswith("-volumes"))


def ordering_note(name: str, before: bool) -> str | None:
    """The warning for an ordering target ``name`` that is a RancherOS built-in and not a configured
    unit (None: dropped silently, as it already holds). ``before``: the unit is to start before it."""
    builtin = BUILTINS[name]
    if builtin.kind == "phase" and not before:
        return None
    if builtin.kind == "unit":
        return f"its equivalent, {builtin.instead}, is not configured here: ordering ignored"
    if builtin.kind == "phase":
        return f"{builtin.instead}: a unit cannot start before it; ordering ignored"
    return f"{builtin.instead}: ordering ignored"


OS_SERVICES: frozenset[str] = frozenset((
    "alpine", "amazon-ecs-agent", "amazon-metadata", "centos", "container-cron", "debian", "fedora",
    "hyperv-vm-tools", "kernel-extras", "kernel-headers", "kernel-headers-system-docker", "modem-manager",
    "nvidia-driver", "open-iscsi", "open-vm-tools", "pingan-amc", "qemu-guest-agent", "rancher-server",
    "rancher-server-stable", "ubuntu", "virtualbox-tools", "volume-cifs", "volume-efs", "volume-nfs",
    "waagent", "zfs",
))
"""The services of RancherOS's service repository (rancher/os-services at f0e2da8, one ``X/NAME.yml``
each; its ``docker-VERSION`` engines are ``rancher.docker.engine``'s, see supervisor/compat.py), which
``services_include: {NAME: true}`` fetched and ran. corral ships none of them: including one that no
unit directory has is a warning (nothing runs), not the error a misspelt name of corral's own is."""


def os_service(name: str) -> bool:
    """Whether ``name`` is a RancherOS os-services service (or one of its docker engines)."""
    return name in OS_SERVICES or name.startswith("docker-")
