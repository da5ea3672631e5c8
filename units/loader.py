"""Loading units: compose services from the config and from unit files, checked key by key.

Where units come from, later wins:

1. unit files selected by ``corral.services_include`` (``NAME: true``): ``NAME.yml`` looked up in the
   directories given to the loader, then in the shipped ``units/defaults/``;
2. ``corral.services`` (``rancher.services`` is merged into it by the config loader). A unit named
   here replaces a unit of the same name from a file, whole.

A unit file is a compose file: either a map of unit name to service (compose v1, as RancherOS's
service files) or ``{version: ..., services: {...}}``. Top-level ``x-*`` keys are ignored.

Every problem is a ``ConfigError`` naming the file, the key path of the unit's key (for example
``corral.services.ntp.restart`` or ``ntp.labels["io.corral.after"]``) and what is wrong. A set with any
problem is rejected whole: ``load_units`` then returns no units, and the caller keeps the last good set."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from supervisor.config.errors import DOCUMENT, ConfigError, Problems
from supervisor.config.keypath import KeyPath, format_path, parse_path
from supervisor.config.suggest import closest, did_you_mean
from supervisor.config.yamlload import NodeInfo, parse_yaml
from units import environment as env_mod
from units.graph import UnitGraph
from units.model import (
    CORRAL_LABELS,
    LABEL_AFTER,
    LABEL_BEFORE,
    LABEL_CREATEONLY,
    LABEL_ONESHOT,
    LABEL_RELOADCONFIG,
    LABEL_REQUIRES_MOUNT,
    LABEL_SCOPE,
    RANCHER_ALIASES,
    RANCHER_DETACH,
    RESERVED_LABELS,
    SCOPES,
    UNIT_NAME,
    Device,
    Healthcheck,
    LogConfig,
    RestartSpec,
    Ulimit,
    Unit,
    Volume,
    VolumesFrom,
)

SHIPPED_DIR = Path(__file__).parent / "defaults"

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
VOLUME_OPTIONS = frozenset((
    "ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy",
    "consistent", "cached", "delegated",
))  # fmt: skip
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
}  # fmt: skip
_CAPABILITY = re.compile(r"(CAP_)?[A-Z0-9_]+", re.IGNORECASE)
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INCLUDE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

@dataclass(frozen=True)
class RawService:
    """One service as written, before checking: where it came from and its body."""

    name: str
    body: Any
    file: str
    path: KeyPath  # key path of the unit in its file (its name is the last segment)
    nodes: Mapping[KeyPath, NodeInfo] = field(default_factory=dict, compare=False)

    def line(self, full: KeyPath) -> int | None:
        """The line of a key path of this unit's file (of the nearest key written there), when known."""
        for end in range(len(full), -1, -1):
            info = self.nodes.get(full[:end])
            if info is not None:
                return info.line
        return None

    def problems(self) -> Problems:
        """A collector for this unit's checks: key paths under the unit, lines from its file."""
        return Problems(self.file, base=self.path, line=self.line)

    def error(self, sub: KeyPath, message: str) -> ConfigError:
        problems = self.problems()
        problems.error(sub, message)
        return problems.errors[0]


@dataclass
class Loaded:
    """What ``load_units`` found. ``units`` is empty when there is any error (rejected whole)."""

    units: dict[str, Unit]
    errors: list[ConfigError]
    graph: UnitGraph | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------------------------- files


def parse_unit_text(text: str, file: str) -> tuple[list[RawService], list[ConfigError]]:
    """Parse one unit file's text (pure). An empty file holds no units."""
    data, nodes, errors = parse_yaml(text, file)
    if errors:
        return [], errors
    if data is None:
        return [], []
    if not isinstance(data, dict):
        return [], [ConfigError(file, DOCUMENT, "a unit file is a map of unit name to service", 1)]
    services: dict[Any, Any] = data
    prefix: KeyPath = ()
    inner = data.get("services")
    compose_keys = all(k in ("version", "services") or str(k).startswith("x-") for k in data)
    if isinstance(inner, dict) and compose_keys and (
        "version" in data or all(isinstance(v, dict) for v in inner.values())
    ):
        services, prefix = inner, ("services",)
    raws: list[RawService] = []
    errs: list[ConfigError] = []
    for name, body in services.items():
        if isinstance(name, str) and name.startswith("x-"):
            continue
        raw = RawService(str(name), body, file, (*prefix, str(name)), nodes)
        if not isinstance(name, str) or not UNIT_NAME.fullmatch(name):
            errs.append(raw.error((), f"bad unit name {name!r}: use letters, digits, '_', '.', '-'"))
            continue
        raws.append(raw)
    return raws, errs


