"""`corral logs`: the journal, journalctl-style."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    CliError,
    Subparsers,
    add_command,
    client_options,
    dash_value,
    format_fields,
    format_ts,
    optional_integer,
    out,
    print_json_line,
    stream,
)
from supervisor.control.catalogue import LEVELS

FOLLOW_BACKLOG = 10  # records `logs -f` shows before the live ones, like journalctl -f
DEFAULT_PRIORITY = "info"  # without -p: debug records (kept when corral.log.level is debug) are left out
# journalctl's numeric priorities (syslog's): 0 emerg .. 7 debug
_SYSLOG_PRIORITIES = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning", 5: "info",
                      6: "info", 7: "debug"}
_HIDDEN_FIELDS = frozenset({"ts", "level", "event", "traceback", "exception", "boot"})

EXAMPLES = [
    ("corral logs", "everything stored from info up, oldest first"),
    ("corral logs -n 50", "the newest 50 records"),
    ("corral logs -f", "follow: the newest 10, then new records as they come"),
    ("corral logs -u docker -u network", "records of either unit"),
    ("corral logs -p warning", "warnings and worse"),
    ("corral logs -u docker -p debug", "with debug records (kept when corral.log.level is debug)"),
    ("corral logs --since -5m", "the last five minutes"),
    ("corral logs --since today --until -1h", "from midnight (UTC) to an hour ago"),
    ("corral logs -g 'unit (started|stopped)'", "messages matching a pattern"),
    ("corral logs -b", "this boot only"),
    ("corral logs -b -1 -p error", "errors of the boot before"),
    ("corral logs -r -n 20", "the newest 20, newest first"),
    ("corral logs -o json --since 2024-05-01T10:00Z", "as JSON lines, for jq"),
]


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time as Unix seconds, read as the journal reads it (see
    ``supervisor.journal.query.parse_time``)."""
    from supervisor.journal.query import parse_time

    return parse_time(text, now)


def _time(text: str) -> float:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def parse_priority(text: str) -> str:
    """``-p``: a level name (``warning``; journalctl's ``err``, ``crit``, ``notice``, ``emerg``... too) or
    journalctl's number (0 emerg .. 7 debug), as one of corral's levels."""
    from supervisor.journal.records import normalize_level

    t = text.strip()
    if t.isdigit() and int(t) in _SYSLOG_PRIORITIES:
        return _SYSLOG_PRIORITIES[int(t)]
    try:
        return normalize_level(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r}: use {', '.join(LEVELS)} (or journalctl's names and 0-7)"
        ) from None


def _boot(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a boot offset: {text!r} (use 0, -1, -2...)") from None
    if n > 0:
        raise argparse.ArgumentTypeError("use 0 (this boot) or a negative offset (-1: the boot before)")
    return n


def _grep(text: str) -> str:
    from supervisor.journal.query import compile_grep

    try:
        compile_grep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_filter_options(parser: argparse.ArgumentParser, *, units: bool = True) -> None:
    """The options of `corral logs` (without -u for `corral units logs NAME`)."""
    group = parser.add_argument_group("which records")
    if units:
        group.add_argument("-u", "--unit", dest="units", action="append", metavar="UNIT",
                           help="only records of this unit; repeat for several (any of them)")
    group.add_argument("-p", "--priority", "--level", dest="level", type=parse_priority, metavar="LEVEL",
                       help="only records at LEVEL or above: debug, info, warning, error, critical "
                       "(journalctl's names and 0-7 work too). Default: info")
    dash_value(parser, group.add_argument(
        "-S", "--since", type=_time, metavar="TIME",
        help="only records from TIME on: -5m, -1h30m, '10 min ago', today, yesterday, 12:00, Unix "
        "seconds, an ISO date/time (UTC unless it has a zone)"))
    dash_value(parser, group.add_argument(
        "-U", "--until", type=_time, metavar="TIME",
        help="only records up to TIME (the same forms); not with -f"))
    group.add_argument("-g", "--grep", type=_grep, metavar="PATTERN",
                       help="only records whose message matches PATTERN (a Python regular expression; "
                       "case-insensitive unless PATTERN has a capital letter)")
    optional_integer(parser, group.add_argument(
        "-b", "--boot", nargs="?", const=0, type=_boot, metavar="N",
        help="only records of this boot (-b or -b 0) or an earlier one (-b -1: the boot before); with "
        "-f, only -b"))
    output = parser.add_argument_group("how many, in which order")
    output.add_argument("-n", "--lines", dest="limit", type=_positive, metavar="N",
                        help="only the newest N matching records (with -f: N records before the live "
                        f"ones, default {FOLLOW_BACKLOG})")
    output.add_argument("-r", "--reverse", action="store_true", help="newest first; not with -f")
    output.add_argument("-f", "--follow", action="store_true",
                        help="after the stored records, print new ones as they come, until Ctrl-C")
    output.add_argument("--json", dest="output", action="store_const", const="json",
                        default=argparse.SUPPRESS,
                        help="the same as -o json: one JSON object per line, as stored")


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "logs",
        summary="show the journal (supervisor and unit output)",
        description=(
            "Show journal records, oldest first: the supervisor's own log lines and every unit's\n"
            "output, from info up unless -p says otherwise. Text lines read\n"
            "'time level [unit] event key=value...'; -o json (or --json) prints one JSON object per\n"
            "line. The options combine, as in journalctl: -n counts matching records, -f goes on\n"
            "with new matching records. -r, -U/--until and -b -N do not combine with -f."
        ),
        examples=EXAMPLES,
        parents=[client_options()],
        run=run,
    )
    add_filter_options(parser)


def render_record(record: Any) -> str:
    """``ts level [unit] event key=value...`` (``[logger]`` for the supervisor's own lines), then the
    traceback, if any, indented on the following lines."""
    if not isinstance(record, dict):
        return str(record)
    source = record.get("unit") or record.get("logger")
    parts = [format_ts(record.get("ts")), str(record.get("level", "-")).ljust(7)]
    if source:
        parts.append(f"[{source}]")
    parts.append(str(record.get("event", "")))
    skip = _HIDDEN_FIELDS | {"unit" if record.get("unit") else "logger"}
    fields = format_fields((k, v) for k, v in record.items() if k not in skip)
    if fields:
        parts.append(fields)
    line = " ".join(parts)
    traceback = record.get("traceback") or record.get("exception")
    if traceback:
        line += "\n" + textwrap.indent(str(traceback).rstrip("\n"), "    ")
    return line


def query_args(args: argparse.Namespace, units: list[str] | None) -> dict[str, Any]:
    """The `logs` request for the parsed options; CliError (usage) for options that do not combine."""
    if args.follow:
        for option, given in (("-r/--reverse", args.reverse), ("-U/--until", args.until is not None),
                              ("-b with an earlier boot", bool(args.boot))):
            if given:
                raise CliError(f"{option} cannot be combined with -f/--follow", code=2)
    limit = args.limit if args.limit is not None or not args.follow else FOLLOW_BACKLOG
    return {
        "since": args.since, "until": args.until, "unit": units or None,
        "level": args.level or DEFAULT_PRIORITY, "grep": args.grep, "boot": args.boot,
        "limit": limit, "reverse": args.reverse, "follow": args.follow,
    }


def run(args: argparse.Namespace) -> int:
    query = query_args(args, args.units)
    show = print_json_line if args.output == "json" else lambda r: out(render_record(r))
    for record in stream(args, "logs", **query):
        show(record)
    return EXIT_OK
