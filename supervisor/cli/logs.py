"""`corral logs`: the journal, journalctl-style."""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    Subparsers,
    add_command,
    call,
    client_options,
    format_fields,
    format_ts,
    out,
    print_json_line,
    stream,
)
from supervisor.control.protocol import LEVELS

_BARE_RELATIVE = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+")
FOLLOW_BACKLOG = 10  # records `logs -f` shows before the live ones, like journalctl -f


def parse_since(text: str, now: float | None = None) -> float:
    """A point in time as Unix seconds, read as the journal reads it (``-5m``, ``-1h30m``, epoch
    seconds, an ISO timestamp (UTC unless it has a zone), ``now``, ``today``, ``yesterday``), plus
    durations without the minus: ``10m``, ``2h``, ``1d``, ``10m ago``."""
    from supervisor.journal.query import parse_since as journal_parse_since

    t = text.strip()
    bare = t.lower().removesuffix("ago").strip()
    if _BARE_RELATIVE.fullmatch(bare):
        t = "-" + bare
    return journal_parse_since(t, now)


def _since(text: str) -> float:
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


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "logs",
        summary="show the journal (supervisor and unit output)",
        description=(
            "Show journal records, oldest first: the supervisor's own log lines and every unit's\n"
            "output. Text lines read 'time level [unit] event key=value...'; -o json prints one JSON\n"
            "object per line. With -f, keep printing new records as they arrive until Ctrl-C."
        ),
        examples=[
            ("corral logs -n 50", "the last 50 records"),
            ("corral logs -f -u docker", "follow one unit"),
            ("corral logs --since 10m --level warning", "warnings and errors of the last 10 minutes"),
            ("corral logs --since 2024-05-01T10:00Z -o json", "as JSON lines, for jq"),
        ],
        parents=[client_options()],
        run=run,
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    parser.add_argument("-u", "--unit", metavar="UNIT", help="only records of this unit")
    parser.add_argument(
        "--since",
        type=_since,
        metavar="TIME",
        help="only records from TIME on: 10m, 2h, 1d (ago), today, yesterday, an ISO date/time "
        "(UTC unless it has a zone), Unix seconds",
    )
    parser.add_argument(
        "-n",
        "--lines",
        dest="limit",
        type=_positive,
        metavar="N",
        help=f"only the last N records (with -f: N records before the live ones, default {FOLLOW_BACKLOG})",
    )
    parser.add_argument("--level", choices=LEVELS, help="only records at this level or above")


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
    skip = {"ts", "level", "event", "traceback", "exception", "unit" if record.get("unit") else "logger"}
    fields = format_fields((k, v) for k, v in record.items() if k not in skip)
    if fields:
        parts.append(fields)
    line = " ".join(parts)
    traceback = record.get("traceback") or record.get("exception")
    if traceback:
        line += "\n" + textwrap.indent(str(traceback).rstrip("\n"), "    ")
    return line


def run(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"since": args.since, "unit": args.unit, "level": args.level}
    show = print_json_line if args.output == "json" else lambda r: out(render_record(r))
    if args.follow:
        limit = FOLLOW_BACKLOG if args.limit is None else args.limit
        for record in stream(args, "logs", follow=True, limit=limit, **query):
            show(record)
        return EXIT_OK
    records = call(args, "logs", follow=False, limit=args.limit, **query)
    for record in records if isinstance(records, list) else [records]:
        show(record)
    return EXIT_OK
