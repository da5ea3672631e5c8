"""`corral sandbox`: the options; the work is ``supervisor.sandbox.main_sandbox``."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from supervisor.cli.common import CliError, Subparsers, add_command


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "sandbox",
        summary="run a supervisor confined to a directory, to try corral without a machine",
        description=(
            "Run corral's supervisor as an ordinary process whose every path lies under DIR (its\n"
            "control socket is DIR/run/corral/control.sock), booted with the given cloud-config and\n"
            "kernel command line. Talk to it with corral --socket DIR/run/corral/control.sock ..."
        ),
        examples=[
            ("corral sandbox --config my.yml --dir /tmp/sb", "in the foreground until Ctrl-C"),
            ("corral sandbox --dir /tmp/sb --detach", "in the background"),
            ("corral --socket /tmp/sb/run/corral/control.sock status", "talk to it"),
        ],
        run=run,
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="cloud-config file to boot with")
    parser.add_argument(
        "--dir", type=Path, metavar="DIR", required=True, help="directory that holds the sandbox (created)"
    )
    parser.add_argument("--cmdline", metavar="TEXT", help="kernel command line the sandbox sees")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--foreground", dest="detach", action="store_false", help="run until Ctrl-C (the default)"
    )
    mode.add_argument("--detach", dest="detach", action="store_true", help="start in the background")
    parser.set_defaults(detach=False)


def run(args: argparse.Namespace) -> int:
    args.foreground = not args.detach
    try:
        module = importlib.import_module("supervisor.sandbox")
    except ModuleNotFoundError as exc:
        if exc.name != "supervisor.sandbox":
            raise
        raise CliError("sandbox is not available in this build") from None
    return int(module.main_sandbox(args))
