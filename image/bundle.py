"""The upgrade bundle of a build (docs/install.md): ``out/bundle/`` (vmlinuz and initrd as hard links,
``manifest.json``, and with a signing key ``manifest.json.sig``) and ``out/corral-upgrade.tar``, the same
files in one uncompressed tar, manifest first. ``corral os upgrade --image`` takes either; the ISO's
``/boot`` carries the manifest so that ``corral install`` can verify what it copies from it.

The signature is ``ssh-keygen -Y sign -n corral-upgrade`` of the manifest's bytes (which hold every
file's sha256): an installed machine with ``corral.upgrade.trusted_keys`` set checks it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from osdisk import bundle as fmt

BUNDLE_DIR = "bundle"
SIGN_TIMEOUT = 60.0


class BundleBuildError(RuntimeError):
    pass


def sign_argv(key: Path, manifest: Path) -> list[str]:
    return ["ssh-keygen", "-Y", "sign", "-f", os.fspath(key), "-n", fmt.NAMESPACE, os.fspath(manifest)]


def write(out: Path, data: Mapping[str, Any], sign_key: Path | None = None) -> dict[str, Any]:
    """Make the bundle from ``out``'s vmlinuz and initrd; returns the manifest's ``bundle`` section."""
    staging = out / f".{BUNDLE_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in fmt.PAYLOAD:
        os.link(out / name, staging / name)
    manifest = fmt.make_manifest(staging, str(data["corral_version"]), str(data["kernel_version"]))
    (staging / fmt.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if sign_key is not None:
        done = subprocess.run(sign_argv(sign_key, staging / fmt.MANIFEST), capture_output=True, text=True,
                              check=False, timeout=SIGN_TIMEOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleBuildError(f"ssh-keygen -Y sign with {sign_key} failed: {done.stderr.strip()}")
    final = out / BUNDLE_DIR
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    fmt.pack(final, out / fmt.ARCHIVE_NAME)
    return {"archive": fmt.ARCHIVE_NAME, "bytes": (out / fmt.ARCHIVE_NAME).stat().st_size,
            "signed": sign_key is not None}