def read_unit_file(path: Path) -> tuple[list[RawService], list[ConfigError]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ConfigError(str(path), DOCUMENT, f"cannot read: {exc}")]
    return parse_unit_text(text, str(path))


def find_included(
    includes: Mapping[str, Any], dirs: Sequence[Path], source: str = "config"
) -> tuple[list[Path], list[ConfigError]]:
    """The unit files ``services_include`` turns on, in name order (looked up in ``dirs`` in order)."""
    files: list[Path] = []
    problems = Problems(source, base=("corral", "services_include"))
    for name in sorted(includes, key=str):
        if not as_bool(includes[name], (str(name),), problems):
            continue
        if not isinstance(name, str) or not _INCLUDE_NAME.fullmatch(name):
            problems.error((str(name),), f"bad unit file name {name!r}")
            continue
        found = next((d / f"{name}.yml" for d in dirs if (d / f"{name}.yml").is_file()), None)
        if found is None:
            where = ", ".join(str(d) for d in dirs)
            problems.error((name,), f"no unit file {name}.yml in {where}")
        else:
            files.append(found)
    return files, problems.errors


def load_units(
    config: Mapping[str, Any],
    *,
    unit_dirs: Sequence[Path] = (),
    shipped_dir: Path = SHIPPED_DIR,
    source: str = "config",
) -> Loaded:
    """All units the (merged, validated) config asks for. ``config`` is the whole document; this reads
    ``corral.services``, ``corral.services_include`` and ``corral.environment``. ``unit_dirs`` are
    searched for included unit files before ``shipped_dir``. Reads the selected files (small; call it
    from a thread if the loop must not block)."""
    corral = config.get("corral") or {}
    environment = corral.get("environment") or {}
    includes = corral.get("services_include") or {}
    services = corral.get("services") or {}
    errors: list[ConfigError] = []
    if not isinstance(includes, dict):
        errors.append(ConfigError(source, "corral.services_include", "expected a map of name to boolean"))
        includes = {}
    if not isinstance(services, dict):
        errors.append(ConfigError(source, "corral.services", "expected a map of unit name to service"))
        services = {}
    if not isinstance(environment, dict):
        errors.append(ConfigError(source, "corral.environment", "expected a map of NAME to string"))
        environment = {}
    files, errs = find_included(includes, [*unit_dirs, shipped_dir], source)
    errors += errs
    from_files: list[RawService] = []
    for path in files:
        raws, errs = read_unit_file(path)
        from_files += raws
        errors += errs
    from_config: list[RawService] = []
    for name, body in services.items():
        raw = RawService(str(name), body, source, ("corral", "services", str(name)))
        if not isinstance(name, str) or not UNIT_NAME.fullmatch(name):
            errors.append(raw.error((), f"bad unit name {name!r}: use letters, digits, '_', '.', '-'"))
        else:
            from_config.append(raw)
    units, graph, errs = build_units([*from_files, *from_config], environment, overrides=len(from_files))
    errors += errs
    if errors:
        return Loaded({}, errors, None, files)
    return Loaded(units, [], graph, files)


def build_units(
    raws: Sequence[RawService], environment: Mapping[str, str], overrides: int | None = None
) -> tuple[dict[str, Unit], UnitGraph | None, list[ConfigError]]:
    """Check services and their ordering (pure). ``raws[overrides:]`` may replace earlier units of the
    same name (the config over files); any other duplicate name is an error naming both places."""
    split = len(raws) if overrides is None else overrides
    chosen: dict[str, tuple[int, RawService]] = {}
    errors: list[ConfigError] = []
    for i, raw in enumerate(raws):
        previous = chosen.get(raw.name)
        if previous is not None and not i >= split > previous[0]:
            errors.append(raw.error((), f"unit {raw.name!r} is also defined in {previous[1].file}"))
            continue
        chosen[raw.name] = (i, raw)
    units: dict[str, Unit] = {}
    for name, (_, raw) in chosen.items():
        problems = raw.problems()
        key = format_path(raw.path)
        unit = parse_service(raw.name, raw.body, environment, problems, source=raw.file, key=key)
        errors += problems.errors
        if unit is not None:
            units[name] = unit
    if errors:
        return {}, None, errors
    graph, graph_errors = UnitGraph.build(units)
    if graph_errors:
        return {}, None, [_located(e, [raw for _, raw in chosen.values()]) for e in graph_errors]
    return units, graph, []


