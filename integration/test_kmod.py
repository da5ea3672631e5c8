"""supervisor.kmod against the real libkmod and the OS image's module indexes (the host's own kernel has
no module directory here): what modprobe would resolve each boot alias of a QEMU guest to. And the argv
the devices handler gives the real modprobe: no config value becomes one of its options."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from handlers.devices import DevicesHandler, ModuleSpec, parse_modules
from supervisor import kmod
from supervisor.bus import Bus
from supervisor.process import ProcessManager


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


# ---- the argv corral gives modprobe, against the real modprobe (kmod) ---------------------------------


@pytest.fixture
def module_tree(tmp_path: Path) -> tuple[str, ...]:
    """A module tree with one module, ``foo``, indexed by the real depmod: modprobe's own options to use
    it, dry-run (nothing is loaded)."""
    for tool in ("depmod", "modprobe"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (the kmod package is a dependency)")
    moddir = tmp_path / "lib/modules/9.9.9"
    (moddir / "kernel").mkdir(parents=True)
    (moddir / "kernel/foo.ko").write_bytes(b"")  # depmod indexes it (it warns about the symbols)
    subprocess.run(["depmod", "-b", str(tmp_path), "9.9.9"], check=True, capture_output=True)
    return ("modprobe", "--dry-run", "-d", str(tmp_path), "-S", "9.9.9")


@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager()
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def test_an_option_after_the_module_name_stays_a_parameter(module_tree: tuple[str, ...],
                                                               pm: ProcessManager) -> None:
    """kmod's modprobe parses argv with getopt_long, which permutes: ``modprobe foo --dirname=/x`` takes
    ``--dirname`` as its option wherever it stands. corral ends the options with ``--``, so even a value
    that slipped past ``parse_modules`` reaches the module as a parameter."""
    argv = [*module_tree, "foo", "--dirname=/nonexistent"]
    status, _, err = await pm.run(argv, name="modprobe", timeout=30)
    assert status.returncode == 1 and b"/nonexistent" in err  # the hazard is real

    handler = DevicesHandler(pm, Bus(), modprobe=module_tree)
    try:
        spec = ModuleSpec("foo", ("mode=1", "--dirname=/nonexistent"))  # what parse_modules refuses
        assert await handler.load_modules([spec]) == {"foo": 0}
        assert await handler.load_modules([ModuleSpec("-foo")]) == {"-foo": 1}  # a name, not an option
        assert "Module -foo not found" in (handler.modules["-foo"].error or "")
        specs, errors = parse_modules(["foo mode=1 --dirname=/nonexistent", "foo mode=1"])
        assert errors and errors[0].startswith("corral.modules[0]: '--dirname=/nonexistent'")
        assert await handler.load_modules(specs) == {"foo": 0}
    finally:
        handler.close()
