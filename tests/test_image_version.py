"""The image's version (issue 15 item 5): ``corral-image build --version V`` (default: the project's)
reaches the copied sources' ``__version__`` (status, ``corral --version``, the ready line), os-release
and the inputs hash (another version is another initrd)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from image import __main__ as image_main
from image import build, rootfs
from supervisor import __version__


def _load_version(src: Path) -> str:
    spec = importlib.util.spec_from_file_location("copied_supervisor", src / rootfs.VERSION_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.__version__)


def test_the_copied_sources_carry_the_builds_version_and_hash_differently(tmp_path: Path) -> None:
    src = rootfs.copy_corral_sources(build.REPO_ROOT, tmp_path / "one")
    before = build.corral_sources_hash(src)
    rootfs.set_version(src, __version__)  # the default: the sources as they are
    assert build.corral_sources_hash(src) == before and _load_version(src) == __version__
    rootfs.set_version(src, "2.0.0-rc1")
    assert _load_version(src) == "2.0.0-rc1"
    assert build.corral_sources_hash(src) != before
    assert (build.REPO_ROOT / rootfs.VERSION_FILE).read_text().count(f'"{__version__}"') == 1  # untouched


def test_os_release_names_the_version() -> None:
    release = rootfs.etc_files("2.0.0")["usr/lib/os-release"].decode()
    assert 'VERSION_ID="2.0.0"' in release and 'PRETTY_NAME="corral 2.0.0"' in release


@pytest.mark.parametrize("bad", ["", "1 0", 'a"b', "../x", "-1", "x" * 65, "1.0\n"])
def test_a_version_that_cannot_go_everywhere_is_refused(bad: str) -> None:
    with pytest.raises(build.BuildError, match="--version"):
        build.check_version(bad)


def test_good_versions() -> None:
    for good in ("0.1.0", "2.0.0-rc1", "1.0+git.abc", "2024.05~1", "v3"):
        assert build.check_version(good) == good


def test_the_command_line_passes_the_version_and_defaults_to_the_projects(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    seen: list[Any] = []

    def fake_build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs.get("version"))
        raise build.BuildError("stop here")

    monkeypatch.setattr(build, "build", fake_build)
    assert image_main.build_main(["-o", str(tmp_path), "--version", "2.0.0"]) == 1
    assert image_main.build_main(["-o", str(tmp_path)]) == 1
    assert seen == ["2.0.0", None]  # None: build() takes the project's version
