"""A compose service checked key by key and turned into a ``Unit`` (pure).

``parse_service`` takes one service's body as written (from the config or a unit file) and reports
every problem into the ``Problems`` it is given, under the unit's key path (``("image",)``): an
unsupported compose key with a hint, a bad value with what was expected. The keys that hold mounts
(``volumes``, ``volumes_from``, ``tmpfs``) are read by ``units.compose_volumes``, the labels (and
corral's ``io.corral.*`` labels) by ``units.compose_labels``, the environment by ``units.environment``."""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from typing import Any

from supervisor.config.check import (
    as_absolute,
    as_bool,
    as_int,
    as_str,
    as_strings,
    check_keys,
    describe,
)
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from units import environment as env_mod
from units.compose_labels import corral_labels, parse_labels, rancheros_scope
from units.compose_volumes import parse_tmpfs, parse_volumes, parse_volumes_from
from units.interpolate import Substitution, interpolate
from units.model import (
    LABEL_RESTART_MODE,
    UNIT_NAME,
    Device,
    Healthcheck,
    LogConfig,
    RestartSpec,
    Ulimit,
    Unit,
    Volume,
)

RANCHER_PREFIX = "io.rancher.os."

HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable")
SUPPORTED_KEYS = (
    "image", "command", "entrypoint", "environment", "labels", "volumes", "volumes_from", "net",
    "network_mode", "pid", "ipc", "uts", "privileged", "cap_add", "cap_drop", "devices", "read_only",
    "restart", "user", "working_dir", "tmpfs", "ulimits", "healthcheck", "log_driver", "log_opt", "logging",
)  # fmt: skip

HINTS = {
    "depends_on": "order units with the label io.corral.after (or io.corral.before)",
    "container_name": "the unit's name is its container's name",
    "build": "corral runs images: build them elsewhere and give image",
    "links": "links are not supported: use a network, or net: host",
}

ULIMIT_NAMES = frozenset((
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
))  # fmt: skip
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
}  # fmt: skip
_CAPABILITY = re.compile(r"(CAP_)?[A-Z0-9_]+", re.IGNORECASE)


def parse_duration(value: Any) -> int:
    """A compose duration (``1m30s``, ``500ms``) in nanoseconds. ValueError says what is wrong."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration with a unit such as '30s' or '1m30s', got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None:
            raise ValueError(
                f"bad duration {value!r}: use a number and a unit (ns, us, ms, s, m, h), e.g. '30s'"
            )
        total += float(m.group(1)) * _DURATION_NS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("empty duration")
    return round(total)


# The strings RancherOS's compose took for a boolean, quoted or not, in any case (libcompose decoded
# services with candiedyaml, whose bool resolver has these, and did not validate them: ParseOptions
# Validate false in rancher/os pkg/compose/project.go).
COMPOSE_BOOLEANS = {
    "true": True, "false": False, "yes": True, "no": False, "y": True, "n": False, "on": True, "off": False,
}  # fmt: skip


def compose_bool(p: Problems, value: Any, path: KeyPath) -> bool | None:
    """A boolean key of a service: YAML's true/false, or one of libcompose's strings ("true", "yes", "on",
    ... in any case)."""
    if isinstance(value, str) and value.strip().lower() in COMPOSE_BOOLEANS:
        return COMPOSE_BOOLEANS[value.strip().lower()]
    if isinstance(value, bool):
        return value
    p.error(path, f"expected a boolean (true, false, or a string: yes, no, on, off), got {describe(value)}")
    return None


def _argv(p: Problems, value: Any, path: KeyPath, empty: tuple[str, ...]) -> tuple[str, ...] | None:
    """A command or entrypoint: a string (split like a shell would, but never run by one) or a list."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            p.error(path, f"cannot split {value!r}: {exc}")
            return None
        return tuple(words) or empty
    if isinstance(value, list):
        out: list[str] = []
        for i, item in enumerate(value):
            text = as_str(item, (*path, i), p, numbers=True)
            if text is not None:
                out.append(text)
        return (tuple(out) or empty) if len(out) == len(value) else None
    p.error(path, f"expected a string or a list of strings, got {describe(value)}")
    return None


