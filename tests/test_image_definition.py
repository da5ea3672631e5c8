"""image.definition: the shipped definition loads; bad input names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from image.definition import DefinitionError, load, parse


def test_shipped_definition_loads() -> None:
    definition = load()
    assert definition.kernel_package == "linux-image-cloud-amd64"
    assert "python3-minimal" in definition.packages and "dpkg" in definition.exclude
    assert definition.all_packages[-1] == definition.kernel_package
    assert {"virtio_blk", "button", "evdev", "overlay"} <= set(definition.modules)
    assert definition.images == ["docker", "console"]
    assert set(definition.components) >= {"modules", "python", "docker", "corral", "images"}
    assert definition.python_sources == "corral"  # the stdlib and wheels ship sourceless


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a mapping at the top"),
    ({"kernel": {}}, "kernel.package: expected a Debian package name"),
    ({"kernel": {"package": "k"}, "packages": "docker.io"}, "packages: expected a list of strings"),
    ({"kernel": {"package": "k"}, "python": {"requirements": [{"a": 1}]}},
     "python.requirements: expected a list of strings"),
    ({"kernel": {"package": "k"}, "images": ["docker", "nginx"]}, "images: unknown image"),
    ({"kernel": {"package": "k"}, "links": {"usr/sbin/iptables": 3}}, "links: expected path: target"),
    ({"kernel": {"package": "k"}, "python": {"sources": "none"}}, "python.sources: expected 'all' or"),
])
def test_errors_name_file_and_key(data: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        parse(data, Path("image/definition.yml"))
    assert str(info.value).startswith("image/definition.yml: ")


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "definition.yml"
    path.write_text("kernel: [\n")
    with pytest.raises(DefinitionError, match=f"{path}: not valid YAML"):
        load(path)
