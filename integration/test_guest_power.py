"""The state disk across two boots, and both ways to power the OS off (QEMU must exit 0 by itself).

Boot 1: a zeroed disk → formatted as the state partition; a file written to persistent storage;
`corral poweroff`. Boot 2: the same disk → found and mounted, the file is there; the ACPI power button
(QMP `system_powerdown`). Two boots in all; the second test needs the disk of the first.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.guest import Guest, GuestSpec

pytestmark = pytest.mark.timeout(1800)

POWEROFF_TIMEOUT = 120.0
STATE_SIZE = "1G"
MARKER = "/var/lib/corral/guest-test-marker"  # bound from the state partition (storage.md)
# The state disk is the first virtio disk, /dev/vda (corral-image run --state-disk).
CONFIG: dict[str, Any] = {"corral": {"state": {"autoformat": ["/dev/vda"], "wait": 10}}}


@pytest.fixture(scope="module")
def state_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Shared between the two tests: the disk image of the first boot and what was written to it."""
    d = tmp_path_factory.mktemp("guest-state")
    yield {"dir": d, "token": secrets.token_hex(8)}
    shutil.rmtree(d, ignore_errors=True)


def state(g: Guest) -> dict[str, Any]:
    result = g.corral("storage", "status")["state"]
    assert result is not None, "no state partition result"
    return dict(result)


def test_first_boot_formats_the_zeroed_state_disk_then_corral_poweroff(
        make_guest: Callable[..., Guest], state_disk: dict[str, Any]) -> None:
    g = make_guest(GuestSpec(config=CONFIG, state_disk=STATE_SIZE), name="boot1")
    g.wait_ssh()
    st = state(g)
    assert st["outcome"] == "formatted", st
    assert st["device"] == "/dev/vda", st
    label = g.host("blkid -o value -s LABEL /dev/vda").stdout.strip()
    assert label == "CORRAL_STATE"
    g.host(f"sh -c 'echo {state_disk['token']} > {MARKER} && sync'")
    done = g.sudo("corral poweroff", check=False, timeout=60)
    assert done.returncode in (0, 255), done  # 255: the connection went down with the guest
    assert g.wait_exit(POWEROFF_TIMEOUT) == 0
    assert "reboot: Power down" in g.serial.text()
    kept = state_disk["dir"] / "state.img"
    shutil.copyfile(g.dir / "state.img", kept)  # the first boot's run dir goes with its test
    state_disk["image"] = kept


def test_second_boot_keeps_the_data_then_acpi_power_button(
        make_guest: Callable[..., Guest], state_disk: dict[str, Any]) -> None:
    image: Path | None = state_disk.get("image")
    if image is None:
        pytest.fail("the first boot's state disk is missing (its test failed)")
    g = make_guest(GuestSpec(config=CONFIG, state_disk=image), name="boot2")
    g.wait_ssh()
    st = state(g)
    assert st["outcome"] == "found", st
    assert g.host(f"cat {MARKER}").stdout.strip() == state_disk["token"]
    g.qmp("powerdown")
    assert g.wait_exit(POWEROFF_TIMEOUT) == 0
    assert "reboot: Power down" in g.serial.text()
