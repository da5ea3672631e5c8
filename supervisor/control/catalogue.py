"""The control socket's command catalogue: each command's arguments and what it returns.

``COMMANDS`` lists every command; the server checks the arguments of every command listed there before
calling its handler and fills in the defaults, so a handler always receives every argument of its
command. The checks are config's typed helpers (``supervisor.config.check``): an argument is reported
as config keys are (a ``ControlError`` with code ``bad-argument`` and the diagnostic). The result shapes
at the end document what handlers return; the wire format is ``supervisor.control.protocol``'s."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from supervisor.config.check import (
    as_bool,
    as_enum,
    as_int,
    as_list,
    as_number,
    as_str,
    check_keys,
    describe,
)
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from supervisor.control.protocol import argument_error

LEVELS = ("debug", "info", "warning", "error", "critical")
# Bounds of numeric arguments: every number a command takes has both (``Arg`` insists), so that no
# handler meets a negative count or a time past what datetime or the event loop can hold.
MAX_TIME = 253402300799.0  # Unix seconds of 9999-12-31T23:59:59Z, the last datetime can hold
MAX_COUNT = 1_000_000_000  # records
MAX_BOOTS = 1_000_000  # boots back
MAX_DEBUG_COUNT = 1_000_000  # debug.fail and debug.publish rounds
MAX_TRY_SECONDS = 86400.0  # net.try's rollback timer

_SCALAR_CHECKS: dict[type, Callable[[Any, KeyPath, Problems], Any]] = {
    bool: as_bool,
    int: as_int,
    float: as_number,  # an integer is taken as a number
    str: as_str,
}
_PHRASES = {bool: "a boolean", int: "a whole number", float: "a number", str: "a string", list: "a list"}
_PLURALS = {bool: "booleans", int: "whole numbers", float: "numbers", str: "strings", list: "lists"}


@dataclass(frozen=True)
class Arg:
    name: str
    types: tuple[type, ...]  # allowed JSON types; None is always allowed for optional args
    help: str
    required: bool = False
    default: Any = None
    item_type: type | None = None  # element type when ``list`` is allowed
    low: float | None = None  # a number's bounds: required for every numeric argument
    high: float | None = None
    hint: str = ""  # added to an out-of-range message: what the numbers mean

    def __post_init__(self) -> None:
        numeric = {int, float} & set(self.types)
        if numeric and (self.low is None or self.high is None):
            raise ValueError(f"argument {self.name!r}: a number needs both bounds (low, high)")
        if numeric and self.types not in ((int,), (float,)):
            raise ValueError(f"argument {self.name!r}: a number cannot be one of several types")

    def check(self, value: Any, problems: Problems) -> Any:
        """The value checked (the default for an optional argument left out); what is wrong goes to
        ``problems`` (the command's), under the argument's name."""
        path: KeyPath = (self.name,)
        if value is None:
            if self.required:
                problems.error(path, "required, but not given")
            return self.default
        if list in self.types and isinstance(value, list):
            if self.item_type is not None:
                check = _SCALAR_CHECKS[self.item_type]
                for i, item in enumerate(value):
                    check(item, (*path, i), problems)
            return value
        if len(self.types) > 1:
            if any(isinstance(value, t) and not isinstance(value, bool) for t in self.types):
                return value
            wanted = " or ".join(
                f"a list of {_PLURALS[self.item_type]}" if t is list and self.item_type else _PHRASES[t]
                for t in self.types
            )
            problems.error(path, f"expected {wanted}, got {describe(value)}")
            return None
        if self.types == (int,):
            assert self.low is not None and self.high is not None
            return as_int(value, path, problems, int(self.low), int(self.high), what=self.hint)
        if self.types == (float,):
            return as_number(value, path, problems, self.low, self.high)
        if self.types == (list,):
            return as_list(value, path, problems)
        return _SCALAR_CHECKS[self.types[0]](value, path, problems)


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    result: str
    args: tuple[Arg, ...] = ()
    streams: Literal["never", "follow", "always"] = "never"
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    check: Callable[[Mapping[str, Any], Problems], None] | None = None  # rules across arguments

    def check_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked and completed with defaults; ControlError (``bad-argument``, with the
        diagnostic) for the first that is wrong."""
        problems = Problems(self.name)
        check_keys(args, (), problems, [a.name for a in self.args], what="argument")
        checked: dict[str, Any] = {}
        for arg in self.args:
            checked[arg.name] = arg.check(args.get(arg.name), problems)
            allowed = self.choices.get(arg.name)
            if allowed and checked[arg.name] is not None:
                as_enum(checked[arg.name], (arg.name,), problems, allowed)
        if not problems.errors and self.check is not None:
            self.check(checked, problems)
        if problems.errors:
            raise argument_error(problems.errors[0])
        return checked


def _check_logs(args: Mapping[str, Any], problems: Problems) -> None:
    """What the types alone do not say about ``logs``'s arguments."""
    if args["grep"] is not None:
        try:
            re.compile(args["grep"])
        except re.error as exc:
            problems.error(("grep",), f"not a valid regular expression: {exc}")
    if args["follow"]:
        for name, value in (("until", args["until"]), ("reverse", args["reverse"] or None)):
            if value is not None:
                problems.error((name,), "cannot be used with 'follow'")
        if args["boot"]:
            problems.error(("boot",), "must be 0 with 'follow' (only this boot has new records)")


def _commands(*commands: Command) -> dict[str, Command]:
    return {c.name: c for c in commands}


_APPLIED = (
    '{"generation": int, "changed": [str]}: the config generation now in force and the key paths that changed'
)

COMMANDS: dict[str, Command] = _commands(
    Command(
        "status",
        "State of the supervisor.",
        "StatusResult (see below)",
    ),
    Command(
        "config.get",
        "One value of the config in force, secrets shown as '<redacted>' unless asked for.",
        "the value at the key (any JSON); when absent, error 'KEY: not set ...' with code 'not-set' for a "
        "key the schema knows, else error 'no such key: KEY (unknown key ...)'",
        (
            Arg("key", (str,), "dotted key path, e.g. corral.network.dns.nameservers", required=True),
            Arg("secrets", (bool,), "show secret values", default=False),
        ),
    ),
    Command(
        "config.set",
        "Set one key; persisted (only the difference from the defaults) and applied live. Refused, nothing "
        "written, when a layer above the user's config (kernel command line, datasource) sets the key.",
        _APPLIED,
        (
            Arg("key", (str,), "dotted key path", required=True),
            Arg("value", (str,), "the new value as YAML text ('8.8.8.8', '[a, b]', '{x: 1}')", required=True),
        ),
    ),
    Command(
        "config.unset",
        "Remove one key from the user's config, so that the defaults (or cloud-config.d) count again; "
        "persisted and applied live. Refused like config.set when a layer above the user's config sets it.",
        _APPLIED,
        (Arg("key", (str,), "dotted key path", required=True),),
    ),
    Command(
        "config.export",
        "The user's config (what `set` and `merge` persisted), secrets left out unless asked for.",
        "the config as a JSON object",
        (Arg("secrets", (bool,), "include secret values", default=False),),
    ),
    Command(
        "config.merge",
        "Merge a cloud-config document into the user's config, persist and apply it. Refused like "
        "config.set when a layer above the user's config sets one of its keys.",
        _APPLIED,
        (
            Arg("yaml", (str,), "cloud-config YAML text", required=True),
            Arg("filename", (str,), "the input's name in error messages (default: <merge>)"),
        ),
    ),
    Command(
        "config.validate",
        "Check a cloud-config document as the only config over the defaults (schema and domain checks, "
        "as boot, merge and reload do) without applying it; `corral config validate` does the same "
        "without the supervisor.",
        '{"valid": bool, "errors": [ConfigProblem], "warnings": [ConfigProblem]}; invalid: also "boot": '
        '{"salvaged": bool, "dropped_roots": [str], "dropped_files": [str], "summary": str}, what a boot '
        'would keep',
        (
            Arg("yaml", (str,), "cloud-config YAML text", required=True),
            Arg("filename", (str,), "name used in error messages", default="<stdin>"),
        ),
    ),
    Command("config.schema", "The JSON Schema of the config.", "the JSON Schema (a JSON object)"),
    Command(
        "logs",
        "Journal records, oldest first, as a stream: it ends after the stored records, or with follow goes "
        "on with new records as they come.",
        "a stream of LogRecord",
        (
            Arg("since", (float,), "only records at or after this time (Unix seconds)", low=0, high=MAX_TIME),
            Arg("until", (float,), "only records at or before this time (Unix seconds); not with follow",
                low=0, high=MAX_TIME),
            Arg("unit", (str, list), "only records of this unit, or of any of these units", item_type=str),
            Arg("limit", (int,), "only the last N matching records (follow: of the backlog)", low=0,
                high=MAX_COUNT),
            Arg("level", (str,), "only records at this level or above"),
            Arg("grep", (str,), "only records whose message matches this regular expression (Python re; "
                "case-insensitive unless it has a capital letter)"),
            Arg("boot", (int,), "only records of this boot: 0 this one, -1 the one before... (follow: 0)",
                low=-MAX_BOOTS, high=0, hint=" (0 is this boot, -1 the boot before)"),
            Arg("reverse", (bool,), "newest first; not with follow", default=False),
            Arg("follow", (bool,), "after the backlog, send new records as they come", default=False),
        ),
        streams="always",
        choices={"level": LEVELS},
        check=_check_logs,
    ),
    Command(
        "events",
        "Bus events as they are published (always a stream).",
        "a stream of Event.to_dict() objects",
        (
            Arg(
                "kinds",
                (list,),
                "only these kinds; 'process' also matches 'process.exited'. resync always passes",
                item_type=str,
            ),
        ),
        streams="always",
    ),
    Command("reload", "Re-read the config files and apply them; with errors, the parts they are in stay on "
            "the last good config, the rest is applied, and the reply is an error naming both.", _APPLIED),
    Command("poweroff", "Stop every unit and power the machine off.", "null, sent before shutting down"),
    Command("reboot", "Stop every unit and reboot.", "null, sent before shutting down"),
    Command(
        "debug.fail",
        "Make a handler's next COUNT reconciles raise (needs corral.debug: true).",
        "the handler's status",
        (
            Arg("handler", (str,), "handler name, as in `corral status`", required=True),
            Arg("count", (int,), "how many reconciles fail", default=1, low=0, high=MAX_DEBUG_COUNT),
        ),
    ),
    Command(
        "debug.spawn",
        "Spawn each argv through PID 1's process module and wait for all (needs corral.debug: true).",
        '[{"pid": int, "exitcode": int | null, "signal": int | null}]',
        (Arg("commands", (list,), "a list of argv lists", required=True),),
    ),
    Command(
        "debug.publish",
        "Publish COUNT timer events on the bus, for load tests (needs corral.debug: true).",
        '{"published": int}',
        (Arg("count", (int,), "how many events", required=True, low=0, high=MAX_DEBUG_COUNT),),
    ),
    Command(
        "debug.modules",
        "The modules PID 1 has imported, to check what its boot path loads, and how many objects its "
        "collector no longer walks (needs corral.debug: true).",
        '{"modules": [str], "frozen": int}',
    ),
    Command("net.status", "Each link: matched rule, state, carrier, addresses, routes, DHCP lease, drift.",
            "the network handler's status (see docs/networking.md)"),
    Command(
        "net.plan",
        "What applying the config in force (or it merged with YAML) would change, without applying it.",
        '{"changes": [str], "format": str}',
        (Arg("yaml", (str,), "a cloud-config document to merge over the config in force first"),),
    ),
    Command(
        "net.apply",
        "Apply the network config now (after persisting YAML into the user's config, if given).",
        "the applied round: changes made and errors",
        (Arg("yaml", (str,), "a cloud-config document to persist and apply"),),
    ),
    Command(
        "net.try",
        "Apply YAML's network config, rolled back after TIMEOUT seconds unless `net.confirm` comes first.",
        "the try: its changes and deadline",
        (
            Arg("yaml", (str,), "a cloud-config document with the network config to try", required=True),
            Arg("timeout", (float,), "seconds until the automatic rollback", default=120.0, low=1,
                high=MAX_TRY_SECONDS),
        ),
    ),
    Command("net.confirm", "Keep the network config being tried: persisted, no rollback.",
            "the confirmed try"),
    Command("storage.status", "udev source, devices, state partition and mount rules.",
            '{"udev", "devices", "state", "storage"}; each storage mount and rule has "dependents" '
            '(the units requiring its path)'),
    Command(
        "storage.mount",
        "Mount a mounts: rule now: undoes storage.unmount, retries a failed mount, mounts a noauto rule.",
        '{"rule", "path", "state": "mounted", "device", "fstype"}; an error says why when not mounted',
        (Arg("name", (str,), "a rule's key (mounts[0]) or path, or a device it matches", required=True),),
    ),
    Command(
        "storage.unmount",
        "Unmount a rule's mount and keep it unmounted until storage.mount or the device is re-plugged.",
        '{"rule", "path", "state": "unmounted", "device"}; an error when busy or not mounted',
        (Arg("name", (str,), "a rule's key (mounts[0]) or path, or the device it mounted", required=True),),
    ),
    Command(
        "dev",
        "The devices a LABEL=, UUID=, PARTUUID=, PARTLABEL= or path names.",
        '{"spec": str, "devices": [BlockDevice]}; error "no device has SPEC" when none',
        (Arg("spec", (str,), "LABEL=x, UUID=x, PARTUUID=x, PARTLABEL=x or a path", required=True),),
    ),
    Command("swarm.status", "This node in Docker Swarm: id, role, managers, reachability, tasks here.",
            "the swarm reconciler's live status (see docs/cli.md, corral swarm status)"),
    Command("swarm.token", "The join token for a worker or a manager (this node must be a manager).",
            '{"kind": str, "token": str}',
            (Arg("kind", (str,), "worker or manager", required=True),),
            choices={"kind": ("worker", "manager")}),
    Command(
        "os.list",
        "The installed disk's boot slots: each one's version (its manifest), and which is active, default, "
        "next.",
        '{"slots": [{"slot", "version", "complete", "problem", "active", "default", "next"}], "active", '
        '"default", "next", "trial_pending", "version", "rolled_back"}; an error when not an installed disk',
    ),
    Command(
        "os.rollback",
        "Make the slot other than the running one the default boot (and cancel a boot-once not yet taken).",
        '{"default", "previous", "version"}; an error, nothing written, when that slot holds no complete '
        "version",
    ),
    Command("units.list", "Every unit: state, restarts, uptime, last exit.", "[UnitStatus] by name"),
    Command(
        "units.inspect",
        "One unit: its status, definition (the create request) and dockerd's inspect of its container.",
        "UnitStatus plus after, source, create, image_id, inspect (null when there is no container)",
        (Arg("name", (str,), "unit name", required=True),),
    ),
    Command(
        "units.up",
        "Start a unit: forgets a deliberate stop (`down`) and its backoff.",
        "UnitStatus",
        (Arg("name", (str,), "unit name", required=True),),
    ),
    Command(
        "units.down",
        "Stop a unit deliberately: not restarted by its policy until `up` (remembered for unless-stopped).",
        "UnitStatus, once stopped",
        (Arg("name", (str,), "unit name", required=True),),
    ),
    Command(
        "units.restart",
        "Stop a unit (SIGTERM, SIGKILL after shutdown_grace) and start it again.",
        "UnitStatus",
        (Arg("name", (str,), "unit name", required=True),),
    ),
    Command(
        "units.enable",
        "Turn a unit file on: corral.services_include.NAME = true, persisted and applied.",
        _APPLIED,
        (Arg("name", (str,), "unit file name (NAME.yml)", required=True),),
    ),
    Command(
        "units.disable",
        "Turn a unit file off: corral.services_include.NAME = false, persisted and applied.",
        _APPLIED,
        (Arg("name", (str,), "unit file name (NAME.yml)", required=True),),
    ),
)


def check_args(cmd: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments of a catalogued command checked and completed with defaults; others pass unchanged."""
    spec = COMMANDS.get(cmd)
    return spec.check_args(args) if spec is not None else dict(args)


def kind_matches(kinds: Iterable[str] | None, kind: str) -> bool:
    """Does an event ``kind`` pass the filter? Empty/None passes everything; a filter entry matches
    the kind itself and its dotted descendants ("process" matches "process.exited"); resync always
    passes, since it tells the reader that events were lost."""
    wanted = list(kinds or ())
    if not wanted or kind == "resync":
        return True
    return any(kind == k or kind.startswith(k + ".") for k in wanted)


# --- result shapes (documentation for handler writers; the CLI renders them leniently) ---------


class ConfigProblem(TypedDict):
    """supervisor.config.errors.ConfigError.to_dict(): also a bad argument's ``problem``."""

    file: str  # a path, or a pseudo-source such as "cmdline" (a bad argument: the command)
    key: str  # dotted key path such as corral.log.level; "(document)" for the document as a whole
    message: str
    line: int | None
    suggestion: str | None  # what was probably meant ("did you mean"): a key path, or a value


class ConfigStatus(TypedDict):
    generation: int  # increases with every accepted config
    errors: list[ConfigProblem | str]  # why the last attempted config was rejected; [] when accepted


class HandlerStatus(TypedDict, total=False):
    """handlers.runner's status(); the CLI shows name, state, restarts, failures, last_error."""

    name: str
    state: str
    restarts: int
    failures: int
    last_error: str | None
    reconciles: int
    events: int
    pending: int
    dropped: int


class StatusResult(TypedDict, total=False):
    """What ``status`` returns (supervisor.app.Supervisor.status); the CLI renders any subset."""

    version: str
    hostname: str
    pid: int
    sandbox: bool  # running as `corral sandbox`
    state: Literal["booting", "ready", "degraded", "emergency", "stopping"]
    phase: str  # current (or last) boot or shutdown phase
    uptime: float  # seconds since PID 1 started
    boot_phases: dict[str, float]  # phase -> seconds it took, in boot order
    degraded: dict[str, str]  # source -> reason; {} unless degraded
    emergency: str | None  # why PID 1 fell back to the emergency shell
    config: ConfigStatus
    handlers: list[HandlerStatus]
    processes: dict[str, Any]  # {"children": [{"name", "pid"}], "spawned": int, "orphans_reaped": int}
    bus: dict[
        str, Any
    ]  # Bus.stats(): {"published": int, "subscribers": {name: {pending, dropped, overflows}}}
    tasks: int
    memory: dict[str, int]  # {"rss_kib", "max_rss_kib"}
    mounts: list[str]
    # Journal.status(): {"storage": dir | None, "in_memory", "dropped", "failure": None | {"path",
    # "error", "since", "tries", "reason"}}; a failure also makes the state degraded ("journal")
    journal: dict[str, Any]
    units: dict[str, Any] | None  # {"units", "states": {state: count}, "reachable", "reconciles", ...}
    udevd: dict[str, Any] | None  # corral.udev: {"state", "pid", "restarts", "reason", ...}; None when off
    # corral.swarm's reconciler: {"desired", "state", "node_id", "manager", "error", "waiting", "notes",
    # "last_actions", "retry_in", "checked_at"}; None when the system docker is off
    swarm: dict[str, Any] | None
    control: dict[str, int]  # the control socket: {"open", "limit", "admitted", "evicted", "refused"}
    # the installed disk's boot slots (supervisor/boot/slots.py): {"slot": "A"|"B"|None, "boot":
    # "not-installed"|"normal"|"trial"|"rolled-back", "trial": None|"pending"|"good"|"expired",
    # "trial_version", "rolled_back": None | {"message", "version", "slot", "reason", "boot", "journal",
    # "at"}}
    os: dict[str, Any] | None


class UnitStatus(TypedDict):
    """One unit, as ``units.list`` and ``units.up|down|restart`` return it."""

    name: str
    scope: Literal["system", "user"]
    state: str  # pending, running, restarting, crash-looping, exited, failed, stopped; created (createonly)
    restarts: int  # restarts decided since the supervisor started
    failures: int  # failures in a row (reset by a run of 10 s)
    uptime: float | None  # seconds since it started, while running
    last_exit: int | None
    next_start_in: float | None  # seconds until a scheduled restart
    restart: str  # the policy: no, always, unless-stopped, on-failure[:N]
    image: str
    container: str | None  # short id
    container_state: str | None  # as dockerd last showed it
    oneshot: bool
    createonly: bool
    waiting: str | None  # why it is not started yet (dependencies, a scheduled restart)
    error: str | None  # why the last create or start failed


class LogRecord(TypedDict, total=False):
    """A journal record (supervisor.journal.records): a flat JSON object, head keys first."""

    ts: str  # ISO 8601 UTC, e.g. 2024-05-01T12:00:00.000000Z
    level: str
    logger: str  # e.g. supervisor.net
    event: str
    boot: str  # which run of PID 1 logged it (12 hex digits); absent on records of older corrals
    unit: str  # set on lines of a unit's output
    traceback: str
    # any other keys: structured fields, rendered key=value
