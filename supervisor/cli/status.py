"""`corral status`."""

from __future__ import annotations

import argparse
from typing import Any

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
    add_command(
        subparsers,
        "status",
        summary="show the state of the supervisor",
        description=(
            "Show the supervisor's state: version, hostname, uptime, boot state (booting, ready, degraded,\n"
            "stopping) and phase, why it is degraded, the config generation in force and the errors of the\n"
            "last rejected config, every handler with its state and restarts, the number of child\n"
            "processes and the event bus counters. Exits 0 whatever the state; read .state from -o json."
        ),
        examples=[
            ("corral status", "overview for people"),
            ("corral status -o json", "the status object, as the supervisor sent it"),
            ("corral status -o json | jq -r .state", "booting, ready, degraded or stopping"),
        ],
        parents=[client_options()],
        run=run,
    )


def run(args: argparse.Namespace) -> int:
    result = call(args, "status")
    if args.output == "json":
        print_json(result)
    else:
        out(render_status(result))
    return EXIT_OK


def _problem(problem: Any) -> str:
    if isinstance(problem, dict):
        key = problem.get("key", problem.get("path"))
        parts = [problem.get("file"), key, problem.get("message")]
        return ": ".join(str(p) for p in parts if p not in (None, ""))
    return str(problem)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _mib(kib: Any) -> str:
    return f"{kib / 1024:.1f} MiB" if isinstance(kib, int | float) else "?"


INDENT = " " * 11


def _journal(journal: dict[str, Any]) -> str:
    """Where the journal writes; or why it cannot, and what waits in memory meanwhile."""
    waiting = f"{_plural(int(journal.get('in_memory') or 0), 'record')} in memory"
    if journal.get("dropped"):
        waiting += f", {journal['dropped']} dropped"
    failure = journal.get("failure")
    if isinstance(failure, dict):
        where = f"{failure.get('path')} since {failure.get('since')}"
        return f"NOT WRITING {where}: {failure.get('error')}; {waiting}"
    if journal.get("storage"):
        return f"writing {journal['storage']}"
    return f"no storage yet; {waiting}"