def _located(error: ConfigError, raws: Sequence[RawService]) -> ConfigError:
    """The error with the line of its key, when the unit came from a file."""
    try:
        path = parse_path(error.key)
    except ValueError:
        return error
    for raw in raws:
        if raw.file == error.file and path[: len(raw.path)] == raw.path:
            return raw.error(path[len(raw.path) :], error.message)
    return error


# -------------------------------------------------------------------------------------------- service


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
    name: str, body: Any, environment: Mapping[str, str], p: Problems, *, source: str = "", key: str = ""
) -> Unit | None:
    """Check one compose service and build its Unit (pure). Problems go to ``p``, whose key paths are
    under the unit (``("image",)``); the Unit is None when there is any."""
    before = p.count()
    if not isinstance(body, dict):
        p.error((), f"a unit is a map of compose keys, got {describe(body)}")
        return None
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

    labels = _labels(p, body.get("labels"))
    fields["labels"] = tuple(sorted(labels.items()))
    fields.update(_corral_labels(p, name, labels))

    if "restart" in body:
        try:
            fields["restart"] = RestartSpec.parse(body["restart"])
        except ValueError as exc:
            p.error(("restart",), str(exc))

    volumes, tmpfs_from_volumes = _volumes(p, body.get("volumes"))
    fields["volumes"] = volumes
    requires: set[str] = set()
    fields["volumes_from"] = _volumes_from(p, name, body.get("volumes_from"), requires)

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
            fields[flag] = as_bool(body[flag], (flag,), p)
    for caps in ("cap_add", "cap_drop"):
        if caps in body:
            fields[caps] = _capabilities(p, body[caps], (caps,))
    if "devices" in body:
        fields["devices"] = _devices(p, body["devices"])
    if "user" in body:
        fields["user"] = as_str(body["user"], ("user",), p, numbers=True)
    if "working_dir" in body:
        fields["working_dir"] = as_absolute(body["working_dir"], ("working_dir",), p)
    fields["tmpfs"] = (*_tmpfs(p, body.get("tmpfs")), *tmpfs_from_volumes)
    if "ulimits" in body:
        fields["ulimits"] = _ulimits(p, body["ulimits"])
    if "healthcheck" in body:
        fields["healthcheck"] = _healthcheck(p, body["healthcheck"])
    fields["logging"] = _logging(p, body)

    if p.count() > before:
        return None
    clean = {k: v for k, v in fields.items() if v is not None}
    return Unit(name=name, source=source, key=key, **clean)


def _labels(p: Problems, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if value is None:
        return out
    if isinstance(value, list):
        for i, item in enumerate(value):
            text = as_str(item, ("labels", i), p)
            if text is None:
                continue
            k, _, v = text.partition("=")
            if not k:
                p.error(("labels", i), f"bad label {text!r}: expected KEY=value")
            elif k in out:
                p.error(("labels", i), f"label {k} is given twice")
            else:
                out[k] = v
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            path: KeyPath = ("labels", str(k))
            if not isinstance(k, str) or not k:
                p.error(path, f"label keys are strings, got {k!r}: quote it")
            elif v is None:
                out[k] = ""
            elif isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, str | int | float):
                out[k] = str(v)
            else:
                p.error(path, f"expected a string, got {describe(v)}")
        return out
    p.error(("labels",), f"expected a map (KEY: value) or a list (KEY=value), got {describe(value)}")
    return out