def parse_service(
    name: str,
    body: Any,
    environment: Mapping[str, str],
    p: Problems,
    *,
    source: str = "",
    key: str = "",
    known: Collection[str] | None = None,
    defaults: Mapping[str, str] | None = None,
    rancheros: bool = False,
) -> Unit | None:
    """Check one compose service and build its Unit (pure). Problems go to ``p``, whose key paths are
    under the unit (``("image",)``); the Unit is None when there is any error (warnings are kept in
    ``p``). ``$VAR`` in values is replaced from ``environment`` and ``defaults`` (``units.interpolate``);
    ``known``, the names of every unit configured, lets references to RancherOS's built-in units that are
    not configured resolve (``units.rancheros``). ``rancheros``: the service is RancherOS's by where it
    came from (a ``services_include`` URL, a RancherOS os-services file); so is one with an
    ``io.rancher.os.*`` label or RancherOS's variables (it then runs where RancherOS ran it)."""
    before = p.count()
    if not isinstance(body, dict):
        p.error((), f"a unit is a map of compose keys, got {describe(body)}")
        return None
    body = _without_stray_variables(p, body)
    variables = Substitution(name, environment, defaults or {})
    body = interpolate(body, variables, p)
    check_keys(body, (), p, SUPPORTED_KEYS, hints=HINTS, extensions=True)
    fields: dict[str, Any] = {}

    image = body.get("image")
    if image is None:
        p.error(("image",), f"unit {name!r} has no image")
    elif (text := as_str(image, ("image",), p)) is not None:
        if not text.strip() or any(ch.isspace() for ch in text):
            p.error(("image",), f"bad image reference {text!r}")
        fields["image"] = text

    if "command" in body:
        fields["command"] = _argv(p, body["command"], ("command",), ())
    if "entrypoint" in body:
        fields["entrypoint"] = _argv(p, body["entrypoint"], ("entrypoint",), ("",))

    fields["environment"] = env_mod.resolve(name, body.get("environment"), environment, ("environment",), p)

    labels = parse_labels(p, body.get("labels"))
    fields["labels"] = tuple(sorted(labels.items()))
    fields.update(corral_labels(p, name, labels, known))
    rancheros = (rancheros or any(k.startswith(RANCHER_PREFIX) for k in labels)
                 or bool(variables.used_defaults))
    for attr, value in rancheros_scope(p, name, labels, rancheros, known).items():
        if attr != "after":
            fields[attr] = value
        elif not value & fields.get("before", frozenset()):  # ordered before docker: no cycle made here
            fields[attr] = fields.get(attr, frozenset()) | value

    if "restart" in body:
        try:
            fields["restart"] = RestartSpec.parse(body["restart"])
        except ValueError as exc:
            p.error(("restart",), str(exc))
    if fields.get("replace") and fields.get("restart", RestartSpec()).name == "no":
        p.error(("labels", LABEL_RESTART_MODE),
                f"{LABEL_RESTART_MODE}: replace needs a restart policy that restarts (restart: always, "
                "unless-stopped or on-failure); with restart: no the spare would never be used")

    volumes, tmpfs_from_volumes = parse_volumes(p, body.get("volumes"))
    requires: set[str] = set()
    builtin_binds: list[Volume] = []
    fields["volumes_from"] = parse_volumes_from(
        p, name, body.get("volumes_from"), requires, known, builtin_binds
    )

    if "net" in body and "network_mode" in body:
        p.error(("net",), "give net or network_mode, not both")
    mode_key = "network_mode" if "network_mode" in body else "net"
    fields["network_mode"] = _mode(p, name, body.get(mode_key), (mode_key,), requires, network=True)
    fields["pid"] = _mode(p, name, body.get("pid"), ("pid",), requires, allowed=("host",))
    fields["ipc"] = _mode(
        p, name, body.get("ipc"), ("ipc",), requires, allowed=("host", "private", "shareable", "none")
    )
    fields["uts"] = _mode(p, name, body.get("uts"), ("uts",), set(), allowed=("host",), containers=False)
    fields["requires"] = frozenset(requires)

    for flag in ("privileged", "read_only"):
        if flag in body:
            fields[flag] = compose_bool(p, body[flag], (flag,))
    for caps in ("cap_add", "cap_drop"):
        if caps in body:
            fields[caps] = _capabilities(p, body[caps], (caps,))
    if "devices" in body:
        fields["devices"] = _devices(p, body["devices"])
    if "user" in body:
        fields["user"] = as_str(body["user"], ("user",), p, numbers=True)
    if "working_dir" in body:
        fields["working_dir"] = as_absolute(body["working_dir"], ("working_dir",), p)
    fields["tmpfs"] = (*parse_tmpfs(p, body.get("tmpfs")), *tmpfs_from_volumes)
    fields["volumes"] = _with_binds(volumes, builtin_binds, {path for path, _ in fields["tmpfs"]})
    if "ulimits" in body:
        fields["ulimits"] = _ulimits(p, body["ulimits"])
    if "healthcheck" in body:
        fields["healthcheck"] = _healthcheck(p, body["healthcheck"])
    fields["logging"] = _logging(p, body)

    if p.count() > before:
        return None
    clean = {k: v for k, v in fields.items() if v is not None}
    return Unit(name=name, source=source, key=key, **clean)


