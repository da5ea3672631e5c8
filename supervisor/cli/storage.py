"""`corral storage status | mount | unmount`: the state partition, the mount rules and what they mounted.

``status`` calls the control command ``storage.status``, which returns ``StorageServices.status()``
(supervisor/boot/storage.py): ``{"udev": ..., "devices": ..., "state": ..., "storage": ...}``.
``mount NAME`` and ``unmount NAME`` call ``storage.mount`` / ``storage.unmount`` (NAME: a rule's key
such as ``mounts[0]``, its path, or a device); both answer ``{"rule", "path", "state", "device"}``."""

from __future__ import annotations

import argparse
from typing import Any

from supervisor.cli.common import (
    EXIT_OK,
    Subparsers,
    add_command,
    call,
    client_options,
    out,
    print_json,
    table,
)


def add_parser(subparsers: Subparsers) -> None:
    group = add_command(
        subparsers,
        "storage",
        summary="storage: the state partition, mount rules, mounted devices",
        description="Storage: the state partition, the mounts: rules and what they mounted.",
        examples=[("corral storage status", ""),
                  ("corral storage unmount /mnt/data", "and keep it unmounted")],
    )
    commands = group.add_subparsers(dest="storage_command", metavar="COMMAND", required=True)
    add_command(
        commands,
        "status",
        summary="show the state partition, the rules and the mounts",
        description=(
            "Show where the state partition is (or why corral runs from RAM), every mounts: rule with\n"
            "what it mounted, mounts that failed or were unmounted by hand (not retried until the\n"
            "device changes), and the udev source's counters (overflows, reopens)."
        ),
        examples=[
            ("corral storage status", "for people"),
            ("corral storage status -o json | jq .storage.mounts", "what the rules mounted"),
        ],
        parents=[client_options()],
        run=run,
    )
    mount = add_command(
        commands,
        "mount",
        summary="mount a rule's device now (undoes `unmount`)",
        description=(
            "Mount what a mounts: rule matches now. NAME is the rule's key (mounts[0]), its path, or a\n"
            "device the rule matches (/dev/sdb1, LABEL=DATA). Undoes `corral storage unmount`, retries a\n"
            "mount that failed, and mounts a noauto rule too. Fails (exit 1) with the reason when nothing\n"
            "could be mounted: no device matches, the path is occupied, the mount failed."
        ),
        examples=[
            ("corral storage mount mounts[0]", "by the rule's key"),
            ("corral storage mount /mnt/data", "by its path"),
        ],
        parents=[client_options()],
        run=run_mount,
    )
    mount.add_argument("name", metavar="NAME", help="a rule's key or path, or a device it matches")
    unmount = add_command(
        commands,
        "unmount",
        summary="unmount a rule's mount and keep it unmounted",
        description=(
            "Unmount what a mounts: rule mounted (never lazily: a busy mount stays, exit 1) and keep it\n"
            "unmounted: corral does not mount it again until `corral storage mount NAME`, or until the\n"
            "device is re-plugged (it goes away, or its medium changes). `corral storage status` shows it\n"
            "as unmounted by request. NAME is the rule's key (mounts[0]), its path or its device."
        ),
        examples=[
            ("corral storage unmount /mnt/usb", "before pulling the stick"),
            ("corral storage unmount /dev/sdb1", "by the device"),
        ],
        parents=[client_options()],
        run=run_unmount,
    )
    unmount.add_argument("name", metavar="NAME", help="a rule's key or path, or the device it mounted")


def run(args: argparse.Namespace) -> int:
    result = call(args, "storage.status")
    if args.output == "json":
        print_json(result)
    else:
        out(render(result))
    return EXIT_OK


def run_mount(args: argparse.Namespace) -> int:
    return _request(args, "storage.mount")


def run_unmount(args: argparse.Namespace) -> int:
    return _request(args, "storage.unmount")


