"""`corral dev SPEC`: the device node a ``LABEL=``, ``UUID=``, ``PARTUUID=``, ``PARTLABEL=`` or path
names (RancherOS's ``ros dev``).

Calls the control command ``dev`` (``{"spec": str}``), which answers ``{"spec", "devices": [...]}``
(each ``BlockDevice.to_dict()``: devname, major, minor, size, fstype, label, uuid, partuuid...), or
fails with ``no device has LABEL=x``: then the exit code is 1."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli.common import EXIT_OK, Subparsers, add_command, call, client_options, out, print_json


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "dev",
        summary="the device node of a LABEL=, UUID=, PARTUUID= or path",
        description=(
            "Print the device node that SPEC names: LABEL=x, UUID=x, PARTUUID=x, PARTLABEL=x (UUIDs\n"
            "without regard to case) or a path (/dev/disk/by-label/x, /dev/sdb1, sdb1). When several\n"
            "devices match, each is printed, by name. Exit 1 with a message when none does."
        ),
        examples=[
            ("corral dev LABEL=CORRAL_STATE", "/dev/vda1"),
            ("mount $(corral dev UUID=1c1e...) /mnt", "in a script"),
            ("corral dev PARTUUID=5f2c... -o json", "with size, type, label, uuid"),
        ],
        parents=[client_options()],
        run=run,
    )
    parser.add_argument("spec", metavar="SPEC",
                        help="LABEL=..., UUID=..., PARTUUID=..., PARTLABEL=... or a path")


def run(args: argparse.Namespace) -> int:
    result = call(args, "dev", spec=args.spec)
    if args.output == "json":
        print_json(result)
    else:
        out(render(result))
    return EXIT_OK


def render(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)
    return "\n".join(str(d.get("devname")) for d in result.get("devices") or [] if isinstance(d, dict))