_VARIABLE_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


def _without_stray_variables(p: Problems, body: dict[Any, Any]) -> dict[Any, Any]:
    """The service without its keys that are written like environment variables (``CATTLE_HOST_LABELS:``
    one level too high, under an ``environment:`` left empty: RancherOS's own docs had it so). No compose
    key is upper case, so such a key is no typo of one: RancherOS's compose (libcompose, unknown keys
    ignored) ran the service without it, and so does corral, with a warning naming it."""
    stray = [k for k in body if isinstance(k, str) and _VARIABLE_KEY.fullmatch(k)]
    for k in stray:
        p.warn((k,), f"{k} is not a compose key but looks like an environment variable: ignored, as "
                     "RancherOS's compose ignored it; to set it, indent it under environment:")
    return {k: v for k, v in body.items() if k not in stray} if stray else body


def _with_binds(volumes: tuple[Volume, ...], binds: list[Volume], tmpfs: set[str]) -> tuple[Volume, ...]:
    """The unit's volumes, then the binds of RancherOS volume containers for targets not taken yet (a
    unit's own volume or tmpfs wins over one from volumes_from, as in Docker)."""
    taken = {v.target for v in volumes} | tmpfs
    out = list(volumes)
    for vol in binds:
        if vol.target not in taken:
            taken.add(vol.target)
            out.append(vol)
    return tuple(out)


def _mode(
    p: Problems,
    name: str,
    value: Any,
    path: KeyPath,
    requires: set[str],
    *,
    allowed: tuple[str, ...] = (),
    network: bool = False,
    containers: bool = True,
) -> str | None:
    """net/network_mode, pid, ipc, uts. ``service:UNIT`` refers to a unit (and orders after it)."""
    if value is None:
        return None
    text = as_str(value, path, p)
    if text is None or text == "":
        return None
    kind, sep, ref = text.partition(":")
    if containers and kind in ("container", "service") and ref:
        if not UNIT_NAME.fullmatch(ref) or ref == name:
            p.error(path, f"bad {path[0]} {text!r}: name another unit or container")
            return None
        if kind == "service":
            requires.add(ref)
        return f"container:{ref}"
    if network and (text in ("host", "bridge", "none", "default") or (not sep and UNIT_NAME.fullmatch(text))):
        return text
    if text in allowed:
        return text
    choices = ["host", "bridge", "none", "NETWORK"] if network else list(allowed)
    if containers:
        choices += ["service:UNIT", "container:NAME"]
    p.error(path, f"bad {path[0]} {text!r}: expected one of {', '.join(choices)}")
    return None


def _capabilities(p: Problems, value: Any, path: KeyPath) -> tuple[str, ...] | None:
    items = as_strings(value, path, p)
    if items is None:
        return None
    out: set[str] = set()
    for i, cap in enumerate(items):
        if not _CAPABILITY.fullmatch(cap):
            p.error((*path, i), f"bad capability {cap!r}")
        else:
            out.add(cap.upper())
    return tuple(sorted(out))


def _devices(p: Problems, value: Any) -> tuple[Device, ...] | None:
    items = as_strings(value, ("devices",), p)
    if items is None:
        return None
    out: list[Device] = []
    for i, text in enumerate(items):
        parts = text.split(":")
        host = parts[0]
        container, perms = host, "rwm"
        if len(parts) == 2:
            if parts[1].startswith("/"):
                container = parts[1]
            else:
                perms = parts[1]
        elif len(parts) == 3:
            container, perms = parts[1], parts[2]
        elif len(parts) > 3:
            host = ""
        if not host.startswith("/") or not container.startswith("/"):
            p.error(
                ("devices", i), f"bad device {text!r}: expected /HOST/PATH[:/CONTAINER/PATH][:PERMISSIONS]"
            )
        elif not perms or set(perms) - set("rwm") or len(set(perms)) != len(perms):
            p.error(("devices", i), f"bad device permissions {perms!r}: some of r, w, m")
        else:
            out.append(Device(host, container, perms))
    return tuple(out)


