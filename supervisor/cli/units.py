"""`corral units list | inspect | up | down | restart | enable | disable | logs` (alias: `corral units`,
RancherOS's `ros service`)."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli import logs as logs_cli
from supervisor.cli.common import (
    EXIT_OK,
    Subparsers,
    add_command,
    call,
    client_options,
    format_duration,
    out,
    print_json,
    table,
)


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "units",
        aliases=["service"],
        summary="list, start, stop and inspect units (services); alias: service",
        description=(
            "The units corral runs as containers: the OS's own in the system dockerd (the user's dockerd\n"
            "among them) and the user's. corral, not dockerd, restarts them under their restart policy;\n"
            "`down` is a deliberate stop the policy honours until `up`. `enable` and `disable` turn a unit\n"
            "file on or off (corral.services_include), persisted and applied. `corral units ...` is the\n"
            "same command, under the name RancherOS users know (`ros service`)."
        ),
        examples=[
            ("corral units list", "every unit with its state and restarts"),
            ("corral units down ntp", "stop it and keep it stopped"),
            ("corral units logs -f ntp", "follow its output"),
            ("corral units enable monitoring", "turn on /var/lib/corral/units/monitoring.yml"),
        ],
    )
    sub = parser.add_subparsers(dest="units_command", metavar="SUBCOMMAND", title="subcommands",
                                required=True)
    options = [client_options()]

    add_command(
        sub,
        "list",
        summary="every unit: state, restarts, uptime, last exit",
        description=(
            "Every unit by name: scope (system or user dockerd), state (pending, running, restarting,\n"
            "crash-looping, exited, failed, stopped, waiting for a mount; created for createonly\n"
            "units; removing for a unit no longer configured whose container is still there), restarts\n"
            "since the\n"
            "supervisor started, uptime, the last exit code and, for a unit that is not running, why\n"
            "(a scheduled restart, the units it waits for, the last start error)."
        ),
        examples=[("corral units list", ""), ("corral units list -o json | jq '.[] | .name'", "")],
        parents=options,
        run=run_list,
    )
    for name, summary, description, examples in (
        ("inspect", "one unit: status, definition, its container",
         "A unit's status, what it is ordered after, where it was defined, the create request corral\n"
         "sends to dockerd (with its config hash) and dockerd's inspect of its container.",
         [("corral units inspect docker -o json", "everything, for programs")]),
        ("up", "start a unit (forgets a `down` and the backoff)",
         "Start a unit: a deliberate stop (`corral units down`) is forgotten, and so is the backoff of\n"
         "a crash-looping unit. A unit that waits for others starts once they have.",
         [("corral units up ntp", "")]),
        ("down", "stop a unit and keep it stopped",
         "Stop a unit deliberately (SIGTERM, SIGKILL after corral.shutdown_grace): its restart policy\n"
         "does not bring it back until `corral units up`. For `restart: unless-stopped` units the stop\n"
         "is remembered across a reboot.",
         [("corral units down ntp", "")]),
        ("restart", "stop a unit and start it again",
         "Stop a unit (SIGTERM, SIGKILL after corral.shutdown_grace) and start it again, with a fresh\n"
         "backoff.",
         [("corral units restart ntp", "")]),
        ("enable", "turn a unit file on (services_include)",
         "Set corral.services_include.NAME to true: NAME.yml, from /var/lib/corral/units/ or the unit\n"
         "files shipped with corral, is loaded; persisted and applied like `corral config set`.",
         [("corral units enable monitoring", "")]),
        ("disable", "turn a unit file off (services_include)",
         "Set corral.services_include.NAME to false: the units of NAME.yml are stopped and removed;\n"
         "persisted and applied like `corral config set`.",
         [("corral units disable docker", "no user dockerd")]),
    ):
        command = add_command(sub, name, summary=summary, description=description, examples=examples,
                              parents=options, run=_runner(name))
        command.add_argument("name", metavar="NAME", help="unit name" if name not in ("enable", "disable")
                             else "unit file name (NAME.yml)")

    logs = add_command(
        sub,
        "logs",
        summary="a unit's output and the supervisor's lines about it",
        description=(
            "The journal records of one unit: its container's stdout and stderr, and what the supervisor\n"
            "logged about it (started, exited, restarting), oldest first; `corral logs -u NAME`, with\n"
            "the same options."
        ),
        examples=[("corral units logs -f docker", "follow"), ("corral units logs -n 20 ntp", ""),
                  ("corral units logs -p debug docker", "with its debug records (gRPC chatter...)")],
        parents=options,
        run=run_logs,
    )
    logs.add_argument("name", metavar="NAME", help="unit name")
    logs_cli.add_filter_options(logs, units=False)


# ---- commands ---------------------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    result = call(args, "units.list")
    if args.output == "json":
        print_json(result)
    else:
        out(render_list(result))
    return EXIT_OK


def _runner(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        result = call(args, f"units.{name}", name=args.name)
        if args.output == "json":
            print_json(result)
        elif name in ("enable", "disable"):
            changed = ", ".join(result.get("changed") or []) or "nothing"
            out(f"{name}d {args.name}: config generation {result.get('generation')}; changed: {changed}")
        elif name == "inspect":
            out(render_inspect(result))
        else:
            out(render_list([result]))
        return EXIT_OK

    return run


def run_logs(args: argparse.Namespace) -> int:
    args.units = [args.name]
    return logs_cli.run(args)


# ---- rendering --------------------------------------------------------------------------------------
def _why(unit: dict[str, Any]) -> str:
    """The unit's error, its next attempt (a unit corral could not start always has one), or why it
    waits."""
    due = unit.get("next_start_in")
    if unit.get("error"):
        return str(unit["error"]) + ("" if due is None else f"; retry in {format_duration(due)}")
    if due is not None:
        return f"restart in {format_duration(due)}"
    return str(unit.get("waiting") or "")


def render_list(units: Any) -> str:
    if not isinstance(units, list) or not units:
        return "no units"
    rows = []
    for u in units:
        if not isinstance(u, dict):
            continue
        last = u.get("last_exit")
        rows.append([
            u.get("name"), u.get("scope"), u.get("state"), u.get("restarts"),
            format_duration(u.get("uptime")) if u.get("uptime") is not None else "-",
            "-" if last is None else last, _why(u),
        ])
    return "\n".join(table(["NAME", "SCOPE", "STATE", "RESTARTS", "UPTIME", "LAST EXIT", "WHY"], rows,
                           indent=""))


def render_inspect(unit: Any) -> str:
    if not isinstance(unit, dict):
        return str(unit)
    lines = [render_list([unit]), ""]
    for key in ("restart", "image", "image_id", "container", "container_state", "source"):
        if unit.get(key) is not None:
            lines.append(f"{key + ':':<17}{unit[key]}")
    if unit.get("after"):
        lines.append(f"{'after:':<17}{', '.join(unit['after'])}")
    if unit.get("requires_mounts"):
        lines.append(f"{'requires mounts:':<17}{', '.join(unit['requires_mounts'])}")
    for note in unit.get("notes") or ():
        lines.append(f"{'note:':<17}{note}")
    create = unit.get("create") or {}
    if create.get("Cmd"):
        lines.append(f"{'command:':<17}{' '.join(str(c) for c in create['Cmd'])}")
    lines.append("(-o json shows the create request and dockerd's inspect)")
    return "\n".join(lines)
