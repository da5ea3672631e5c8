"""What every command module shares: options, calling the supervisor, printing."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

from supervisor.cli import exits
from supervisor.config.errors import ConfigError
from supervisor.config.yamlload import MAX_BYTES, decode_config, read_config_file
from supervisor.control.client import SyncClient
from supervisor.control.protocol import DEFAULT_SOCKET, SOCKET_ENV

# The exit codes live in supervisor.cli.exits (the entry point needs them before anything slow loads);
# the commands take them from here.
EXIT_OK = exits.EXIT_OK
EXIT_FAILED = exits.EXIT_FAILED
EXIT_USAGE = exits.EXIT_USAGE
EXIT_UNAVAILABLE = exits.EXIT_UNAVAILABLE
EXIT_NOT_SET = exits.EXIT_NOT_SET
EXIT_INTERRUPTED = exits.EXIT_INTERRUPTED

Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"


Runner = Callable[[argparse.Namespace], int]
STDIN = "<stdin>"  # how errors name a document read from stdin


class CliError(Exception):
    """A failure on the CLI's side, reported as one line and exit code ``code``."""

    def __init__(self, reason: str, code: int = EXIT_FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# A word that is a value although it starts with "-": a relative time (-5m, -1h30m, "-5 min").
_DASH_VALUE = re.compile(r"-\s*[0-9]")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class Parser(argparse.ArgumentParser):
    """argparse's parser, plus two kinds of options argparse alone gets wrong, fixed up in the words
    before parsing (every subcommand's parser is of this class: ``add_subparsers`` makes its parsers of
    the parent's class):

    * options whose value may start with "-" (``--since -5m``: argparse takes ``-5m`` for an option),
      marked with :func:`dash_value`;
    * options with an optional integer value (``-b``, ``-b -1``) before a positional argument
      (``service logs -b docker``: argparse takes ``docker`` for -b's value), marked with
      :func:`optional_integer`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dash_value_options: set[str] = set()
        self.optional_integer_options: dict[str, str] = {}  # option -> its value when none is given

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None and (self.dash_value_options or self.optional_integer_options):
            args = glue_values(list(args), self.dash_value_options, self.optional_integer_options)
        return super().parse_known_args(args, namespace)


def _parser_of(parser: argparse.ArgumentParser) -> Parser:
    if not isinstance(parser, Parser):
        raise TypeError("this option needs a supervisor.cli.common.Parser")
    return parser


def dash_value(parser: argparse.ArgumentParser, action: argparse.Action) -> argparse.Action:
    """Let ``action``'s value start with "-" and a digit in a word of its own: ``--since -5m`` is read
    as ``--since=-5m``."""
    _parser_of(parser).dash_value_options.update(action.option_strings)
    return action


def optional_integer(parser: argparse.ArgumentParser, action: argparse.Action) -> argparse.Action:
    """``action`` (``nargs="?"``) takes the next word only when it is an integer (``-b -1``), and
    stands alone otherwise (``-b docker``: its ``const``, and ``docker`` is left to the positionals)."""
    for option in action.option_strings:
        _parser_of(parser).optional_integer_options[option] = str(action.const)
    return action


def glue_values(args: list[str], dash_values: set[str], optional_integers: dict[str, str]) -> list[str]:
    """``--since -5m`` -> ``--since=-5m``; ``-b -1`` -> ``-b=-1`` and ``-b docker`` -> ``-b=0 docker``
    for the options named; nothing after ``--`` changes."""
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        following = args[i + 1] if i + 1 < len(args) else None
        if word == "--":
            out.extend(args[i:])
            break
        if word in dash_values and following is not None and _DASH_VALUE.match(following):
            out.append(f"{word}={following}")
            i += 2
        elif word in optional_integers:
            if following is not None and _INTEGER.fullmatch(following):
                out.append(f"{word}={following}")
                i += 2
            else:
                out.append(f"{word}={optional_integers[word]}")
                i += 1
        else:
            out.append(word)
            i += 1
    return out


def default_socket() -> Path:
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


def client_options() -> Parser:
    """Options of every command that talks to the supervisor (a parent parser)."""
    parent = Parser(add_help=False)
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
    parents: Sequence[Parser] = (),
    run: Runner | None = None,
    aliases: Sequence[str] = (),
) -> Parser:
    """A subcommand with a one-line summary (for the parent's help), a description and examples."""
    parser = subparsers.add_parser(
        name,
        aliases=list(aliases),
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