def _ulimits(p: Problems, value: Any) -> tuple[Ulimit, ...] | None:
    if not isinstance(value, dict):
        p.error(
            ("ulimits",), f"expected a map of limit name to a number or {{soft, hard}}, got {describe(value)}"
        )
        return None
    out: list[Ulimit] = []
    for k, v in value.items():
        path: KeyPath = ("ulimits", str(k))
        if k not in ULIMIT_NAMES:
            p.error(path, f"unknown ulimit {k!r}: expected one of {', '.join(sorted(ULIMIT_NAMES))}")
            continue
        if isinstance(v, dict):
            extra = set(v) - {"soft", "hard"}
            if extra or "soft" not in v or "hard" not in v:
                p.error(path, "expected {soft: N, hard: N}")
                continue
            soft, hard = v["soft"], v["hard"]
        else:
            soft = hard = v
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= -1 for x in (soft, hard)):
            p.error(path, f"ulimit {k} must be whole numbers (-1 = unlimited), got {v!r}")
            continue
        if hard != -1 and (soft == -1 or soft > hard):
            p.error(path, f"ulimit {k}: the soft limit {soft} is above the hard limit {hard}")
            continue
        out.append(Ulimit(k, soft, hard))
    return tuple(sorted(out, key=lambda u: u.name))


def _healthcheck(p: Problems, value: Any) -> Healthcheck | None:
    if not isinstance(value, dict):
        p.error(
            ("healthcheck",), f"expected a map (test, interval, timeout, retries, ...), got {describe(value)}"
        )
        return None
    before = p.count()
    check_keys(value, ("healthcheck",), p, HEALTHCHECK_KEYS)
    ok = p.count() == before
    test: tuple[str, ...] | None = None
    raw = value.get("test")
    if isinstance(raw, str):
        test = ("CMD-SHELL", raw)
    elif isinstance(raw, list):
        items = as_strings(raw, ("healthcheck", "test"), p)
        if items is None:
            ok = False
        elif not items or items[0] not in ("NONE", "CMD", "CMD-SHELL"):
            p.error(("healthcheck", "test"), "a test list starts with CMD, CMD-SHELL or NONE")
            ok = False
        else:
            test = tuple(items)
    elif raw is not None:
        p.error(("healthcheck", "test"), f"expected a string or a list, got {describe(raw)}")
        ok = False
    if "disable" in value:
        disable = as_bool(value["disable"], ("healthcheck", "disable"), p)
        if disable:
            if test not in (None, ("NONE",)):
                p.error(("healthcheck", "disable"), "disable: true and a test cannot both be given")
                ok = False
            test = ("NONE",)
    durations: dict[str, int] = {}
    for k in ("interval", "timeout", "start_period", "start_interval"):
        if k in value:
            try:
                durations[k] = parse_duration(value[k])
            except ValueError as exc:
                p.error(("healthcheck", k), str(exc))
                ok = False
    retries = value.get("retries")
    if retries is not None and as_int(retries, ("healthcheck", "retries"), p, 0) is None:
        ok = False
    if not ok:
        return None
    return Healthcheck(test=test, retries=retries, **durations)


def _logging(p: Problems, body: Mapping[str, Any]) -> LogConfig | None:
    if "logging" in body and ("log_driver" in body or "log_opt" in body):
        p.error(("logging",), "give logging, or log_driver/log_opt, not both")
        return None
    if "logging" in body:
        value = body["logging"]
        if not isinstance(value, dict):
            p.error(("logging",), f"expected a map {{driver, options}}, got {describe(value)}")
            return None
        before = p.count()
        check_keys(value, ("logging",), p, ("driver", "options"))
        if p.count() > before:
            return None
        driver, options = value.get("driver"), value.get("options")
        driver_path: KeyPath = ("logging", "driver")
        options_path: KeyPath = ("logging", "options")
    elif "log_driver" in body or "log_opt" in body:
        driver, options = body.get("log_driver"), body.get("log_opt")
        driver_path, options_path = ("log_driver",), ("log_opt",)
    else:
        return None
    if driver is None:
        p.error(driver_path, "log options need a log driver")
        return None
    text = as_str(driver, driver_path, p)
    if text is None:
        return None
    opts: list[tuple[str, str]] = []
    if options is not None:
        if not isinstance(options, dict):
            p.error(options_path, f"expected a map of option to string, got {describe(options)}")
            return None
        for k, v in options.items():
            if isinstance(v, dict | list) or v is None:
                p.error((*options_path, str(k)), f"expected a string, got {describe(v)}")
                return None
            opts.append((str(k), str(v).lower() if isinstance(v, bool) else str(v)))
    return LogConfig(text, tuple(sorted(opts)))