def _corral_labels(p: Problems, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """Interpret io.corral.* labels and their io.rancher.os.* aliases."""
    for k in labels:
        if k in RESERVED_LABELS:
            p.error(
                ("labels", k), f"label {k} is set by corral on the unit's container; a unit may not set it"
            )
        elif k.startswith("io.corral.") and k not in CORRAL_LABELS:
            close = closest(k, CORRAL_LABELS)
            hint = f"; {did_you_mean(close)}" if close else f" (known here: {', '.join(CORRAL_LABELS)})"
            p.error(("labels", k), f"unknown corral label {k}{hint}", suggestion=close)

    def boolean(text: str, label: str) -> bool | None:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        p.error(("labels", label), f"label {label} must be true or false, got {text!r}")
        return None

    def scope(text: str, label: str) -> str | None:
        if text in SCOPES:
            return text
        p.error(("labels", label), f"label {label} must be system or user, got {text!r}")
        return None

    def names(text: str, label: str) -> frozenset[str] | None:
        items = [part.strip() for part in text.split(",")]
        items = [i for i in items if i]
        bad = [i for i in items if not UNIT_NAME.fullmatch(i)]
        if bad:
            p.error(("labels", label), f"label {label} must be comma-separated unit names, got {text!r}")
            return None
        if name in items:
            p.error(("labels", label), f"label {label}: unit {name!r} cannot be ordered against itself")
            return None
        return frozenset(items)

    def mount_paths(text: str, label: str) -> tuple[str, ...] | None:
        items = [part.strip() for part in text.split(",")]
        items = [i for i in items if i]
        if not items:
            p.error(("labels", label), f"label {label} needs one or more absolute paths, got {text!r}")
            return None
        relative = [i for i in items if not i.startswith("/")]
        if relative:
            p.error(("labels", label), f"label {label} needs absolute paths (comma-separated): "
                                     f"{relative[0]!r} is relative")
            return None
        return tuple(sorted({posixpath.normpath(i).replace("//", "/") for i in items}))

    interpret: dict[str, tuple[str, Callable[[str, str], Any]]] = {
        LABEL_SCOPE: ("scope", scope),
        LABEL_AFTER: ("after", names),
        LABEL_BEFORE: ("before", names),
        LABEL_ONESHOT: ("oneshot", boolean),
        LABEL_CREATEONLY: ("createonly", boolean),
        LABEL_RELOADCONFIG: ("reloadconfig", boolean),
        LABEL_REQUIRES_MOUNT: ("requires_mounts", mount_paths),
    }
    out: dict[str, Any] = {}
    given_by: dict[str, str] = {}
    for label in (*CORRAL_LABELS, *RANCHER_ALIASES):
        if label not in labels:
            continue
        meaning = RANCHER_ALIASES.get(label, label)
        attr, parse = interpret[meaning]
        value = parse(labels[label], label)
        if value is None:
            continue
        if label == RANCHER_DETACH:
            value = not value
        if attr in out and out[attr] != value:
            p.error(("labels", label), f"label {label} conflicts with {given_by[attr]}")
            continue
        out[attr] = value
        given_by[attr] = label
    if out.get("oneshot") and out.get("createonly"):
        p.error(
            ("labels", given_by["createonly"]), "a createonly unit is never started: it cannot be oneshot"
        )
    return out


def _volumes(p: Problems, value: Any) -> tuple[tuple[Volume, ...], tuple[tuple[str, str], ...]]:
    if value is None:
        return (), ()
    if not isinstance(value, list):
        p.error(("volumes",), f"expected a list, got {describe(value)}")
        return (), ()
    out: list[Volume] = []
    tmpfs: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        path: KeyPath = ("volumes", i)
        if isinstance(item, dict):
            parsed = _long_volume(p, item, path)
            if isinstance(parsed, Volume):
                out.append(parsed)
            elif parsed is not None:
                tmpfs.append(parsed)
            continue
        text = as_str(item, path, p)
        if text is None:
            continue
        parts = text.split(":")
        if len(parts) == 1:
            source, target, mode = None, parts[0], ""
        elif len(parts) == 2 and parts[1].startswith("/"):
            source, target, mode = parts[0], parts[1], ""
        elif len(parts) == 3:
            source, target, mode = parts
        else:
            p.error(path, f"bad volume {text!r}: expected [SOURCE:]TARGET[:MODE]")
            continue
        vol = _volume(p, path, source, target, [m for m in mode.split(",") if m] if mode else [])
        if vol is not None:
            out.append(vol)
    return tuple(out), tuple(tmpfs)


def _volume(p: Problems, path: KeyPath, source: str | None, target: str, options: list[str]) -> Volume | None:
    ok = True
    if not target.startswith("/"):
        p.error(path, f"volume target {target!r} must be an absolute path")
        ok = False
    if source is not None and not source.startswith("/") and not _VOLUME_NAME.fullmatch(source):
        p.error(path, f"volume source {source!r} must be an absolute host path or a volume name")
        ok = False
    unknown = [o for o in options if o not in VOLUME_OPTIONS]
    if unknown:
        choices = ", ".join(sorted(VOLUME_OPTIONS))
        p.error(path, f"unknown volume option {unknown[0]!r}: expected some of {choices}")
        ok = False
    if "ro" in options and "rw" in options:
        p.error(path, "a volume is ro or rw, not both")
        ok = False
    if source is None and options:
        p.error(path, "an anonymous volume takes no options: give SOURCE:TARGET:MODE")
        ok = False
    return Volume(target, source, tuple(options)) if ok else None


def _long_volume(p: Problems, item: dict[Any, Any], path: KeyPath) -> Volume | tuple[str, str] | None:
    """Compose's long volume syntax: {type: bind|volume|tmpfs, source, target, read_only, bind:
    {propagation}, volume: {nocopy}, tmpfs: {size}}. A tmpfs entry becomes a (path, options) pair."""
    before = p.count()
    check_keys(item, path, p, ("type", "source", "target", "read_only", "bind", "volume", "tmpfs"))
    if p.count() > before:
        return None
    kind = item.get("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        p.error((*path, "type"), f"volume type must be bind, volume or tmpfs, got {kind!r}")
        return None
    target = as_absolute(item.get("target"), (*path, "target"), p)
    extra = {k: item[k] for k in ("bind", "volume", "tmpfs") if k in item}
    allowed = {"bind": ("propagation",), "volume": ("nocopy",), "tmpfs": ("size",)}
    for k, sub in extra.items():
        if k != kind:
            p.error((*path, k), f"{k} options do not apply to a {kind} volume")
            return None
        if not isinstance(sub, dict) or set(sub) - set(allowed[k]):
            p.error((*path, k), f"expected a map with {', '.join(allowed[k])}")
            return None
    if target is None:
        return None
    sub = extra.get(kind) or {}
    if kind == "tmpfs":
        size = sub.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int | str)):
            p.error((*path, "tmpfs", "size"), f"expected bytes or a size such as '64m', got {describe(size)}")
            return None
        return (target, f"size={size}" if size is not None else "")
    source = item.get("source")
    if source is not None:
        source = as_str(source, (*path, "source"), p)
        if source is None:
            return None
    if kind == "bind" and (source is None or not source.startswith("/")):
        p.error((*path, "source"), "a bind volume needs an absolute source path")
        return None
    options: list[str] = []
    if "read_only" in item and as_bool(item["read_only"], (*path, "read_only"), p):
        options.append("ro")
    propagation = sub.get("propagation") if kind == "bind" else None
    if propagation is not None:
        if propagation not in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            p.error((*path, "bind", "propagation"), f"bad propagation {propagation!r}")
            return None
        options.append(propagation)
    if kind == "volume" and "nocopy" in sub and as_bool(sub["nocopy"], (*path, "volume", "nocopy"), p):
        options.append("nocopy")
    return _volume(p, path, source, target, options)