def render_status(status: Any) -> str:
    """Text for people; any subset of the fields of catalogue.StatusResult renders."""
    if not isinstance(status, dict):
        return str(status)
    get = status.get
    head = f"corral {get('version', '?')} on {get('hostname', '?')}"
    sandbox = get("sandbox")
    if sandbox:
        head += " (sandbox)" if sandbox is True else f" (sandbox {sandbox})"
    lines = [head + f", up {format_duration(get('uptime'))}"]

    state = str(get("state", "unknown"))
    if get("phase") and state not in ("ready", "degraded"):
        state += f" (phase: {get('phase')})"
    lines.append(f"state:     {state}")
    if get("emergency"):
        lines.append(f"emergency: {get('emergency')}")
    degraded = get("degraded") or {}
    reasons = [f"{k}: {v}" for k, v in degraded.items()] if isinstance(degraded, dict) else list(degraded)
    lines.extend(("degraded:  " if i == 0 else INDENT) + str(r) for i, r in enumerate(reasons))
    lines.extend(_os_lines(get("os")))
    journal = get("journal")
    if isinstance(journal, dict):
        lines.append(f"journal:   {_journal(journal)}")
    phases = get("boot_phases")
    if isinstance(phases, dict) and phases:
        lines.append("boot:      " + ", ".join(f"{name} {_seconds(t)}" for name, t in phases.items()))

    config = get("config")
    if isinstance(config, dict):
        errors = config.get("errors") or []
        warnings = config.get("warnings") or []
        text = f"generation {config.get('generation', '?')}"
        # with errors, the parts they are in stay on the last good config (or defaults): see degraded
        text += f", {_plural(len(errors), 'error')} (the rest applied)" if errors else ", no errors"
        if warnings:
            text += f", {_plural(len(warnings), 'warning')}"
        lines.append(f"config:    {text}")
        lines.extend(INDENT + _problem(e) for e in errors)
        lines.extend(INDENT + "warning: " + _problem(w) for w in warnings)

    handlers = get("handlers")
    if isinstance(handlers, dict):  # {name: status}
        handlers = [{"name": n, **(h if isinstance(h, dict) else {"state": h})} for n, h in handlers.items()]
    if isinstance(handlers, list):
        lines.append(f"handlers:  {len(handlers)}")
        rows = [
            [
                h.get("name"),
                h.get("state"),
                h.get("restarts", 0),
                h.get("failures", 0),
                h.get("last_error") or "",
            ]
            for h in sorted((h for h in handlers if isinstance(h, dict)), key=lambda h: str(h.get("name")))
        ]
        if rows:
            lines.extend(table(["NAME", "STATE", "RESTARTS", "FAILURES", "LAST ERROR"], rows, indent=INDENT))

    udevd = get("udevd")
    if isinstance(udevd, dict):
        text = str(udevd.get("state", "?"))
        if udevd.get("pid"):
            text += f", pid {udevd['pid']}"
        if udevd.get("restarts"):
            text += f", {_plural(int(udevd['restarts']), 'restart')}"
        if udevd.get("reason"):
            text += f": {udevd['reason']}"
        lines.append(f"udevd:     {text}")

    swarm = get("swarm")
    if isinstance(swarm, dict) and (swarm.get("desired") or swarm.get("state") not in (None, "inactive")):
        text = f"{swarm.get('desired') or 'no corral.swarm'}; {swarm.get('state') or 'not looked at yet'}"
        if swarm.get("error"):
            text += f"; error: {swarm['error']}"
        elif swarm.get("waiting"):
            text += f"; {swarm['waiting']}"
        lines.append(f"swarm:     {text}")
        lines.extend(f"{INDENT}note: {note}" for note in swarm.get("notes") or [])

    processes = get("processes")
    if isinstance(processes, dict):
        children = processes.get("children") or []
        count = len(children) if isinstance(children, list) else children
        lines.append(
            f"children:  {count} (spawned {processes.get('spawned', '?')}, "
            f"orphans reaped {processes.get('orphans_reaped', '?')})"
        )
    elif "children" in status:
        lines.append(f"children:  {get('children')}")

    bus = get("bus")
    if isinstance(bus, dict):
        subs = bus.get("subscribers") or {}
        dropped = sum(int(s.get("dropped", 0)) for s in subs.values() if isinstance(s, dict))
        lines.append(
            f"bus:       {bus.get('published', 0)} events published, "
            f"{_plural(len(subs), 'subscriber')}, {dropped} dropped"
        )
        rows = [
            [name, s.get("pending", 0), s.get("dropped", 0), s.get("overflows", 0)]
            for name, s in sorted(subs.items())
            if isinstance(s, dict)
        ]
        if rows:
            lines.extend(table(["SUBSCRIBER", "PENDING", "DROPPED", "OVERFLOWS"], rows, indent=INDENT))

    memory = get("memory")
    if isinstance(memory, dict):
        lines.append(
            f"memory:    {_mib(memory.get('rss_kib'))} resident (peak {_mib(memory.get('max_rss_kib'))})"
        )
    if "tasks" in status:
        lines.append(f"tasks:     {get('tasks')}")
    return "\n".join(lines)


def _seconds(value: Any) -> str:
    return f"{value:.2f}s" if isinstance(value, int | float) else str(value)


def _os_lines(os_status: Any) -> list[str]:
    """The boot slot (on an installed disk) and the last upgrade that was rolled back."""
    if not isinstance(os_status, dict):
        return []
    lines = []
    if os_status.get("slot"):
        text = f"slot {os_status['slot']}"
        if os_status.get("boot") == "trial":
            text += f", trial of version {os_status.get('trial_version') or '?'}: {os_status.get('trial')}"
        lines.append(f"os:        {text}")
    report = os_status.get("rolled_back")
    if isinstance(report, dict) and report.get("message"):
        lines.append(f"upgrade:   {report['message']}")
        journal = report.get("journal")
        if isinstance(journal, dict) and journal.get("path"):
            lines.append(f"{INDENT}the failed boot's journal: {journal['path']}")
    return lines
