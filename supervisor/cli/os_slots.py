"""`corral os list` and `corral os rollback`: the installed disk's boot slots, through PID 1
(supervisor/commands/osdisk.py). `corral os upgrade` is supervisor/cli/install.py's."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli.common import EXIT_OK, Subparsers, add_command, call, client_options, out, print_json


def add_parsers(os_sub: Subparsers) -> None:
    """``list`` and ``rollback`` under ``corral os``."""
    listing = add_command(
        os_sub,
        "list",
        summary="the slots, their versions, and which is active, default and next",
        description=(
            "The installed disk's two boot slots (A and B): the version each holds (its manifest.json),\n"
            "whether it is complete, and which one this boot runs (active: corral.slot on the kernel\n"
            "command line), which one GRUB boots by default, and which the next boot starts (a new\n"
            "version written by `corral os upgrade` is tried once). Also the last upgrade rolled back.\n"
            "Exit 0; 1 when this is not an installed disk; 3 when the supervisor cannot be reached."
        ),
        examples=[("corral os list", ""), ("corral os list --json", "for scripts")],
        parents=[client_options()],
        run=run_list,
    )
    listing.add_argument("--json", action="store_true", help="print the result as JSON (same as -o json)")
    rollback = add_command(
        os_sub,
        "rollback",
        summary="make the other slot the default boot",
        description=(
            "Make the slot this boot is not from the default, from the next boot on (and cancel a trial\n"
            "boot `corral os upgrade` set up and that has not happened yet). Refused, nothing written,\n"
            "when that slot holds no complete version. Reboot to run it (corral reboot).\n"
            "Exit 0 done; 1 refused (the reason says why); 3 when the supervisor cannot be reached."
        ),
        examples=[("corral os rollback && corral reboot", "")],
        parents=[client_options()],
        run=run_rollback,
    )
    rollback.add_argument("--json", action="store_true", help="print the result as JSON (same as -o json)")


def _json(args: argparse.Namespace) -> bool:
    return bool(args.json) or args.output == "json"


def run_list(args: argparse.Namespace) -> int:
    result = call(args, "os.list")
    if _json(args):
        print_json(result)
    else:
        out(render_list(result))
    return EXIT_OK


def render_list(result: Any) -> str:
    """Text for people: a line per slot, the running version, the last rollback."""
    lines = [f"{'SLOT':<5} {'VERSION':<20} {'STATE':<10} ROLE"]
    for slot in result.get("slots", []):
        roles = [name for name in ("active", "default", "next") if slot.get(name)]
        state = "complete" if slot.get("complete") else "incomplete"
        version = slot.get("version") or "-"
        line = f"{slot.get('slot', '?'):<5} {version:<20} {state:<10} {', '.join(roles) or '-'}"
        if slot.get("problem"):
            line += f"  ({slot['problem']})"
        lines.append(line)
    lines.append(f"running: corral {result.get('version', '?')}"
                 + (f" from slot {result['active']}" if result.get("active") else " (not from a slot)"))
    if result.get("trial_pending"):
        lines.append(f"trial:   slot {result['trial_pending']} is on trial")
    report = result.get("rolled_back")
    if isinstance(report, dict) and report.get("message"):
        lines.append(f"last:    {report['message']}")
    return "\n".join(lines)


def run_rollback(args: argparse.Namespace) -> int:
    result = call(args, "os.rollback")
    if _json(args):
        print_json(result)
    else:
        out(f"slot {result['default']} (corral {result.get('version') or '?'}) is the default from the next "
            "boot on (corral reboot)")
    return EXIT_OK
