"""`corral install` and `corral os upgrade`: the installed disk (osdisk/; docs/install.md).

Both run here, in the CLI's process, as root: they partition, format and write disks with Debian's tools
(by argv, each with a timeout), never through PID 1. They ask PID 1 only for the trusted keys of
``corral.upgrade.trusted_keys`` (when it answers)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from supervisor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    Subparsers,
    add_command,
    call,
    client_options,
    out,
    print_json,
    read_input,
)
from supervisor.control.protocol import ControlError, ControlUnavailable

TRUSTED_KEYS = "corral.upgrade.trusted_keys"


def add_parser(subparsers: Subparsers) -> None:
    install = add_command(
        subparsers,
        "install",
        summary="install corral to a disk (from the live OS)",
        description=(
            "Make DEVICE a disk that boots corral by itself, on BIOS and UEFI: a GPT with GRUB's BIOS boot\n"
            "partition, an EFI system partition, two slots (A, B) and the state partition (CORRAL_STATE);\n"
            "GRUB for both firmwares; the running version into slot A (from the live medium, the ISO, or\n"
            "the bundle --image names, verified first); --config FILE as the installed machine's config.\n"
            "A disk with anything on it (a filesystem, a partition table, any signature wipefs finds) or\n"
            "mounted (or one of its partitions) is refused, naming what was found, unless --force.\n"
            "Prints each step. Exit 0 installed, 1 refused or failed (the reason says which), 2 bad usage."
        ),
        examples=[
            ("corral install --device /dev/vda --config cloud-config.yml", ""),
            ("corral install --device /dev/sda --force", "a disk that held something: it is all erased"),
        ],
        parents=[client_options()],
        run=run_install,
    )
    install.add_argument("--device", required=True, metavar="DEV", help="the whole disk, e.g. /dev/vda")
    install.add_argument("--config", metavar="FILE", help="cloud-config of the installed machine (validated)")
    install.add_argument("--force", action="store_true", help="erase a disk that holds data or is mounted")
    install.add_argument("--image", metavar="PATH", help="install this bundle (a corral-upgrade.tar or a "
                         "bundle directory) instead of the live medium's")
    install.add_argument("--json", action="store_true", help="print the result as JSON (same as -o json)")

    os_group = add_command(
        subparsers, "os", summary="the installed OS's versions: upgrade, list, rollback",
        description=("The versions in the installed disk's two boot slots (A and B): write a new one into\n"
                     "the slot not running and try it once (upgrade), see them (list), go back (rollback)."),
        examples=[("corral os list", "which version each slot holds"),
                  ("corral os upgrade --image corral-upgrade.tar && corral reboot", "")])
    os_sub = os_group.add_subparsers(dest="os_command", metavar="COMMAND", required=True)
    upgrade = add_command(
        os_sub,
        "upgrade",
        summary="write a new version into the other slot and boot it once",
        description=(
            "Get the bundle FILE or URL names (corral-image build's corral-upgrade.tar, or a bundle\n"
            "directory), verify it (its signature when corral.upgrade.trusted_keys is set: an unsigned\n"
            "or foreign one is refused; every file's sha256 against its manifest) before anything is\n"
            "written, write it whole into the slot this boot is not from, and make that slot the next\n"
            "boot once. It becomes the default only when that boot is good; reboot to try it.\n"
            "Exit 0 written, 1 refused or failed, 2 bad usage."
        ),
        examples=[
            ("corral os upgrade --image corral-upgrade.tar && corral reboot", ""),
            ("corral os upgrade --image https://example.com/corral-upgrade.tar", ""),
        ],
        parents=[client_options()],
        run=run_upgrade,
    )
    upgrade.add_argument("--image", required=True, metavar="FILE|URL", help="the bundle")
    upgrade.add_argument("--json", action="store_true", help="print the result as JSON (same as -o json)")
    from supervisor.cli import os_slots

    os_slots.add_parsers(os_sub)


def _json(args: argparse.Namespace) -> bool:
    return bool(args.json) or args.output == "json"


def _progress(args: argparse.Namespace) -> Any:
    def progress(step: str, detail: str) -> None:
        stream = sys.stderr if _json(args) else sys.stdout
        print(f"{step}: {detail}" if detail else f"{step} ...", file=stream, flush=True)
    return progress


def trusted_keys(args: argparse.Namespace) -> list[str]:
    """The keys PID 1's config trusts; none when it has none (or no PID 1 answers: a live boot)."""
    try:
        value = call(args, "config.get", key=TRUSTED_KEYS)
    except ControlUnavailable:
        return []
    except ControlError:
        return []
    return [str(k) for k in value] if isinstance(value, list) else []


def run_install(args: argparse.Namespace) -> int:
    from osdisk import bundle, install
    from osdisk.disk import DiskError, Tools
    from osdisk.layout import LayoutError

    if os.geteuid() != 0:
        raise CliError("corral install needs root")
    config: bytes | None = None
    if args.config:
        text = read_input(args.config)
        _check_config(text, args.config)
        config = text.encode()
    tools = Tools()
    progress = _progress(args)
    try:
        facts = install.inspect(args.device, tools)
        found = install.refusals(facts)
        if found and not args.force:
            raise CliError(f"{args.device} is not blank (--force erases it): " + "; ".join(found))
        keys = trusted_keys(args)
        if args.image:
            from osdisk import upgrade

            with upgrade.staged(args.image, Path("/run/corral")) as source:
                report = _install(install, args, source, keys, config, progress, found)
        else:
            with install.live_bundle(tools) as source:
                report = _install(install, args, source, keys, config, progress, found)
    except (install.InstallError, bundle.BundleError, DiskError, LayoutError, OSError) as exc:
        raise CliError(f"install {args.device}: {exc}") from None
    if _json(args):
        print_json(report.to_dict())
    else:
        out(f"installed corral {report.version} on {args.device} (slot A); remove the live medium and "
            "reboot")
    return EXIT_OK


def _install(install: Any, args: argparse.Namespace, source: Any, keys: list[str], config: bytes | None,
             progress: Any, found: list[str]) -> Any:
    progress("check", f"corral {source.version} from {source.directory}: "
             + ("signature and sha256" if keys else "sha256") + (f"; --force over: {'; '.join(found)}"
                                                                 if found else "; the disk is blank"))
    install.check_source(source, keys)
    return install.install(args.device, source, config, progress)


def _check_config(text: str, filename: str) -> None:
    from supervisor.cli.config import _offline_store
    from supervisor.config.store import verdict_reply

    result = verdict_reply(_offline_store().verdict(text, filename))
    if not result["valid"]:
        problems = "; ".join(f"{e.get('path') or ''}: {e.get('message')}" for e in result["errors"])
        raise CliError(f"--config {filename} is not valid: {problems}")


def run_upgrade(args: argparse.Namespace) -> int:
    from osdisk import bootdisk, bundle, upgrade
    from osdisk.disk import DiskError

    if os.geteuid() != 0:
        raise CliError("corral os upgrade needs root")
    try:
        report = upgrade.upgrade(args.image, trusted_keys(args), _progress(args))
    except (upgrade.UpgradeError, bundle.BundleError, bootdisk.BootDiskError, DiskError, OSError) as exc:
        raise CliError(f"os upgrade: {exc}") from None
    if _json(args):
        print_json(report.to_dict())
    else:
        out(f"corral {report.version} written to slot {report.slot}; the next boot tries it once "
            "(corral reboot)")
    return EXIT_OK if report.slot else EXIT_FAILED
