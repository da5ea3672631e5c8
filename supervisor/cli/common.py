"""What every command module shares: options, calling the supervisor, printing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from supervisor.config.errors import ConfigError
from supervisor.config.yamlload import MAX_BYTES, decode_config, read_config_file
from supervisor.control.client import SyncClient
from supervisor.control.protocol import DEFAULT_SOCKET, SOCKET_ENV

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_OK = 0
EXIT_FAILED = 1  # the supervisor refused the command, a file could not be read, a config is invalid
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_UNAVAILABLE = 3  # the supervisor could not be reached or refused the connection
EXIT_NOT_SET = 4  # config get: the key is known to the schema but has no value in the config in force
EXIT_INTERRUPTED = 130

Runner = Callable[[argparse.Namespace], int]
STDIN = "<stdin>"  # how errors name a document read from stdin


class CliError(Exception):
    """A failure on the CLI's side, reported as one line and exit code ``code``."""

    def __init__(self, reason: str, code: int = EXIT_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def default_socket() -> Path:
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


def client_options() -> argparse.ArgumentParser:
    """Options of every command that talks to the supervisor (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output and connection")
    group.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or json for programs",
    )
    # Also accepted after the command; the global option provides the default.
    group.add_argument(
        "--socket", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="the control socket"
    )
    return parent


def add_command(
    subparsers: Subparsers,
    name: str,
    *,
    summary: str,
    description: str,
    examples: Sequence[tuple[str, str]] = (),
    parents: Sequence[argparse.ArgumentParser] = (),
    run: Runner | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (for the parent's help), a description and examples."""
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=format_examples(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=list(parents),
    )
    if run is not None:
        parser.set_defaults(func=run)
    return parser


def format_examples(examples: Sequence[tuple[str, str]]) -> str | None:
    if not examples:
        return None
    width = max(len(command) for command, _ in examples)
    lines = ["examples:"]
    for command, what in examples:
        lines.append(f"  {command.ljust(width)}   # {what}" if what else f"  {command}")
    return "\n".join(lines)


# --- talking to the supervisor ----------------------------------------------------------------


def client(args: argparse.Namespace) -> SyncClient:
    return SyncClient(args.socket, timeout=args.timeout)


def call(args: argparse.Namespace, cmd: str, **kwargs: Any) -> Any:
    return client(args).request(cmd, **kwargs)


def stream(args: argparse.Namespace, cmd: str, **kwargs: Any) -> Iterator[Any]:
    return client(args).stream(cmd, **kwargs)


def read_config_input(name: str) -> tuple[str | None, list[ConfigError]]:
    """A config document named on the command line, or stdin for "-", read bounded (at most 1 MiB of
    UTF-8): ``(text, [])``, or ``(None, [the problem, naming FILE and the line])``. A file that cannot
    be opened is a CliError."""
    if name == "-":
        raw = getattr(sys.stdin, "buffer", None)  # bytes, so that a non-UTF-8 byte gets its line
        data = raw.read(MAX_BYTES + 1) if raw is not None else sys.stdin.read(MAX_BYTES + 1).encode()
        return decode_config(data, STDIN)
    try:
        return read_config_file(Path(name), name)
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None


def read_input(name: str) -> str:
    """The text of a config document named on the command line, or of stdin for "-"; any problem
    reading it (missing, too large, not UTF-8) is a CliError."""
    text, errors = read_config_input(name)
    if text is None:
        raise CliError("; ".join(str(e) for e in errors))
    return text


# --- printing ---------------------------------------------------------------------------------


def out(text: str = "") -> None:
    print(text, flush=True)


def print_json(value: Any) -> None:
    out(json.dumps(value, indent=2, ensure_ascii=False))


def print_json_line(value: Any) -> None:
    out(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def format_ts(ts: Any) -> str:
    """Unix seconds as ISO 8601 UTC like the journal's (2024-05-01T12:00:00.000000Z); anything else
    (the journal's own ISO strings) as it is."""
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        try:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except (OverflowError, OSError, ValueError):
            return str(ts)
    return "-" if ts is None else str(ts)


def format_value(value: Any) -> str:
    """A field value for key=value: bare when unambiguous, JSON otherwise."""
    if isinstance(value, str):
        if value and not any(c.isspace() or c in '"=\\' for c in value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def format_fields(fields: Iterable[tuple[str, Any]]) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in fields)


def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    cells = [list(headers)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
