"""`corral net status | plan | apply | try | confirm`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    CliError,
    Subparsers,
    add_command,
    call,
    client_options,
    format_duration,
    out,
    print_json,
    read_input,
    table,
)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "net",
        summary="show, plan and change the network",
        description=(
            "The network as corral manages it: each link with the rule that matched it, its addresses,\n"
            "routes and DHCP lease, and what corral would change now. Changes come from the config\n"
            "(corral.network or netplan's network:); `net try` applies a change for a while and rolls it\n"
            "back unless `net confirm` comes in time."
        ),
        examples=[
            ("corral net status", "links, addresses, routes, leases"),
            ("corral net plan new.yml", "what merging new.yml would change"),
            ("corral net try --timeout 60 new.yml", "apply new.yml; roll back in 60 s"),
            ("corral net confirm", "keep what `net try` applied"),
        ],
    )
    sub = parser.add_subparsers(dest="net_command", metavar="SUBCOMMAND", title="subcommands", required=True)
    options = [client_options()]

    add_command(
        sub,
        "status",
        summary="links, addresses, routes, DHCP leases and drift",
        description=(
            "Every link the kernel has: the config rule that matched it (unmatched links are left alone),\n"
            "state and carrier, addresses and routes (* marks those corral configured), the DHCP lease and\n"
            "when it expires, drift corrected so far and changes still pending. -o json gives it all."
        ),
        examples=[("corral net status", ""), ("corral net status -o json", "for programs")],
        parents=options,
        run=run_status,
    )

    plan = add_command(
        sub,
        "plan",
        summary="show what would change, applying nothing",
        description=(
            "Compare the config with the kernel and print the changes a reconcile would make now, in\n"
            "order. With FILE (a cloud-config document, - for stdin): the changes that merging it into\n"
            "the config would make. Nothing is applied or persisted."
        ),
        examples=[("corral net plan", "pending changes"), ("corral net plan new.yml", "with new.yml merged")],
        parents=options,
        run=run_plan,
    )
    plan.add_argument("file", metavar="FILE", nargs="?", help="cloud-config document to merge (- for stdin)")

    apply = add_command(
        sub,
        "apply",
        summary="apply the config now (optionally merging FILE first)",
        description=(
            "Reconcile now and print what changed. With FILE, merge it into the persisted config first\n"
            "(like `corral config merge FILE`): it is validated, persisted and applied."
        ),
        examples=[
            ("corral net apply", "reconcile now"),
            ("corral net apply new.yml", "merge, persist, apply"),
        ],
        parents=options,
        run=run_apply,
    )
    apply.add_argument("file", metavar="FILE", nargs="?", help="cloud-config document to merge (- for stdin)")

    try_ = add_command(
        sub,
        "try",
        summary="apply a change, rolled back unless confirmed in time",
        description=(
            "Apply the network config that merging FILE into the config would give, without persisting\n"
            "it. Unless `corral net confirm` comes within --timeout seconds, corral goes back to the\n"
            "config in force: what the try added is removed, what it removed is put back. Confirming\n"
            "persists FILE like `corral config merge`."
        ),
        examples=[
            ("corral net try new.yml", "roll back in 120 s unless confirmed"),
            ("corral net try --timeout 30 new.yml && corral net confirm", ""),
        ],
        parents=options,
        run=run_try,
    )
    try_.add_argument("file", metavar="FILE", help="cloud-config document to try (- for stdin)")
    try_.add_argument("--timeout", dest="try_timeout", type=_positive, default=120.0, metavar="SECONDS",
                      help="roll back after this many seconds (default: 120)")

    add_command(
        sub,
        "confirm",
        summary="keep what `net try` applied",
        description="Confirm the pending `corral net try`: its document is merged into the persisted config.",
        examples=[("corral net confirm", "")],
        parents=options,
        run=run_confirm,
    )


# ---- commands ---------------------------------------------------------------------------------------
def run_status(args: argparse.Namespace) -> int:
    result = call(args, "net.status")
    if args.output == "json":
        print_json(result)
    else:
        out(render_status(result))
    return EXIT_OK


def run_plan(args: argparse.Namespace) -> int:
    kwargs = {"yaml": read_input(args.file)} if args.file else {}
    result = call(args, "net.plan", **kwargs)
    if args.output == "json":
        print_json(result)
        return EXIT_OK
    changes = result.get("changes") or []
    if not changes:
        out("nothing to change")
    for change in changes:
        out(change)
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    kwargs = {"yaml": read_input(args.file)} if args.file else {}
    result = call(args, "net.apply", **kwargs)
    return _print_round(args, result)


def run_try(args: argparse.Namespace) -> int:
    text = read_input(args.file)
    result = call(args, "net.try", yaml=text, timeout=args.try_timeout)
    code = _print_round(args, result)
    if args.output != "json":
        out(f"run `corral net confirm` within {args.try_timeout:g} s to keep it; otherwise it is rolled back")
    return code


def run_confirm(args: argparse.Namespace) -> int:
    result = call(args, "net.confirm")
    if args.output == "json":
        print_json(result)
    else:
        out("confirmed: the change is kept and persisted")
    return EXIT_OK


def _print_round(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.output == "json":
        print_json(result)
    else:
        applied, failed = result.get("applied") or [], result.get("failed") or []
        if not applied and not failed:
            out("nothing to change")
        for line in applied:
            out(line)
        for line in failed:
            out(f"FAILED: {line}")
    if result.get("failed"):
        raise CliError(f"{len(result['failed'])} change(s) failed")
    return EXIT_OK


# ---- rendering ---------------------------------------------------------------------------------------
def _expires(lease: dict[str, Any] | None) -> str:
    if not lease:
        return "-"
    expires = lease.get("expires")
    if expires is None:
        return "never"
    left = expires - time.time()
    return "expired" if left <= 0 else f"in {format_duration(left)}"


def render_status(status: dict[str, Any]) -> str:
    lines: list[str] = []
    rows = []
    for link in status.get("links", []):
        rule = link.get("rule")
        rows.append([
            link["name"],
            link.get("kind") or "-",
            rule["id"] if rule else "-",
            link["state"],
            "yes" if link.get("carrier") else "no",
            link.get("mtu"),
        ])
    lines.append("links:")
    lines += table(["LINK", "KIND", "RULE", "STATE", "CARRIER", "MTU"], rows)
    for link in status.get("links", []):
        if not link.get("managed") and not link.get("addresses"):
            continue
        lines.append("")
        lines.append(f"{link['name']}:" + ("" if link.get("managed") else " (not managed: left alone)"))
        for a in link.get("addresses", []):
            marks = ("*" if a.get("owned") else "") + (" dynamic" if a.get("dynamic") else "")
            lines.append(f"  address {a['address']}{marks}")
        for r in link.get("routes", []):
            if r.get("proto") == 2:  # the kernel's own prefix routes
                continue
            via = f" via {r['via']}" if r.get("via") else ""
            table_ = f" table {r['table']}" if r.get("table") not in (254, None) else ""
            owned = "*" if r.get("owned") else ""
            lines.append(f"  route {r['to']}{via} metric {r['metric']}{table_}{owned}")
        for d in link.get("dhcp", []):
            lease = d.get("lease")
            what = f"lease {lease['address']} from {lease.get('server') or '?'}, expires {_expires(lease)}" \
                if lease else "no lease"
            lines.append(f"  dhcpv{d['family']} {d['state']}: {what}")
        drift = link.get("drift") or {}
        if drift.get("corrected"):
            last = "; ".join(drift["last"])
            lines.append(f"  drift corrected: {drift['corrected']} change(s); last: {last}")
        for change in drift.get("pending") or []:
            lines.append(f"  pending: {change}")
    dns = status.get("dns") or {}
    written = dns.get("written")
    lines.append("")
    if written:
        lines.append(f"dns: {' '.join(written['nameservers']) or '-'}"
                     + (f" search {' '.join(written['search'])}" if written.get("search") else "")
                     + f" ({dns.get('path')})")
    else:
        lines.append(f"dns: {dns.get('path')} not written by corral")
    t = status.get("try")
    if t:
        lines.append(f"try: pending, rolled back in {format_duration(t.get('remaining'))} unless confirmed")
    source = status.get("source") or {}
    lines.append(
        f"netlink: {source.get('messages', 0)} messages, {source.get('overflows', 0)} overflows, "
        f"{status.get('rounds', 0)} reconciles"
    )
    return "\n".join(lines)
