"""image.manifest: every file counted once under one component; the components add up."""

from __future__ import annotations

import os
from pathlib import Path

from image.manifest import OTHER, build_manifest, classify, component_sizes

COMPONENTS = {"modules": ["usr/lib/modules"], "corral": ["usr/lib/python3/dist-packages/supervisor"],
              "python": ["python3.11-minimal", "usr/lib/python3/dist-packages"], "docker": ["docker.io"]}


def test_classify_by_path_then_package() -> None:
    assert classify("usr/lib/modules/6.1/kernel/x.ko", None, COMPONENTS) == "modules"
    assert classify("usr/lib/python3/dist-packages/supervisor/app.py", None, COMPONENTS) == "corral"
    assert classify("usr/lib/python3/dist-packages/yaml/x.py", None, COMPONENTS) == "python"
    assert classify("usr/sbin/dockerd", "docker.io", COMPONENTS) == "docker"
    assert classify("usr/bin/python3.11", "python3.11-minimal", COMPONENTS) == "python"
    assert classify("usr/bin/kmod", "kmod", COMPONENTS) == OTHER


def test_sizes_count_hard_links_once_and_add_up(tmp_path: Path) -> None:
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/dockerd").write_bytes(b"d" * 1000)
    os.link(tmp_path / "usr/sbin/dockerd", tmp_path / "usr/sbin/dockerd-copy")
    (tmp_path / "usr/lib/modules").mkdir(parents=True)
    (tmp_path / "usr/lib/modules/a.ko").write_bytes(b"m" * 10)
    (tmp_path / "init").write_bytes(b"i" * 5)
    (tmp_path / "bin").symlink_to("usr/bin")
    owners = dict.fromkeys(["usr/sbin/dockerd", "usr/sbin/dockerd-copy"], "docker.io")
    sizes = component_sizes(tmp_path, owners, COMPONENTS)
    assert sizes == {"modules": 10, "corral": 0, "python": 0, "docker": 1000, OTHER: 5 + len("usr/bin")}
    data = build_manifest(corral_version="0.1.0", kernel_version="6.1", compression="zstd", initrd_bytes=1,
                          initrd_raw_bytes=2, kernel_bytes=3, components=sizes, packages=[("a", "1", "all")],
                          python=[], modules=[], images={}, input_hash="h")
    assert data["rootfs_bytes"] == sum(sizes.values())
    assert data["components"]["kernel"] == 3
