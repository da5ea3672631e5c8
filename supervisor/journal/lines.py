"""A line a child printed, as a journal record: the one place that decides its level.

Every program corral runs writes its output into the journal line by line: the system dockerd
(``units.system_dockerd``), each unit's container (``units.logs``) and PID 1's own helper processes
(``handlers.processes``, e.g. udevd). Many of those lines carry a level of their own, and it is kept:

* logrus/containerd text: ``time="..." level=warning msg="..." key=value...`` (dockerd, containerd);
* logrus on a terminal: ``WARN[0000] message   key=value``;
* JSON objects with ``level`` and ``msg`` or ``message`` (logrus' and zap's JSON, ``--log-format=json``).

Other lines are recorded whole at info. Library chatter that says nothing to the person reading the
journal goes to debug (kept only when ``corral.log.level`` is debug): gRPC's connection-state lines
(dockerd tags them ``module=grpc``; grpc-go's ``[core]``/``[transport]`` prefixes) and containerd's
list of the plugins it loads or skips at each start. Errors are never demoted, except two of dockerd's
reports about its own containerd at the ends of dockerd's life, where they are dockerd's routine:

* while corral itself is stopping dockerd (``stopping``), libcontainerd's "Failed to get event": dockerd
  reports its own containerd's shutdown as an error (moby/moby#22010);
* while dockerd is starting and has not answered yet (``starting``), libcontainerd's "failed connecting
  to containerd" and "containerd did not exit successfully": dockerd kills and restarts a containerd
  that does not answer soon enough (on a loaded machine, under TCG) and goes on. They become warnings;
  should dockerd not come up after all, corral's own error says so."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from supervisor.journal.records import BOOT_KEY, HEAD_KEYS, normalize_level

# logfmt as logrus writes it: key=value, values with spaces quoted Go-style (\" and \\ escaped).
_LOGFMT = re.compile(r'(\w[\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_LOGFMT_START = re.compile(r"(?:time|level)=")
_TERMINAL = re.compile(r"(TRAC|DEBU|INFO|WARN|ERRO|FATA|PANI)\[[^\]]*\] ?(.*)", re.DOTALL)
_TERMINAL_LEVELS = {"TRAC": "debug", "DEBU": "debug", "INFO": "info", "WARN": "warning", "ERRO": "error",
                    "FATA": "critical", "PANI": "critical"}
# Fields of the child's line that the record has already, or that would clash with the journal's own.
_RESERVED = frozenset({*HEAD_KEYS, BOOT_KEY, "unit", "stream", "time", "msg", "message", "traceback",
                       "exc_info"})
_GRPC_PREFIXES = ("[core]", "[transport]", "[balancer]", "[channelz]")
_PLUGIN_CHATTER = re.compile(r'(?:skip )?loading plugin "[^"]*"\.\.\.')
_DEMOTABLE = frozenset({"info", "warning"})


class LineSink(Protocol):
    """What lines are written to: ``supervisor.journal.Journal`` has this ``log``."""

    def log(self, event: str, level: str = "info", logger: str = "corral", **fields: Any) -> None: ...


@dataclass(frozen=True)
class ChildLine:
    level: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


def parse_line(text: str, *, stopping: bool = False, starting: bool = False) -> ChildLine:
    """The level, message and other fields of one line a child printed (see the module's doc)."""
    parsed = _parse_logfmt(text) or _parse_terminal(text) or _parse_json(text)
    if parsed is None:
        return ChildLine("info", text)
    level = _demoted(parsed, stopping, starting)
    return ChildLine(level, parsed.message, parsed.fields)


def log_line(sink: LineSink, text: str, *, logger: str = "corral", stopping: bool = False,
             starting: bool = False, **context: Any) -> None:
    """Write one line a child printed to ``sink`` at its own level, with ``context`` (``unit=``,
    ``stream=``) and the line's own fields."""
    line = parse_line(text, stopping=stopping, starting=starting)
    fields = {k: v for k, v in line.fields.items() if k not in context}
    sink.log(line.message, level=line.level, logger=logger, **context, **fields)


def _level(name: object) -> str:
    try:
        return normalize_level(str(name))
    except ValueError:
        return "info"


def _parse_logfmt(text: str) -> ChildLine | None:
    if not _LOGFMT_START.match(text):
        return None
    fields = {key: _unquote(raw) for key, raw in _LOGFMT.findall(text)}
    if "msg" not in fields or "level" not in fields:
        return None
    level = _level(fields["level"])
    return ChildLine(level, fields["msg"], {k: v for k, v in fields.items() if k not in _RESERVED})


def _parse_terminal(text: str) -> ChildLine | None:
    m = _TERMINAL.match(text)
    if m is None:
        return None
    return ChildLine(_TERMINAL_LEVELS[m.group(1)], m.group(2).rstrip())


def _parse_json(text: str) -> ChildLine | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("level"), str):
        return None
    message = value.get("msg", value.get("message"))
    if not isinstance(message, str):
        return None
    fields = {str(k): v for k, v in value.items() if k not in _RESERVED}
    return ChildLine(_level(value["level"]), message, fields)


def _demoted(line: ChildLine, stopping: bool, starting: bool = False) -> str:
    if line.level in _DEMOTABLE and _is_chatter(line):
        return "debug"
    if stopping and line.level == "error" and _containerd_closing(line):
        return "info"
    if starting and line.level == "error" and _containerd_restarted(line):
        return "warning"
    return line.level


def _is_chatter(line: ChildLine) -> bool:
    if line.fields.get("module") == "grpc" or line.message.startswith(_GRPC_PREFIXES):
        return True
    return "type" in line.fields and _PLUGIN_CHATTER.fullmatch(line.message) is not None


def _containerd_closing(line: ChildLine) -> bool:
    return (line.fields.get("module") == "libcontainerd" and line.message.lower() == "failed to get event"
            and "code = Unavailable" in str(line.fields.get("error", "")))


_CONTAINERD_RESTART = frozenset({"failed connecting to containerd", "containerd did not exit successfully"})


def _containerd_restarted(line: ChildLine) -> bool:
    return line.fields.get("module") == "libcontainerd" and line.message.lower() in _CONTAINERD_RESTART


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return str(json.loads(raw))
        except ValueError:
            return raw[1:-1]
    return raw
