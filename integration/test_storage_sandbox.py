"""Storage through the real PID 1: the udev source, the storage handler and the state partition,
wired into the sandboxed supervisor. Loop devices on files in the test's directory only."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.test_storage import Loops, need_root_and_tools


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    need_root_and_tools()
    directory = tmp_path / "images"
    directory.mkdir()
    made = Loops(directory)
    yield made
    made.cleanup()
    # A device still held by a dying mount namespace is only marked for autoclear: wait until it is
    # gone, so that the next test cannot find this test's disks.
    wait_for(lambda: not any(made.devices_of(image) for image in made.images), timeout=30)


def mounts_of(pid: int) -> dict[str, str]:
    """mount point -> source, as the process sees them."""
    found = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        dash = fields.index("-")
        found[fields[4]] = fields[dash + 2]
    return found


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_disk_plugged_at_runtime_is_mounted_by_rule_inside_the_sandbox(sandbox: Any, loops: Loops) -> None:
    config = {"mounts": [{"match": {"label": "CORRALDATA"}, "path": "/mnt/data", "options": "ro"}]}
    sb: Sandbox = sandbox(config)
    sb.wait_ready()
    pid1 = sb.pid1
    target = str(sb.dir / "mnt/data")
    unmatched = loops.attach(loops.image("other.img", "SOMETHINGELSE"), read_only=True)
    dev = loops.attach(loops.image("data.img", "CORRALDATA"), read_only=True)
    assert wait_for(lambda: mounts_of(pid1).get(target)) == dev
    options = [ln for ln in Path(f"/proc/{pid1}/mountinfo").read_text().splitlines() if f" {target} " in ln]
    assert "ro" in options[0].split()[5].split(",") and "nosuid" in options[0] and "nodev" in options[0]
    assert target not in mounts_of(1) and target not in Path("/proc/self/mountinfo").read_text()
    assert unmatched not in mounts_of(pid1).values()  # no rule: never mounted
    # The medium goes away (a card leaving its reader): lazily unmounted, and the journal says so.
    loops.change_medium(dev, loops.image("blank.img", None))
    wait_for(lambda: target not in mounts_of(pid1))
    status = sb.request("status")["storage"]["storage"]
    assert status is not None
    assert sb.stop() == 0


def test_state_partition_autoformatted_then_reused(sandbox: Any, loops: Loops) -> None:
    disk = loops.attach(loops.image("state.img", None, size_mb=64))
    config = {"corral": {"state": {"autoformat": [disk], "wait": 5}}}
    first: Sandbox = sandbox(config, name="first")
    status = first.wait_ready()
    state = status["storage"]["state"]
    assert state["outcome"] == "formatted", state
    assert str(first.dir / "var/lib/corral") in status["mounts"]  # persistent directories bound
    first.cli("config", "set", "hostname", "remembered")
    assert first.stop() == 0
    with contextlib.suppress(FileNotFoundError):
        (first.dir / "var/lib/corral/conf/cloud-config.yml").unlink()  # gone from the RAM side

    second: Sandbox = sandbox(config, name="second")
    status = second.wait_ready()
    assert status["storage"]["state"]["outcome"] == "found"  # never formatted twice
    assert status["hostname"] == "remembered"  # the config came back from the state partition
    assert second.stop() == 0


def test_disk_with_data_is_never_formatted(sandbox: Any, loops: Loops) -> None:
    disk = loops.attach(loops.image("data.img", "PRECIOUS", size_mb=32))
    sb: Sandbox = sandbox({"corral": {"state": {"autoformat": [disk], "wait": 1}}})
    status = sb.wait_ready()
    assert status["storage"]["state"]["outcome"] != "formatted"
    assert sb.stop() == 0
    probe = ["blkid", "-p", "-o", "value", "-s", "LABEL", disk]
    label = subprocess.run(probe, capture_output=True, text=True)
    assert label.stdout.strip() == "PRECIOUS"


def test_required_state_missing_drops_to_emergency_shell(sandbox: Any) -> None:
    shell = "sh -c 'echo EMERGENCY:$CORRAL_EMERGENCY_REASON'"
    sb: Sandbox = sandbox({"corral": {"state": {"dev": "LABEL=NO_SUCH_DISK_HERE", "required": True}}},
                          emergency_shell=shell)
    sb.wait_exit(60)
    assert "EMERGENCY:state:" in sb.console_text()
