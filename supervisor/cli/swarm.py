"""`corral swarm status | token`: this node in Docker Swarm (``corral.swarm``, docs/config.md).

``status`` calls the control command ``swarm.status`` (the swarm reconciler's live look: this node, its
managers, their reachability, the tasks running here, and what corral could not do); ``token KIND``
calls ``swarm.token`` (root only, as the control socket is)."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    Subparsers,
    add_command,
    call,
    client_options,
    format_value,
    out,
    print_json,
    table,
)


def add_parser(subparsers: Subparsers) -> None:
    group = add_command(
        subparsers,
        "swarm",
        summary="swarm: this node in Docker Swarm (corral.swarm)",
        description="This node's Docker Swarm membership, as corral.swarm keeps it (docs/config.md).",
        examples=[("corral swarm status", ""),
                  ("corral swarm token worker", "the token other nodes join with")],
    )
    commands = group.add_subparsers(dest="swarm_command", metavar="COMMAND", required=True)
    status = add_command(
        commands,
        "status",
        summary="show this node: id, role, managers, reachability, tasks here",
        description=(
            "Show what corral.swarm asks for and what the user dockerd says: this node's id, role,\n"
            "availability and labels, the managers it knows and (on a manager) their reachability, the\n"
            "swarm tasks running on this node, and what is wrong (a manager that does not answer, a\n"
            "refused token: retried on a backoff) or differs from the config."
        ),
        examples=[
            ("corral swarm status", "for people"),
            ("corral swarm status --json | jq .tasks", "the tasks on this node"),
        ],
        parents=[client_options()],
        run=run_status,
    )
    status.add_argument("--json", dest="output", action="store_const", const="json",
                        default=argparse.SUPPRESS, help="the same as -o json")
    token = add_command(
        commands,
        "token",
        summary="print the join token for a worker or a manager (a manager only)",
        description=(
            "Print the token a node gives in corral.swarm.join.token to join this swarm as a worker or\n"
            "a manager. Only a manager has them (exit 1 otherwise). The token is a secret: the control\n"
            "socket, and so this command, is root-only."
        ),
        examples=[
            ("corral swarm token worker", ""),
            ("corral config set corral.swarm.join.token \"$(ssh m1 corral swarm token worker)\"",
             "on the joining node"),
        ],
        parents=[client_options()],
        run=run_token,
    )
    token.add_argument("kind", choices=("worker", "manager"), help="which token")
    token.add_argument("--json", dest="output", action="store_const", const="json",
                       default=argparse.SUPPRESS, help="the same as -o json")


def run_status(args: argparse.Namespace) -> int:
    result = call(args, "swarm.status")
    if args.output == "json":
        print_json(result)
    else:
        out(render(result))
    return EXIT_OK


def run_token(args: argparse.Namespace) -> int:
    result = call(args, "swarm.token", kind=args.kind)
    if args.output == "json":
        print_json(result)
    else:
        out(str(result.get("token") if isinstance(result, dict) else result))
    return EXIT_OK


def render(status: Any) -> str:
    if not isinstance(status, dict):
        return str(status)
    lines = [f"config:     {status.get('desired') or 'no corral.swarm'}"]
    state = status.get("state") or "unknown"
    if status.get("swarm_error"):
        state += f" ({status['swarm_error']})"
    lines.append(f"state:      {state}")
    if status.get("node_id"):
        role = status.get("role") or ("manager" if status.get("manager") else "worker")
        extra = " (leader)" if status.get("leader") else ""
        lines.append(f"node:       {status['node_id']} {role}{extra} at {status.get('node_addr')}")
    if status.get("availability"):
        lines.append(f"available:  {status['availability']}")
    if status.get("labels") is not None:
        labels = status["labels"]
        lines.append("labels:     " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"))
    if status.get("reachability"):
        lines.append(f"reachable:  {status['reachability']}")
    if status.get("managers") is not None:
        lines.append(f"swarm:      {status['managers']} manager(s), {status.get('nodes')} node(s)")
    if status.get("remote_managers"):
        lines.append(f"managers:   {', '.join(status['remote_managers'])}")
    if status.get("error"):
        retry = f"; retrying in {format_value(status.get('retry_in'))} s" if status.get("retry_in") else ""
        lines.append(f"error:      {status['error']}{retry}")
    if status.get("waiting"):
        lines.append(f"waiting:    {status['waiting']}")
    for note in status.get("notes") or []:
        lines.append(f"note:       {note}")
    tasks = status.get("tasks") or []
    lines.append(f"tasks here: {len(tasks)}")
    if tasks:
        rows = [[t.get("task"), t.get("service"), t.get("container"), t.get("status")] for t in tasks]
        lines.extend(table(["TASK", "SERVICE", "CONTAINER", "STATUS"], rows, indent="            "))
    return "\n".join(lines)