def _request(args: argparse.Namespace, cmd: str) -> int:
    result = call(args, cmd, name=args.name)
    if args.output == "json":
        print_json(result)
    else:
        out(render_request(result))
    return EXIT_OK


def render_request(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)
    if result.get("state") == "mounted":
        return f"{result.get('rule')}: {result.get('device')} mounted on {result.get('path')}"
    if result.get("state") == "mounting":
        return (f"{result.get('rule')}: mounting {result.get('device')} on {result.get('path')} "
                "(`corral storage status` shows how it went)")
    return (f"{result.get('rule')}: {result.get('path')} unmounted ({result.get('device')}); not mounted "
            f"again until `corral storage mount {result.get('rule')}` or the device is re-plugged")


def sourced_now(state: dict[str, Any]) -> str:
    """A bind or NFS rule's state, for the NOW column."""
    what, key = state.get("state"), state.get("rule")
    if what == "mounted":
        return f"mounted: {state.get('source')}"
    if what == "retrying":
        return (f"retrying in {state.get('retry_in')} s (attempt {state.get('attempts')} failed: "
                f"{state.get('error')})")
    if what == "failed":
        return (f"failed after {state.get('attempts')} attempts: {state.get('error')}; "
                f"`corral storage mount {key}` tries again")
    if what == "unmounted":
        return f"unmounted ({state.get('reason')}): `corral storage mount {key}` mounts it again"
    return str(what)


def render(status: Any) -> str:
    if not isinstance(status, dict):
        return str(status)
    lines = []
    state = status.get("state")
    if isinstance(state, dict):
        outcome = state.get("outcome")
        if outcome in ("found", "formatted"):
            text = f"{state.get('device')} on {state.get('path')} ({state.get('fstype')})"
            if outcome == "formatted":
                text += ", formatted this boot"
        elif outcome == "ram":
            text = f"none: running from RAM ({state.get('reason')})"
        else:
            text = f"{outcome}: {state.get('reason')}"
        lines.append(f"state:    {text}")
    storage = status.get("storage") or {}
    mounted = {m.get("path"): m for m in storage.get("mounts") or []}
    held = {h.get("path"): h for h in storage.get("held") or []}
    suppressed = {h.get("path"): h for h in storage.get("suppressed") or []}
    rules = storage.get("rules") or []
    lines.append(f"rules:    {len(rules)}")
    sourced = {x.get("rule"): x for x in storage.get("sourced") or []}
    rows = []
    for rule in rules:
        path = rule.get("path")
        if rule.get("key") in sourced:
            now = sourced_now(sourced[rule.get("key")])
        elif path in mounted:
            now = f"mounted: {mounted[path].get('device')}"
        elif path in suppressed:
            now = (f"unmounted by request ({suppressed[path].get('device')}): "
                   f"`corral storage mount {rule.get('key')}` mounts it again")
        elif path in held:
            now = f"held: {held[path].get('reason')}"
        elif not rule.get("auto", True):
            now = "noauto"
        else:
            now = "waiting for a device"
        rows.append([rule.get("key"), rule.get("match"), path, rule.get("options"), now])
    if rows:
        lines.extend(table(["RULE", "MATCH", "PATH", "OPTIONS", "NOW"], rows, indent="          "))
    for note in storage.get("notes") or []:
        lines.append(f"note:     {note}")
    udev = status.get("udev")
    if isinstance(udev, dict):
        lines.append(f"udev:     source {udev.get('source')}, {udev.get('received', 0)} events, "
                     f"{udev.get('coldplug_devices', 0)} devices at coldplug, "
                     f"overflows {udev.get('overflows', 0)}, rcvbuf {udev.get('rcvbuf')}")
    devices = status.get("devices")
    if isinstance(devices, dict):
        lines.append(f"modules:  {devices.get('aliases', 0)} aliases tried, "
                     f"{devices.get('loaded', 0)} loaded")
    return "\n".join(lines)
