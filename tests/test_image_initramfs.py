"""image.initramfs: archive order (directories first, chosen paths last) and the real cpio listing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from image.initramfs import InitramfsError, listing, order, split_around, write


def test_order_parents_first_then_moved_entries_in_given_order() -> None:
    entries = ["usr", "usr/bin", "usr/bin/dockerd", "usr/bin-x", "init", "usr/share", "usr/share/img",
               "usr/share/img/docker.tar", "usr/bin/containerd", "."]
    dirs = {"usr", "usr/bin", "usr/share", "usr/share/img", "."}
    result = order(entries, ["usr/bin/dockerd", "usr/bin/containerd", "usr/share/img"], dirs)
    assert result == [".", "init", "usr", "usr/bin", "usr/bin-x", "usr/share", "usr/share/img",
                      "usr/bin/dockerd", "usr/bin/containerd", "usr/share/img/docker.tar"]


def test_split_around_keeps_every_repeat_within_half_the_archive() -> None:
    # the docker image's layer order and sizes (MB), as in the real build
    sizes = {"containerd": 46, "shim": 11, "tini": 1, "libs": 4, "proxy": 2, "dockerd": 72, "runc": 8}
    layer = list(sizes)
    before, after = split_around(layer, sizes)
    assert before + after == layer
    # distance from a root copy to its repeat in the archive: the sum of its side
    assert max(sum(sizes[f] for f in before), sum(sizes[f] for f in after)) == 80
    assert after == ["dockerd", "runc"]
    assert split_around([], {}) == ([], [])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs cpio")
def test_write_none_is_a_newc_archive_in_listing_order(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("x" * 100)
    (root / "init").write_text("#!/bin/sh\n")
    (root / "bin").symlink_to("usr/bin")
    sizes = write(root, tmp_path / "initrd", "none", last=["init"])
    assert sizes.raw == sizes.compressed == (tmp_path / "initrd").stat().st_size
    data = (tmp_path / "initrd").read_bytes()
    listed = subprocess.run(["cpio", "-it", "--quiet"], input=data, capture_output=True, check=True).stdout
    out = listed.decode().split()
    assert out == listing(root, ["init"]) == [".", "bin", "usr", "usr/bin", "usr/bin/python3", "init"]
    verbose = subprocess.run(["cpio", "-itv", "--quiet"], input=data, capture_output=True, check=True).stdout
    assert all(b" root " in line for line in verbose.splitlines())


def test_write_rejects_unknown_compression(tmp_path: Path) -> None:
    with pytest.raises(InitramfsError, match="compression 'lz4'"):
        write(tmp_path, tmp_path / "initrd", "lz4")
