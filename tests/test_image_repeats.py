"""image.repeats and build.archive_order: the root's copies of what a preloaded image repeats are placed
around the image's archive in the initrd, where the compressor's window finds them."""

from __future__ import annotations

from pathlib import Path

from image.build import IMAGES_DIR, USER_IMAGES_DIR, archive_order, image_dest
from image.docker import Rootfs, write_archive
from image.repeats import repeated


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for rel, data in {"usr/lib/libc.so.6": b"C" * 5000, "usr/bin/busybox": b"B" * 3000,
                      "usr/bin/other": b"different on the host"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _image(tmp_path: Path, root: Path, name: str) -> Path:
    source = tmp_path / f"src-{name}"
    files: dict[str, Path] = {}
    for rel, data in {"usr/lib/libc.so.6": b"C" * 5000, "usr/bin/busybox": b"B" * 3000,
                      "usr/bin/other": b"different in the image", "etc/own": b"only here"}.items():
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(data)
        files[rel] = source / rel
    archive = root / IMAGES_DIR / f"{name}.tar"
    write_archive(archive, tags=[f"corral/{name}:latest"], fs=Rootfs(files=files, generated={}, base_dirs=()))
    return archive


def test_repeated_lists_files_with_the_roots_exact_bytes(tmp_path: Path) -> None:
    root = _root(tmp_path)
    archive = _image(tmp_path, root, "console")
    assert sorted(repeated(archive, root)) == ["usr/bin/busybox", "usr/lib/libc.so.6"]


def test_archive_order_puts_the_repeats_around_their_archive(tmp_path: Path) -> None:
    root = _root(tmp_path)
    images = {"console": _image(tmp_path, root, "console")}
    order = archive_order(images, root)
    at = order.index(f"{IMAGES_DIR}/console.tar")
    assert set(order[:at] + order[at + 1:-2]) == {"usr/bin/busybox", "usr/lib/libc.so.6"}
    assert order[-2:] == [IMAGES_DIR, USER_IMAGES_DIR]
    assert 0 < at < 3  # split: one before, one after


def test_the_user_dockerd_images_go_to_their_own_directory(tmp_path: Path) -> None:
    root = _root(tmp_path)
    order = archive_order({"user/busybox": _image(tmp_path, root, "busybox")}, root)
    assert f"{USER_IMAGES_DIR}/busybox.tar" in order
    assert image_dest("user/busybox") == "usr/share/corral/user-images/busybox.tar"
    assert image_dest("console") == "usr/share/corral/images/console.tar"


def test_a_file_repeated_by_two_images_is_placed_once(tmp_path: Path) -> None:
    root = _root(tmp_path)
    images = {"a": _image(tmp_path, root, "a"), "b": _image(tmp_path, root, "b")}
    order = archive_order(images, root)
    assert order.count("usr/lib/libc.so.6") == 1 and order.count("usr/bin/busybox") == 1
