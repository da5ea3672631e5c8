"""`corral reload`, `corral poweroff`, `corral reboot`."""

from __future__ import annotations

import argparse

from supervisor.cli.common import EXIT_OK, Subparsers, add_command, call, client_options, out, print_json
from supervisor.cli.config import render_applied


def add_parser(subparsers: Subparsers) -> None:
    add_command(
        subparsers,
        "reload",
        summary="re-read the config files and apply them",
        description=(
            "Re-read cloud-config.yml, cloud-config.d/*.yml and the other config sources and apply the\n"
            "result live, removing what is no longer wanted. An invalid config is rejected whole (the\n"
            "reason names the file and key) and the config in force stays."
        ),
        examples=[("corral reload", "after editing /var/lib/corral/conf/cloud-config.yml")],
        parents=[client_options()],
        run=run_reload,
    )
    add_command(
        subparsers,
        "poweroff",
        summary="stop every unit and power off",
        description=(
            "Shut down cleanly: stop every unit and the supervisor's parts in order, sync, and power\n"
            "the machine off (a sandbox exits instead). The supervisor answers before it starts."
        ),
        examples=[("corral poweroff", "")],
        parents=[client_options()],
        run=lambda args: _power(args, "poweroff", "powering off"),
    )
    add_command(
        subparsers,
        "reboot",
        summary="stop every unit and reboot",
        description=(
            "Shut down cleanly: stop every unit and the supervisor's parts in order, sync, and reboot\n"
            "the machine (a sandbox exits instead). The supervisor answers before it starts."
        ),
        examples=[("corral reboot", "")],
        parents=[client_options()],
        run=lambda args: _power(args, "reboot", "rebooting"),
    )


def run_reload(args: argparse.Namespace) -> int:
    result = call(args, "reload")
    if args.output == "json":
        print_json(result)
    else:
        out("reloaded: " + render_applied(result))
    return EXIT_OK


def _power(args: argparse.Namespace, cmd: str, doing: str) -> int:
    result = call(args, cmd)
    if args.output == "json":
        print_json(result)
    else:
        out(doing)
    return EXIT_OK
