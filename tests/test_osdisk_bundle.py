"""The upgrade bundle (osdisk/bundle.py): its manifest, the sha256 check, ssh-keygen's signature (the
real ssh-keygen), and the tar."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from osdisk import bundle
from osdisk.bundle import BundleError


def make(directory: Path, version: str = "1.2.3") -> bundle.Bundle:
    directory.mkdir(parents=True)
    (directory / "vmlinuz").write_bytes(b"k" * 1000)
    (directory / "initrd").write_bytes(b"i" * 5000)
    (directory / bundle.MANIFEST).write_text(json.dumps(bundle.make_manifest(directory, version, "6.1.0")))
    return bundle.read(directory)


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key, (directory / f"{name}.pub").read_text().strip()


def sign(b: bundle.Bundle, key: Path) -> None:
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", bundle.NAMESPACE,
                    str(b.path(bundle.MANIFEST))], check=True, capture_output=True)


def test_a_good_bundle_verifies_and_names_its_version(tmp_path: Path) -> None:
    b = make(tmp_path / "b")
    bundle.verify(b)
    assert b.version == "1.2.3" and not b.signed
    assert b.manifest["files"]["initrd"]["bytes"] == 5000


def test_one_byte_changed_is_refused_naming_the_file(tmp_path: Path) -> None:
    b = make(tmp_path / "b")
    data = bytearray(b.path("initrd").read_bytes())
    data[100] ^= 1
    b.path("initrd").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"initrd: sha256 [0-9a-f]{64} does not match the manifest's"):
        bundle.verify(b)


def test_a_truncated_file_is_refused_by_its_size(tmp_path: Path) -> None:
    b = make(tmp_path / "b")
    b.path("vmlinuz").write_bytes(b"k" * 999)
    with pytest.raises(BundleError, match="vmlinuz: 999 bytes, the manifest says 1000"):
        bundle.check_files(b)


@pytest.mark.parametrize(("doc", "reason"), [
    (b"not json", "not JSON"),
    (b'{"format": "other"}', "not a corral-bundle/1 manifest"),
    (b'{"format": "corral-bundle/1", "corral_version": "1", "kernel_version": "k", "files": {}}',
     "files must name exactly vmlinuz, initrd"),
    (b'{"format": "corral-bundle/1", "corral_version": "1", "kernel_version": "k", "files": '
     b'{"vmlinuz": {"sha256": "x", "bytes": 1}, "initrd": {"sha256": "x", "bytes": 1}}}',
     "files.vmlinuz.sha256 missing or not a sha256"),
])
def test_bad_manifests_are_refused(doc: bytes, reason: str) -> None:
    with pytest.raises(BundleError, match=reason):
        bundle.parse_manifest(doc, "m.json")


@pytest.fixture
def need_ssh_keygen() -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen missing")


@pytest.mark.usefixtures("need_ssh_keygen")
def test_signature_from_a_trusted_key_verifies(tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "release")
    b = make(tmp_path / "b")
    sign(b, key)
    assert b.signed
    said = bundle.check_signature(b, [public])
    assert "corral-upgrade" in said
    _other, foreign = keypair(tmp_path, "other")
    bundle.verify(b, [foreign, public])  # one of the trusted keys made it


@pytest.mark.usefixtures("need_ssh_keygen")
def test_unsigned_or_foreign_or_tampered_manifest_is_refused_when_keys_are_trusted(tmp_path: Path) -> None:
    _key, public = keypair(tmp_path, "release")
    other, _ = keypair(tmp_path, "other")
    b = make(tmp_path / "b")
    with pytest.raises(BundleError, match="unsigned"):
        bundle.verify(b, [public])
    sign(b, other)
    with pytest.raises(BundleError, match="not from a trusted key"):
        bundle.verify(b, [public])
    key = tmp_path / "release"
    b.path(bundle.SIGNATURE).unlink()
    sign(b, key)
    doc = json.loads(b.path(bundle.MANIFEST).read_text())
    doc["corral_version"] = "6.6.6"  # the manifest changed after it was signed
    b.path(bundle.MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="not from a trusted key"):
        bundle.verify(bundle.read(b.directory), [public])


def test_signature_is_checked_against_the_allowed_signers_namespace() -> None:
    text = bundle.allowed_signers(["ssh-ed25519 AAAAB3 me@host"])
    assert text == 'corral-upgrade namespaces="corral-upgrade" ssh-ed25519 AAAAB3\n'


def test_tar_round_trip_and_foreign_members_refused(tmp_path: Path) -> None:
    b = make(tmp_path / "b")
    archive = tmp_path / bundle.ARCHIVE_NAME
    bundle.pack(b.directory, archive)
    with tarfile.open(archive) as tar:
        assert tar.getnames() == [bundle.MANIFEST, "vmlinuz", "initrd"]
    (tmp_path / "u").mkdir()
    got = bundle.unpack(archive, tmp_path / "u")
    bundle.verify(got)
    assert got.version == "1.2.3"
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(b.path(bundle.MANIFEST), arcname="../../etc/passwd")
    (tmp_path / "v").mkdir()
    with pytest.raises(BundleError, match=r"unexpected member '\.\./\.\./etc/passwd'"):
        bundle.unpack(evil, tmp_path / "v")
    (tmp_path / "w").mkdir()
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BundleError, match="not a bundle tar"):
        bundle.unpack(tmp_path / "junk.tar", tmp_path / "w")


def test_trusted_keys_are_validated_by_the_config_schema() -> None:
    from supervisor.config.layers import check_text
    from supervisor.config.schema import Schema
    from supervisor.config.validate import Validator

    schema = Schema()
    node = schema.copy()["$defs"]["corral"]["properties"]["upgrade"]["properties"]["trusted_keys"]
    assert node["items"]["pattern"] == bundle.PUBLIC_KEY.pattern  # one policy: the schema's is the verifier's
    validator = Validator(schema)
    good = ("corral:\n  upgrade:\n    trusted_keys:\n"
            "      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+x/y= release@ci\n")
    _, errors = check_text(good, "c.yml", validator)
    assert errors == []
    _, errors = check_text("corral:\n  upgrade:\n    trusted_keys: [not-a-key]\n", "c.yml", validator)
    assert [e.key for e in errors] == ["corral.upgrade.trusted_keys[0]"]
    _, errors = check_text("corral:\n  upgrade:\n    trusted_keys: ssh-ed25519 AAAA\n", "c.yml", validator)
    assert [e.key for e in errors] == ["corral.upgrade.trusted_keys"]