def _volumes_from(p: Problems, name: str, value: Any, requires: set[str]) -> tuple[VolumesFrom, ...]:
    if value is None:
        return ()
    items = as_strings(value, ("volumes_from",), p)
    if items is None:
        return ()
    out: list[VolumesFrom] = []
    for i, text in enumerate(items):
        path: KeyPath = ("volumes_from", i)
        parts = text.split(":")
        is_container = parts[0] == "container"
        if is_container:
            parts = parts[1:]
        mode = parts[1] if len(parts) == 2 else None
        ref = parts[0] if parts else ""
        if len(parts) not in (1, 2) or mode not in (None, "ro", "rw") or not UNIT_NAME.fullmatch(ref):
            p.error(path, f"bad volumes_from {text!r}: expected UNIT[:ro|rw] or container:NAME[:ro|rw]")
            continue
        if ref == name:
            p.error(path, f"unit {name!r} cannot take volumes from itself")
            continue
        if not is_container:
            requires.add(ref)
        out.append(VolumesFrom(ref, None if is_container else ref, mode))
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


def _tmpfs(p: Problems, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    items = as_strings(value, ("tmpfs",), p, single=True)
    if items is None:
        return ()
    out: list[tuple[str, str]] = []
    for i, text in enumerate(items):
        target, _, options = text.partition(":")
        where: KeyPath = ("tmpfs",) if isinstance(value, str) else ("tmpfs", i)
        if not target.startswith("/"):
            p.error(where, f"tmpfs path {target!r} must be absolute")
        else:
            out.append((target, options))
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
