"""The unit model: a compose service, validated and normalised, plus what corral's labels say about it.

A ``Unit`` is immutable and built only by ``units.compose`` (which checks every key and names the unit
and key of each problem). Everything in it is already resolved: the environment is looked up, strings
are split, durations are nanoseconds. ``units.spec`` turns it into a Docker Engine API create body."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["system", "user"]
SCOPES: tuple[Scope, ...] = ("system", "user")
USER_DOCKERD_UNIT = "docker"  # the system unit that runs the user's dockerd (units/defaults/docker.yml)

RestartName = Literal["no", "always", "unless-stopped", "on-failure"]

UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A unit's name; it is also its container's name, so Docker's container-name rule applies."""

# Labels corral sets on every container it creates (a unit may not set them itself).
LABEL_UNIT = "io.corral.unit"
LABEL_HASH = "io.corral.config-hash"
LABEL_SPARE = "io.corral.spare"  # on a replace-mode unit's spare container (``units.plan``), "true"

# Labels a unit sets to tell corral about itself.
LABEL_SCOPE = "io.corral.scope"
LABEL_AFTER = "io.corral.after"
LABEL_BEFORE = "io.corral.before"
LABEL_ONESHOT = "io.corral.oneshot"
LABEL_CREATEONLY = "io.corral.createonly"
LABEL_RELOADCONFIG = "io.corral.reloadconfig"
LABEL_REQUIRES_MOUNT = "io.corral.requires-mount"
LABEL_RESTART_MODE = "io.corral.restart-mode"  # restart (default) | replace (a fresh spare at each exit)

CORRAL_LABELS = (LABEL_SCOPE, LABEL_AFTER, LABEL_BEFORE, LABEL_ONESHOT, LABEL_CREATEONLY, LABEL_RELOADCONFIG,
                 LABEL_REQUIRES_MOUNT, LABEL_RESTART_MODE)
RESERVED_LABELS = (LABEL_UNIT, LABEL_HASH, LABEL_SPARE)

RANCHER_DETACH = "io.rancher.os.detach"
RANCHER_ALIASES: Mapping[str, str] = {
    "io.rancher.os.scope": LABEL_SCOPE,
    "io.rancher.os.after": LABEL_AFTER,
    "io.rancher.os.before": LABEL_BEFORE,
    RANCHER_DETACH: LABEL_ONESHOT,  # inverted: detach "false" = oneshot
    "io.rancher.os.createonly": LABEL_CREATEONLY,
    "io.rancher.os.reloadconfig": LABEL_RELOADCONFIG,
}


@dataclass(frozen=True)
class RestartSpec:
    """A compose ``restart:`` value: ``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``."""

    name: RestartName = "no"
    max_retries: int | None = None  # only for on-failure; None = no limit

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries is not None:
            return f"on-failure:{self.max_retries}"
        return self.name

    @classmethod
    def parse(cls, value: object) -> RestartSpec:
        """Parse a restart value; ValueError says what is wrong. YAML's unquoted ``no`` (False) is ``no``."""
        if value is False:
            return cls("no")
        if not isinstance(value, str):
            raise ValueError(f"expected one of no, always, unless-stopped, on-failure[:N], got {value!r}")
        text = value.strip()
        if text in ("no", "always", "unless-stopped", "on-failure"):
            return cls(text)  # type: ignore[arg-type]
        if text.startswith("on-failure:"):
            count = text.removeprefix("on-failure:")
            if not re.fullmatch(r"[0-9]+", count):
                raise ValueError(f"on-failure:N needs a whole number of retries, got {count!r}")
            if int(count) < 1:
                raise ValueError("on-failure:N needs N >= 1 (use on-failure for no limit)")
            return cls("on-failure", int(count))
        raise ValueError(f"expected one of no, always, unless-stopped, on-failure[:N], got {value!r}")


@dataclass(frozen=True)
class Volume:
    """One ``volumes:`` entry. ``source`` None = an anonymous volume; an absolute path = a bind mount;
    otherwise a named volume. ``options`` are the comma-separated mode flags (``ro``, ``shared``, ...)."""

    target: str
    source: str | None = None
    options: tuple[str, ...] = ()

    def bind(self) -> str | None:
        """The ``HostConfig.Binds`` entry (None for an anonymous volume)."""
        if self.source is None:
            return None
        spec = f"{self.source}:{self.target}"
        return f"{spec}:{','.join(self.options)}" if self.options else spec


@dataclass(frozen=True)
class VolumesFrom:
    """One ``volumes_from:`` entry: another unit (``unit`` set), or any container (``container:NAME``)."""

    container: str
    unit: str | None = None
    mode: str | None = None  # ro | rw

    def api(self) -> str:
        return f"{self.container}:{self.mode}" if self.mode else self.container


@dataclass(frozen=True)
class Device:
    host: str
    container: str
    permissions: str = "rwm"


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Healthcheck:
    """Durations are nanoseconds (the Engine API's unit); None = inherit the image's value."""

    test: tuple[str, ...] | None = None
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None


@dataclass(frozen=True)
class LogConfig:
    driver: str
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Unit:
    """One unit. Equal units have equal create specs (and so equal config hashes)."""

    name: str
    image: str
    scope: Scope = "system"
    after: frozenset[str] = frozenset()
    before: frozenset[str] = frozenset()
    oneshot: bool = False
    createonly: bool = False
    reloadconfig: bool = False
    # Absolute paths that must be mount points for the unit to run (io.corral.requires-mount), sorted.
    requires_mounts: tuple[str, ...] = ()
    restart: RestartSpec = RestartSpec()
    # io.corral.restart-mode: replace: a restart starts a spare container created beforehand from the
    # same definition, in place of the one that exited (which is removed); see units.plan.
    replace: bool = False
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()  # sorted by name
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key; the unit's own labels, as given
    volumes: tuple[Volume, ...] = ()
    volumes_from: tuple[VolumesFrom, ...] = ()
    network_mode: str | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[Device, ...] = ()
    read_only: bool = False
    user: str | None = None
    working_dir: str | None = None
    tmpfs: tuple[tuple[str, str], ...] = ()  # (path, options), in the order given
    ulimits: tuple[Ulimit, ...] = ()  # sorted by name
    healthcheck: Healthcheck | None = None
    logging: LogConfig | None = None
    # Units this one needs to exist before it is created: volumes_from and service:/container: modes.
    requires: frozenset[str] = frozenset()
    # A system unit with net: none: the directory of the hosts and resolv.conf corral writes for it
    # (units.etc_files), set by the units handler; its container is then created with NetworkDisabled.
    etc_dir: str | None = None
    # Where it was defined, for messages: a file (or "config") and the key path of the unit.
    source: str = field(default="", compare=False)
    key: str = field(default="", compare=False)
    # What corral decided for it that the user did not write (the journal's info lines, status): a
    # RancherOS service without a scope label runs in the user dockerd, as RancherOS ran it.
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def env(self) -> dict[str, str]:
        return dict(self.environment)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)
