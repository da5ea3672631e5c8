"""The upgrade bundle: one version of corral as files a slot holds (docs/install.md).

A bundle is ``vmlinuz``, ``initrd`` and ``manifest.json`` (``corral-bundle/1``: corral_version,
kernel_version, and each file's sha256 and size), optionally with ``manifest.json.sig``, an
``ssh-keygen -Y sign -n corral-upgrade`` signature of the manifest's bytes. ``corral-image build`` writes
one as a directory (``out/bundle/``) and as one uncompressed tar (``out/corral-upgrade.tar``, the manifest
first); the ISO's ``/boot`` is a bundle directory too.

``verify`` refuses a bundle whose files do not match its manifest, and, when trusted keys are given, one
without a signature or whose signature none of them made. Everything is checked before anything is
written to a disk."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "corral-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
PAYLOAD = ("vmlinuz", "initrd")
SLOT_FILES = (*PAYLOAD, MANIFEST)
"""What a slot holds, and the order it is written in (the manifest last)."""
ARCHIVE_NAME = "corral-upgrade.tar"
NAMESPACE = "corral-upgrade"
PRINCIPAL = "corral-upgrade"
MAX_MANIFEST = 64 << 10
MAX_SIGNATURE = 16 << 10
MAX_PAYLOAD = 480 << 20
"""The most one file may hold: both fit a 512 MiB slot with room for ext4's own."""
SSH_KEYGEN_TIMEOUT = 30.0
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
PUBLIC_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
                        r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}( [^\n\r]*)?$")


class BundleError(RuntimeError):
    pass


@dataclass(frozen=True)
class Bundle:
    directory: Path
    manifest: Mapping[str, Any]
    manifest_bytes: bytes

    @property
    def version(self) -> str:
        return str(self.manifest["corral_version"])

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def signed(self) -> bool:
        return self.path(SIGNATURE).is_file()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_manifest(directory: Path, corral_version: str, kernel_version: str) -> dict[str, Any]:
    """The manifest of ``directory``'s vmlinuz and initrd (the build calls it)."""
    files = {name: {"sha256": sha256_file(directory / name), "bytes": (directory / name).stat().st_size}
             for name in PAYLOAD}
    return {"format": FORMAT, "corral_version": corral_version, "kernel_version": kernel_version,
            "files": files}


def parse_manifest(data: bytes, source: str) -> dict[str, Any]:
    """A bundle manifest's bytes -> its dict (pure); BundleError naming ``source`` and what is wrong."""
    if len(data) > MAX_MANIFEST:
        raise BundleError(f"{source}: larger than {MAX_MANIFEST} bytes")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"{source}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BundleError(f"{source}: not a {FORMAT} manifest (format: {_short(doc)})")
    for key in ("corral_version", "kernel_version"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise BundleError(f"{source}: {key} missing or not a string")
    files = doc.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(PAYLOAD):
        raise BundleError(f"{source}: files must name exactly {', '.join(PAYLOAD)}")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not _SHA256.match(entry["sha256"]):
            raise BundleError(f"{source}: files.{name}.sha256 missing or not a sha256")
        size = entry.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_PAYLOAD:
            raise BundleError(f"{source}: files.{name}.bytes must be 1..{MAX_PAYLOAD}")
    return doc


def _short(value: Any) -> str:
    text = repr(value.get("format") if isinstance(value, dict) else type(value).__name__)
    return text[:60]


def read(directory: Path) -> Bundle:
    """The bundle in ``directory`` (its manifest parsed; the files not yet checked: ``verify``)."""
    path = directory / MANIFEST
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST + 1)
    except OSError as exc:
        raise BundleError(f"{path}: {exc.strerror or exc}") from None
    return Bundle(directory, parse_manifest(data, str(path)), data)


def check_files(bundle: Bundle) -> None:
    """Each payload file's size and sha256 against the manifest; BundleError naming the first that
    differs."""
    for name in PAYLOAD:
        want = bundle.manifest["files"][name]
        path = bundle.path(name)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise BundleError(f"{path}: {exc.strerror or exc}") from None
        if size != want["bytes"]:
            raise BundleError(f"{path}: {size} bytes, the manifest says {want['bytes']}")
        got = sha256_file(path)
        if got != want["sha256"]:
            raise BundleError(f"{path}: sha256 {got} does not match the manifest's {want['sha256']}")


