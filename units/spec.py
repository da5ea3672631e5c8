"""A unit as a Docker Engine API ``POST /containers/create`` body, and its config hash.

The container's name is the unit's name (a query parameter of the create call, not part of the body).
Every container gets Docker's restart policy ``no`` (corral owns restarts) and two labels:
``io.corral.unit=<name>`` (how corral finds its containers) and ``io.corral.config-hash`` (the SHA-256
of the canonical body, without that label, plus the image id when known). A container is recreated
when, and only when, its hash differs from the unit's: the same definition always gives the same hash,
whatever the order of keys in the YAML."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from units.etc_files import HOSTS, RESOLV, TARGETS
from units.model import LABEL_HASH, LABEL_SPARE, LABEL_UNIT, Unit

HASH_VERSION = 1
"""Part of every hash: bump it only when a change here must recreate every unit's container."""


def container_name(unit: Unit) -> str:
    return unit.name


def _etc_binds(unit: Unit) -> list[str]:
    """A ``net: none`` unit with its files (``unit.etc_dir``): the read-only binds of its hosts and
    resolv.conf, but where the unit binds that path itself."""
    if unit.etc_dir is None or unit.network_mode != "none":
        return []
    own = {v.target.rstrip("/") for v in unit.volumes}
    return [f"{unit.etc_dir}/{name}:{TARGETS[name]}:ro"
            for name in (HOSTS, RESOLV) if TARGETS[name] not in own]


def create_body(unit: Unit) -> dict[str, Any]:
    """The canonical create body, without the config-hash label. Keys absent from the unit are left
    out (Docker's defaults apply), so adding support for a key does not change existing hashes.

    A ``net: none`` unit with ``etc_dir`` (a system unit: ``units.etc_files``) gets ``NetworkDisabled``
    (no libnetwork sandbox, no prestart hook; ``NetworkMode`` stays ``none``, as inspect shows it) and
    binds of the hosts and resolv.conf corral writes for it."""
    body: dict[str, Any] = {"Image": unit.image}
    etc_binds = _etc_binds(unit)
    if unit.etc_dir is not None and unit.network_mode == "none":
        body["NetworkDisabled"] = True
    if unit.entrypoint is not None:
        body["Entrypoint"] = list(unit.entrypoint)
    if unit.command is not None:
        body["Cmd"] = list(unit.command)
    if unit.environment:
        body["Env"] = [f"{k}={v}" for k, v in unit.environment]
    if unit.user is not None:
        body["User"] = unit.user
    if unit.working_dir is not None:
        body["WorkingDir"] = unit.working_dir
    anonymous: dict[str, dict[str, Any]] = {v.target: {} for v in unit.volumes if v.source is None}
    if anonymous:
        body["Volumes"] = anonymous
    body["Labels"] = {**dict(unit.labels), LABEL_UNIT: unit.name}
    if unit.healthcheck is not None:
        hc = unit.healthcheck
        health: dict[str, Any] = {}
        if hc.test is not None:
            health["Test"] = list(hc.test)
        for key, value in (
            ("Interval", hc.interval),
            ("Timeout", hc.timeout),
            ("StartPeriod", hc.start_period),
            ("StartInterval", hc.start_interval),
            ("Retries", hc.retries),
        ):
            if value is not None:
                health[key] = value
        body["Healthcheck"] = health

    host: dict[str, Any] = {"RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}
    binds = [b for v in unit.volumes if (b := v.bind()) is not None] + etc_binds
    if binds:
        host["Binds"] = binds
    if unit.volumes_from:
        host["VolumesFrom"] = [v.api() for v in unit.volumes_from]
    for key, mode in (
        ("NetworkMode", unit.network_mode),
        ("PidMode", unit.pid),
        ("IpcMode", unit.ipc),
        ("UTSMode", unit.uts),
    ):
        if mode is not None:
            host[key] = mode
    if unit.privileged:
        host["Privileged"] = True
    if unit.read_only:
        host["ReadonlyRootfs"] = True
    if unit.cap_add:
        host["CapAdd"] = list(unit.cap_add)
    if unit.cap_drop:
        host["CapDrop"] = list(unit.cap_drop)
    if unit.devices:
        host["Devices"] = [
            {"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.permissions}
            for d in unit.devices
        ]
    if unit.tmpfs:
        host["Tmpfs"] = dict(unit.tmpfs)
    if unit.ulimits:
        host["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in unit.ulimits]
    if unit.logging is not None:
        host["LogConfig"] = {"Type": unit.logging.driver, "Config": dict(unit.logging.options)}
    body["HostConfig"] = host
    return body


def canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def config_hash(unit: Unit, image_id: str | None = None) -> str:
    """SHA-256 (hex) of the canonical create body and the image id (when known)."""
    digest = hashlib.sha256()
    digest.update(canonical({"v": HASH_VERSION, "body": create_body(unit), "image": image_id or ""}))
    return digest.hexdigest()


def create_request(unit: Unit, image_id: str | None = None) -> dict[str, Any]:
    """The body to send: ``create_body`` plus the config-hash label."""
    body = create_body(unit)
    body["Labels"][LABEL_HASH] = config_hash(unit, image_id)
    return body


def spare_request(unit: Unit, image_id: str | None = None) -> dict[str, Any]:
    """The body of a replace-mode unit's spare container: ``create_request`` (the same config hash) plus
    the ``io.corral.spare`` label."""
    body = create_request(unit, image_id)
    body["Labels"][LABEL_SPARE] = "true"
    return body
