"""supervisor.kmod against the real libkmod and the OS image's module indexes (the host's own kernel has
no module directory here): what modprobe would resolve each boot alias of a QEMU guest to."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor import kmod


@pytest.fixture(scope="module")
def module_dir(guest_image: Path) -> str:
    from image.build import CACHE

    dirs = sorted((CACHE / "root" / "usr/lib/modules").glob("*/modules.alias.bin"))
    if not dirs:
        pytest.fail("the image's root has no module indexes")
    return str(dirs[0].parent)


def test_aliases_resolve_as_modprobe_would(module_dir: str) -> None:
    if not kmod.available():
        pytest.fail("libkmod.so.2 cannot be loaded (the kmod package is a dependency)")
    found = kmod.lookup_many(["virtio:d00000001v00001AF4",  # a virtio NIC
                              "acpi:PNP0C0C:",  # the ACPI power button
                              "acpi:LNXSYSTM:", "platform:pcspkr"], module_dir)  # nothing in the image
    assert found is not None
    assert found["virtio:d00000001v00001AF4"].modules == ("virtio_net",)
    assert found["acpi:PNP0C0C:"].modules == ("button",)
    assert found["acpi:LNXSYSTM:"].modules == () and not found["acpi:LNXSYSTM:"].needs_modprobe
    assert found["platform:pcspkr"].modules == ()  # the image ships no pcspkr module


def test_a_directory_without_indexes_means_no_lookup(tmp_path: Path) -> None:
    assert kmod.lookup_many(["acpi:PNP0C0C:"], str(tmp_path)) is None  # callers run modprobe for each
