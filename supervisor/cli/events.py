"""`corral events`: watch the event bus live."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    Subparsers,
    add_command,
    client_options,
    format_fields,
    format_ts,
    out,
    print_json_line,
    stream,
)


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "events",
        summary="watch bus events live",
        description=(
            "Print every event published on the supervisor's bus from now on, one line each, until\n"
            "Ctrl-C: 'time kind key=value...' or, with -o json, one JSON object per line. The bus keeps\n"
            "no history, so this always follows; -f is accepted for symmetry with logs. A 'resync'\n"
            "event means this reader fell behind and events were dropped."
        ),
        examples=[
            ("corral events", "everything"),
            ("corral events --kind process --kind config.changed", "child exits and config changes"),
            ("corral events -o json | jq -c 'select(.kind == \"phase\")'", "boot phases, as JSON"),
        ],
        parents=[client_options()],
        run=run,
    )
    parser.add_argument("-f", "--follow", action="store_true", help="follow live (always the case)")
    parser.add_argument(
        "-k",
        "--kind",
        dest="kinds",
        action="append",
        metavar="KIND",
        help="only events of this kind; 'process' also matches 'process.exited'; repeatable",
    )


def render_event(event: Any) -> str:
    if not isinstance(event, dict):
        return str(event)
    fields = format_fields((k, v) for k, v in event.items() if k not in ("ts", "kind"))
    return " ".join(p for p in (format_ts(event.get("ts")), str(event.get("kind", "-")), fields) if p)


def run(args: argparse.Namespace) -> int:
    show = print_json_line if args.output == "json" else lambda e: out(render_event(e))
    for event in stream(args, "events", kinds=args.kinds):
        show(event)
    return EXIT_OK
