"""`corral debug fail|spawn|publish|modules|init-watch`: fault injection, reaper, load and import checks,
the units' init watch on or off (need `corral.debug: true`)."""

from __future__ import annotations

import argparse

from supervisor.cli.common import EXIT_OK, Subparsers, add_command, call, client_options, out, print_json


def add_parser(subparsers: Subparsers) -> None:
    group = add_command(
        subparsers,
        "debug",
        summary="fault injection for testing a running supervisor",
        description="Commands for proving crash isolation and the reaper. They are refused unless the\n"
        "config sets corral.debug: true.",
        examples=[("corral debug fail processes 100", ""), ("corral debug spawn -- true", "")],
    )
    sub = group.add_subparsers(dest="debug_command", metavar="COMMAND", required=True)
    fail = add_command(
        sub,
        "fail",
        summary="make a handler's next reconciles raise",
        description="Make the next COUNT reconciles of HANDLER raise; the runner must log each, back off\n"
        "and restart the handler while the loop carries on.",
        examples=[("corral debug fail processes 100", "")],
        parents=[client_options()],
        run=run_fail,
    )
    fail.add_argument("handler", help="handler name, as listed by `corral status`")
    fail.add_argument("count", type=int, nargs="?", default=1, help="how many reconciles fail (default 1)")
    spawn = add_command(
        sub,
        "spawn",
        summary="run a command through PID 1's process module",
        description="Spawn ARGV as a child of PID 1 (never through a shell), wait and print how it ended.",
        examples=[("corral debug spawn -- sh -c 'exit 3'", "prints: exited 3")],
        parents=[client_options()],
        run=run_spawn,
    )
    spawn.add_argument("argv", nargs=argparse.REMAINDER, help="the command and its arguments")
    publish = add_command(
        sub,
        "publish",
        summary="publish timer events on the bus (load test)",
        description="Publish COUNT timer events on PID 1's bus, to watch memory and handlers under load.",
        examples=[("corral debug publish 100000", "")],
        parents=[client_options()],
        run=run_publish,
    )
    publish.add_argument("count", type=int, help="how many events")
    add_command(
        sub,
        "modules",
        summary="list the modules PID 1 has imported",
        description="Print the name of every module PID 1 has imported, one a line (what its boot path\n"
        "and its handlers loaded; see docs/benchmarks.md, PID 1's memory).",
        examples=[("corral debug modules | grep -c pyroute2", "how many of pyroute2's modules are loaded")],
        parents=[client_options()],
        run=run_modules,
    )


    watch = add_command(
        sub,
        "init-watch",
        summary="watch a unit's container inits through pidfds, or not",
        description="Turn the pidfd watch of UNIT's container inits on (the default) or off; off, its exits\n"
        "are told by dockerd's die event alone (to measure one path against the other).",
        examples=[("corral debug init-watch web off", "")],
        parents=[client_options()],
        run=run_init_watch,
    )
    watch.add_argument("unit", help="the unit's name")
    watch.add_argument("state", choices=("on", "off"), help="on: watched (the default); off: not")


def run_init_watch(args: argparse.Namespace) -> int:
    result = call(args, "debug.init_watch", name=args.unit, watch=args.state == "on")
    if args.output == "json":
        print_json(result)
    else:
        out(f"{result['name']}: init watch {'on' if result['watch'] else 'off'}")
    return EXIT_OK


def run_fail(args: argparse.Namespace) -> int:
    result = call(args, "debug.fail", handler=args.handler, count=args.count)
    if args.output == "json":
        print_json(result)
    else:
        out(f"{args.handler}: {args.count} failure(s) injected")
    return EXIT_OK


def run_spawn(args: argparse.Namespace) -> int:
    argv = [a for a in args.argv if a != "--"] if args.argv[:1] == ["--"] else args.argv
    result = call(args, "debug.spawn", commands=[argv])
    if args.output == "json":
        print_json(result)
    else:
        for r in result:
            how = f"killed by signal {r['signal']}" if r["signal"] is not None else f"exited {r['exitcode']}"
            out(f"pid {r['pid']}: {how}")
    return EXIT_OK


def run_modules(args: argparse.Namespace) -> int:
    result = call(args, "debug.modules")
    if args.output == "json":
        print_json(result)
    else:
        for name in result["modules"]:
            out(name)
    return EXIT_OK


def run_publish(args: argparse.Namespace) -> int:
    result = call(args, "debug.publish", count=args.count)
    if args.output == "json":
        print_json(result)
    else:
        out(f"{result['published']} events published")
    return EXIT_OK
