"""`corral`: the command line of corral. It talks to PID 1 over the root-only control socket.

A command group is one module with ``add_parser(subparsers)``; the parsers it adds set ``func`` (a
``(args) -> exit code`` callable). Add a group by adding its module to ``COMMAND_MODULES``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from supervisor import __version__
from supervisor.cli import (
    config,
    debug,
    dev,
    events,
    install,
    logs,
    net,
    power,
    sandbox,
    status,
    storage,
    swarm,
    system_docker,
    units,
)
from supervisor.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    Parser,
    Subparsers,
    default_socket,
    format_examples,
)
from supervisor.control.protocol import DEFAULT_SOCKET, SOCKET_ENV, ControlError, ControlUnavailable


class CommandGroup(Protocol):
    """A module of commands: it adds its parsers, each with ``func`` set, to ``subparsers``."""

    def add_parser(self, subparsers: Subparsers) -> None: ...


# In the order `corral --help` lists them.
COMMAND_MODULES: tuple[CommandGroup, ...] = (
    status, config, logs, events, units, net, storage, swarm, dev, power, install, debug, sandbox,
    system_docker,
)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="corral",
        description=(
            "Control corral, the container OS: its state, config, journal and events. Talks to the\n"
            "supervisor (PID 1) over its control socket, which only root may use.\n\n"
            "exit codes: 0 success; 1 the command failed (the supervisor refused it, a file could not\n"
            "be read, a config is invalid); 2 bad usage; 3 the supervisor could not be reached or\n"
            "refused the connection; 130 interrupted."
        ),
        epilog=format_examples(
            [
                ("corral status", "how the machine is doing"),
                ("corral logs -f", "follow the journal"),
                ("corral config set hostname edge-1", "change the config live"),
                ("corral <command> --help", "options and examples of a command"),
            ]
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        default=default_socket(),
        help=f"the control socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        default=30.0,
        help="how long to wait for the supervisor to answer (default: 30; streams wait forever)",
    )
    parser.add_argument("--version", action="version", version=f"corral {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def _fail(reason: str, code: int) -> int:
    print(f"corral: {reason}", file=sys.stderr, flush=True)
    return code


def not_utf8(argv: Sequence[str]) -> str | None:
    """Why an argument is not UTF-8 text (Python hands such bytes over as lone surrogates), or None."""
    for number, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = ord(arg[exc.start]) - 0xDC00 if 0xDC80 <= ord(arg[exc.start]) <= 0xDCFF else None
            what = f"byte 0x{byte:02x}" if byte is not None else f"character U+{ord(arg[exc.start]):04X}"
            return (f"argument {number} is not UTF-8 text ({what} at position {exc.start + 1}); "
                    "give arguments as UTF-8")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    problem = not_utf8(sys.argv[1:] if argv is None else argv)
    if problem is not None:
        return _fail(problem, EXIT_USAGE)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    try:
        return int(args.func(args))
    except ControlUnavailable as exc:
        return _fail(exc.reason, EXIT_UNAVAILABLE)
    except ControlError as exc:
        return _fail(exc.reason, EXIT_FAILED)
    except CliError as exc:
        return _fail(exc.reason, exc.code)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (corral logs | head): stop quietly, and keep Python's exit-time flush
        # of stdout from complaining about the closed pipe.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
