"""Image preload's decisions and stamps, and the daemonless busybox image archive."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from image import busybox
from supervisor.paths import Paths
from units.images import (
    Archive,
    Stamp,
    find_archives,
    image_dirs,
    plan_loads,
    read_stamps,
    stamp_path,
    write_stamps,
)


def test_plan_loads_new_changed_and_missing() -> None:
    a = Archive(Path("/i/a.tar"), 10, 100)
    b = Archive(Path("/i/b.tar"), 20, 200)
    c = Archive(Path("/i/c.tar.gz"), 30, 300)
    d = Archive(Path("/i/d.tar"), 40, 400)
    stamps = {
        "/i/a.tar": Stamp(10, 100, ("a:1",)),  # unchanged: skipped
        "/i/b.tar": Stamp(20, 199, ("b:1",)),  # mtime changed: loaded
        "/i/c.tar.gz": Stamp(30, 300, ("c:1", "c:2")),  # an image it held is gone: loaded
    }  # d: never loaded
    load, skip = plan_loads([a, b, c, d], stamps, missing_images=["c:2"])
    assert [x.path.name for x in load] == ["b.tar", "c.tar.gz", "d.tar"]
    assert skip == [a]
    assert plan_loads([a], {"/i/a.tar": Stamp(11, 100)})[0] == [a]  # size changed


def test_find_archives(tmp_path: Path) -> None:
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    shipped.mkdir()
    for name in ("b.tar", "a.tar.xz", "notes.txt", ".hidden.tar", "c.tgz"):
        (shipped / name).write_bytes(b"x" * len(name))
    (shipped / "dir.tar").mkdir()
    found = find_archives([shipped, user])  # user: missing, ignored
    assert [a.path.name for a in found] == ["a.tar.xz", "b.tar", "c.tgz"]
    assert found[1].size == 5 and found[1].mtime_ns == (shipped / "b.tar").stat().st_mtime_ns


def test_stamps_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "state" / "preload.json"
    stamps = {"/x/a.tar": Stamp(1, 2, ("a:1",), 3.5)}
    write_stamps(path, stamps)
    assert read_stamps(path) == stamps
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    path.write_text("{not json")
    assert read_stamps(path) == {}
    path.write_text(json.dumps({"version": 99, "archives": {}}))
    assert read_stamps(path) == {}
    assert read_stamps(tmp_path / "missing.json") == {}


def test_preload_paths_follow_the_prefix(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    assert image_dirs(paths) == [tmp_path / "usr/share/corral/images", tmp_path / "var/lib/corral/preload"]
    assert stamp_path(paths) == tmp_path / "var/lib/corral/preload.json"


@pytest.mark.skipif(not busybox.BUSYBOX.exists(), reason="busybox-static is not installed")
def test_busybox_archive_is_a_reproducible_docker_save(tmp_path: Path) -> None:
    one, two = tmp_path / "one.tar", tmp_path / "two.tar"
    image_id = busybox.write_archive(one)
    assert busybox.write_archive(two) == image_id
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["corral/busybox:latest", "corral-test/busybox:latest"]
        config_bytes = tar.extractfile(manifest[0]["Config"]).read()  # type: ignore[union-attr]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Cmd"] == ["sh"] and config["os"] == "linux"
    with tarfile.open(fileobj=__import__("io").BytesIO(layer)) as rootfs:
        names = rootfs.getnames()
        assert "bin/busybox" in names and "bin/sh" in names and "tmp" in names
        assert rootfs.getmember("bin/sh").linkname == "busybox"


@pytest.mark.skipif(not busybox.BUSYBOX.exists(), reason="busybox-static is not installed")
def test_busybox_cache_is_rebuilt_only_when_stale(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "busybox.tar"
    busybox.ensure(cache)
    built = cache.stat().st_mtime_ns
    busybox.ensure(cache)
    assert cache.stat().st_mtime_ns == built
    os.utime(cache, (0, 0))  # older than busybox: stale
    busybox.ensure(cache)
    assert cache.stat().st_mtime_ns != 0
    assert busybox.main(["--output", str(tmp_path / "tagged.tar"), "--tag", "a/b:c"]) == 0
    with tarfile.open(tmp_path / "tagged.tar") as tar:
        assert json.loads(tar.extractfile("manifest.json").read())[0]["RepoTags"] == ["a/b:c"]  # type: ignore[union-attr]
