"""The OS image build, for real: Debian packages through apt, the kernel's modules, cpio, zstd.

One build (from the cache when it is warm: the first one downloads about 110 MiB of .debs and takes a few
minutes) into a temporary directory; the initrd's listing is then checked for what the OS cannot boot
without, and the manifest for sizes that add up. A second build of the same inputs changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("apt-get", "dpkg-deb", "cpio", "zstd", "depmod", "ldconfig", "strip")
CORRAL_PYC = "usr/lib/python3/dist-packages/supervisor/__pycache__/app.cpython-311.pyc"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ldconfig -r, /dev/console node)"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}"),
    pytest.mark.timeout(1800),
]


def _build(out: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "image", "build", "-o", os.fspath(out), "--compression", "zstd"]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("image-out")
    result = _build(out)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result


def _listing(initrd: Path) -> list[str]:
    unzstd = subprocess.run(["zstd", "-dc", "--long=27", os.fspath(initrd)], capture_output=True, check=True)
    listed = subprocess.run(["cpio", "-it", "--quiet"], input=unzstd.stdout, capture_output=True, check=True)
    return listed.stdout.decode().splitlines()


def _extract(initrd: Path, dest: Path, *patterns: str) -> None:
    unzstd = subprocess.run(["zstd", "-dc", "--long=27", os.fspath(initrd)], capture_output=True, check=True)
    subprocess.run(["cpio", "-id", "--quiet", *patterns], input=unzstd.stdout, cwd=dest, check=True)


def _manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data


def test_output_has_kernel_initrd_and_manifest(built: tuple[Path, Any]) -> None:
    out, result = built
    assert (out / "vmlinuz").read_bytes()[0x202:0x206] == b"HdrS"  # an x86 bzImage
    assert (out / "initrd").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd magic
    for stage in ("resolve", "fetch", "base", "kernel", "images", "root", "initrd"):
        assert f"] {stage}" in result.stderr  # progress names every stage


def test_initrd_holds_what_the_os_boots_with(built: tuple[Path, Any]) -> None:
    out, _ = built
    names = set(_listing(out / "initrd"))
    for required in ("init", "dev/console", "usr/bin/python3.11", "usr/bin/python3", "bin",
                     "usr/bin/busybox", "usr/bin/sh", "usr/sbin/dockerd", "usr/bin/containerd",
                     "usr/sbin/runc", "usr/bin/docker",
                     "usr/sbin/iptables", "usr/bin/kmod", "usr/sbin/mkfs.ext4", "usr/bin/mount",
                     "usr/lib/systemd/systemd-udevd", "etc/ld.so.cache", "etc/os-release", "etc/passwd",
                     "usr/lib/python3/dist-packages/supervisor/__main__.py", CORRAL_PYC,
                     "usr/lib/python3/dist-packages/pyroute2/__init__.pyc",  # sourceless (python.sources)
                     "usr/lib/python3.11/asyncio/base_events.pyc",
                     "usr/share/corral/images/docker.tar"):
        assert required in names, required
    # the stdlib and the wheels ship without their sources; corral keeps its own
    assert "usr/lib/python3/dist-packages/pyroute2/__init__.py" not in names
    assert "usr/lib/python3.11/asyncio/base_events.py" not in names
    assert not any(n.startswith(("usr/share/doc/", "usr/share/man/", "usr/lib/python3.11/test/",
                                 "usr/lib/python3.11/idlelib/")) for n in names)
    modules = [n for n in names if n.startswith("usr/lib/modules/") and n.endswith(".ko")]
    assert modules


def test_modules_listed_with_their_dependencies(built: tuple[Path, Any], tmp_path: Path) -> None:
    out, _ = built
    data = _manifest(out)
    version = data["kernel_version"]
    names = set(_listing(out / "initrd"))
    base = f"usr/lib/modules/{version}"
    _extract(out / "initrd", tmp_path, f"{base}/modules.dep", f"{base}/modules.alias")
    deps = {}
    for line in (tmp_path / base / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    shipped = {Path(p).name.removesuffix(".ko").replace("-", "_"): p for p in deps}
    for module in ("virtio_blk", "virtio_net", "bonding", "8021q", "bridge", "overlay", "br_netfilter",
                   "nf_tables", "xt_MASQUERADE", "loop", "vfat", "squashfs"):
        assert module in shipped, module
        assert f"{base}/{shipped[module]}" in names
        for dep in deps[shipped[module]]:
            assert f"{base}/{dep}" in names, (module, dep)
    assert "virtio_pci" in (tmp_path / base / "modules.alias").read_text()  # MODALIAS loading finds it


def test_manifest_sizes_add_up(built: tuple[Path, Any]) -> None:
    out, _ = built
    data = _manifest(out)
    components = data["components"]
    assert set(components) >= {"kernel", "modules", "python", "docker", "corral", "images", "other"}
    assert components["kernel"] == (out / "vmlinuz").stat().st_size
    assert sum(v for k, v in components.items() if k != "kernel") == data["rootfs_bytes"]
    assert data["files"]["initrd"] == (out / "initrd").stat().st_size
    assert data["initrd_raw_bytes"] > data["rootfs_bytes"]  # cpio headers on top of the files
    assert all(v > 0 for v in components.values())
    assert data["compression"] == "zstd" and data["corral_version"]
    assert {p["name"] for p in data["packages"]} >= {"python3.11-minimal", "docker.io", "busybox-static"}


def _rebuild_same_inputs(out: Path, forget: bool) -> tuple[subprocess.CompletedProcess[str], bool, bytes]:
    """Build again; (result, whether the inputs were the same as the build before, the initrd before).
    Other work in the shared tree may change corral's sources in between: then build once more."""
    for _ in range(2):
        previous = _manifest(out)["input_hash"]
        initrd = (out / "initrd").read_bytes()
        if forget:
            (out / "manifest.json").rename(out / "manifest.previous.json")
        result = _build(out)
        assert result.returncode == 0, result.stderr[-4000:]
        if _manifest(out)["input_hash"] == previous:
            return result, True, initrd
    return result, False, initrd


def test_rebuild_with_same_inputs_is_a_no_op(built: tuple[Path, Any]) -> None:
    out, _ = built
    again, same, _ = _rebuild_same_inputs(out, forget=False)
    if not same:
        pytest.skip("the tree's sources kept changing during the test")
    assert "up to date" in again.stderr
    assert "] root: unchanged" in again.stderr and "] initrd: unchanged" in again.stderr


def test_rebuild_is_reproducible(built: tuple[Path, Any]) -> None:
    out, _ = built
    again, same, first = _rebuild_same_inputs(out, forget=True)  # no manifest: root and initrd made again
    if not same:
        pytest.skip("the tree's sources kept changing during the test")
    assert "up to date" not in again.stderr
    assert (out / "initrd").read_bytes() == first