def allowed_signers(trusted_keys: Sequence[str]) -> str:
    """ssh-keygen's allowed signers file for ``trusted_keys`` (OpenSSH public key lines; pure)."""
    lines = []
    for key in trusted_keys:
        keytype, blob = key.split()[:2]
        lines.append(f'{PRINCIPAL} namespaces="{NAMESPACE}" {keytype} {blob}')
    return "\n".join(lines) + "\n"


def verify_argv(signers: Path, signature: Path) -> list[str]:
    return ["ssh-keygen", "-Y", "verify", "-f", os.fspath(signers), "-I", PRINCIPAL, "-n", NAMESPACE,
            "-s", os.fspath(signature)]


def check_signature(bundle: Bundle, trusted_keys: Sequence[str]) -> str:
    """With trusted keys: the manifest must carry a signature one of them made (``ssh-keygen -Y verify``);
    returns ssh-keygen's line naming the key. BundleError otherwise."""
    sig = bundle.path(SIGNATURE)
    if not sig.is_file():
        raise BundleError(f"{bundle.directory}: unsigned ({SIGNATURE} missing) and "
                          "corral.upgrade.trusted_keys requires a signature")
    if sig.stat().st_size > MAX_SIGNATURE:
        raise BundleError(f"{sig}: larger than {MAX_SIGNATURE} bytes")
    if shutil.which("ssh-keygen") is None:
        raise BundleError("ssh-keygen is missing: cannot check the bundle's signature")
    with tempfile.TemporaryDirectory(prefix="corral-verify-") as tmp:
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(allowed_signers(trusted_keys))
        try:
            done = subprocess.run(verify_argv(signers, sig), input=bundle.manifest_bytes, capture_output=True,
                                  timeout=SSH_KEYGEN_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise BundleError(f"ssh-keygen -Y verify took more than {SSH_KEYGEN_TIMEOUT:.0f} s") from None
    said = (done.stdout + done.stderr).decode(errors="replace").strip()
    if done.returncode != 0:
        last = said.splitlines()[-1] if said else "ssh-keygen failed"
        raise BundleError(f"{sig}: the signature is not from a trusted key ({last})")
    return said


def verify(bundle: Bundle, trusted_keys: Sequence[str] = ()) -> None:
    """The signature first (when keys are trusted), then every file's size and sha256."""
    if trusted_keys:
        check_signature(bundle, trusted_keys)
    check_files(bundle)


def unpack(archive: Path, dest: Path) -> Bundle:
    """Extract a bundle tar into ``dest`` (an empty directory): only the bundle's names, regular files,
    each bounded; anything else refuses the archive."""
    limits = {MANIFEST: MAX_MANIFEST, SIGNATURE: MAX_SIGNATURE, **dict.fromkeys(PAYLOAD, MAX_PAYLOAD)}
    try:
        with tarfile.open(archive, "r:") as tar:
            seen: set[str] = set()
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in limits or name in seen or not member.isreg():
                    raise BundleError(f"{archive}: unexpected member {member.name!r} "
                                      f"(a bundle holds {', '.join(limits)})")
                if member.size > limits[name]:
                    raise BundleError(f"{archive}: {name} is larger than {limits[name]} bytes")
                seen.add(name)
                src = tar.extractfile(member)
                if src is None:
                    raise BundleError(f"{archive}: cannot read {name}")
                with src, open(dest / name, "xb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except (tarfile.TarError, EOFError) as exc:
        raise BundleError(f"{archive}: not a bundle tar ({exc})") from None
    return read(dest)


def pack(directory: Path, dest: Path) -> None:
    """Write ``directory``'s bundle as one uncompressed tar (manifest and signature first), atomically."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in (MANIFEST, SIGNATURE, *PAYLOAD):
            if (directory / name).is_file():
                info = tar.gettarinfo(directory / name, arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                with open(directory / name, "rb") as f:
                    tar.addfile(info, f)
    os.replace(tmp, dest)
