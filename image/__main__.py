"""``corral-image`` / ``python -m image``: ``build`` the OS image, ``run`` it in QEMU."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_main(argv: Sequence[str]) -> int:
    from image import build, definition, initramfs, iso

    parser = argparse.ArgumentParser(prog="corral-image build",
                                     description=(build.__doc__ or "").split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=build.DEFAULT_OUT,
                        help="directory for vmlinuz, initrd and manifest.json (default: .cache/image/out)")
    parser.add_argument("--compression", choices=list(initramfs.COMPRESSORS), default="zstd",
                        help="initrd compression (default: zstd; xz is the smallest, and slow to make)")
    parser.add_argument("--definition", type=Path, default=definition.DEFAULT_PATH,
                        help="image definition YAML (default: image/definition.yml)")
    parser.add_argument("--version", dest="version", default=None, metavar="VERSION",
                        help="the image's corral version: os-release, manifest.json, corral status, "
                             "corral os list and the console show it (default: the project's, "
                             f"{build.corral_version()})")
    parser.add_argument("--iso", action="store_true",
                        help="also make corral.iso in the output directory: a hybrid ISO (BIOS and UEFI, CD "
                             "or USB stick) that boots the live OS with this vmlinuz and initrd")
    parser.add_argument("--sign-key", type=Path, metavar="FILE",
                        help="sign the upgrade bundle's manifest with this ssh private key (ssh-keygen -Y "
                             "sign -n corral-upgrade); machines with corral.upgrade.trusted_keys check it")
    locks = parser.add_mutually_exclusive_group()
    locks.add_argument("--update-lock", action="store_true",
                       help="resolve every package again and rewrite the lock files")
    locks.add_argument("--frozen", action="store_true",
                       help="build exactly what the lock files pin: fail, naming them, when the archive no "
                            "longer has a pinned version (default: move such pins to the archive's current "
                            "version, say which, and rewrite the lock)")
    parser.add_argument("--lock", type=Path, default=build.LOCK,
                        help="the image's package lock (default: image/packages.lock)")
    parser.add_argument("--console-lock", type=Path, default=build.CONSOLE_LOCK,
                        help="the console image's package lock (default: image/console.lock)")
    parser.add_argument("--python-lock", type=Path, default=build.PYTHON_LOCK,
                        help="the image's Python requirements lock (default: image/python.lock)")
    args = parser.parse_args(list(argv))
    try:
        data = build.build(definition.load(args.definition), args.output.resolve(), args.compression,
                           locks=build.Locks(args.lock.resolve(), args.console_lock.resolve(),
                                             args.python_lock.resolve(),
                                             update=args.update_lock, frozen=args.frozen),
                           sign_key=args.sign_key, version=args.version)
        if args.iso:
            data = build.add_iso(data, args.output.resolve())
    except (build.BuildError, definition.DefinitionError, iso.IsoError, OSError, RuntimeError) as exc:
        print(f"corral-image build: {exc}", file=sys.stderr)
        return 1
    print(build.summary(data))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: corral-image {build,run} [options]  (corral-image COMMAND --help for more)"
    if not args or args[0] in ("-h", "--help"):
        print(usage)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "build":
        return build_main(rest)
    if command == "run":
        from image import run  # the QEMU side: imported only when asked for

        return run.main(rest)
    print(f"corral-image: unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
