"""udevd as a process corral supervises (``corral.udev``), in the sandbox: a real systemd-udevd, child
of the sandboxed PID 1, fenced off the host (its own rules directory, /dev overlaid, no .link files;
handlers/udevd_isolation.py). Loop devices on files in the test's directory only.

Also the udev source's switch between the kernel's and udevd's groups, against the real kernel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.netns import host_net_snapshot
from integration.sandbox import CORRAL, Sandbox
from integration.test_storage import Loops, need_root_and_tools
from supervisor.bus import Bus
from supervisor.events import Resync
from supervisor.sources.udev import UdevSource

UDEVD = "/lib/systemd/systemd-udevd"
# Only loop devices, only filesystem probing: nothing else of the host's is looked at or changed.
RULES = """\
# corral integration test: probe the filesystems of loop devices, nothing else
ACTION=="remove", GOTO="corral_test_end"
SUBSYSTEM!="block", GOTO="corral_test_end"
KERNEL!="loop*", GOTO="corral_test_end"
IMPORT{builtin}="blkid"
LABEL="corral_test_end"
"""
HOST_DEV_NAMES = ("block", "char", "disk", "core")


def need_udevd() -> None:
    need_root_and_tools()
    if not Path(UDEVD).exists() or not any(Path(d, "udevadm").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("systemd-udevd / udevadm not installed")


def is_udevd(pid: int | str) -> bool:
    """systemd-udevd or one of its workers (the binary is udevadm's, under another name)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("systemd-udevd", "(udev-worker)")
    except OSError:
        return False


def udevd_processes() -> list[int]:
    """Every udevd process on the host."""
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and is_udevd(e.name)]


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def mounts_of(pid: int) -> dict[str, str]:
    found = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        found[fields[4]] = fields[fields.index("-") + 2]
    return found


def wait_for(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met in {timeout} s")


class EventLog:
    """``corral events -o json --kind udev.block`` read in a thread."""

    def __init__(self, sb: Sandbox) -> None:
        env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))
        self.proc = subprocess.Popen([CORRAL, "events", "-o", "json", "--kind", "udev.block"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def wait_subscribed(self, dev: str) -> None:
        """Poke ``dev`` (a change uevent) until its event shows up here: the stream is live."""
        name = dev.rsplit("/", 1)[1]
        for _ in range(40):
            Path(f"/sys/class/block/{name}/uevent").write_text("change")
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                if any(e.get("devname") == dev for e in list(self.events)):
                    return
                time.sleep(0.02)
        raise AssertionError("the events stream shows nothing")

    def of(self, dev: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("devname") == dev and not e.get("coldplug")]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    need_udevd()
    directory = tmp_path / "images"
    directory.mkdir()
    made = Loops(directory)
    yield made
    made.cleanup()
    wait_for(lambda: not any(made.devices_of(image) for image in made.images), what="loop devices detached")


@pytest.fixture
def host_before() -> Iterator[None]:
    """Around the test: no udevd left running, the host's links and /dev as they were."""
    assert not udevd_processes(), "a udevd already runs on this host: not running udevd tests"
    net = host_net_snapshot()
    dev = {name: os.path.lexists(f"/dev/{name}") for name in HOST_DEV_NAMES}
    rules = sorted(os.listdir("/usr/lib/udev/rules.d"))
    yield
    wait_for(lambda: not udevd_processes(), timeout=15, what="no udevd left")
    assert host_net_snapshot() == net
    assert {name: os.path.lexists(f"/dev/{name}") for name in HOST_DEV_NAMES} == dev
    assert sorted(os.listdir("/usr/lib/udev/rules.d")) == rules  # the binds stayed in the sandbox


def tools(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A rules directory and a udevd wrapper that refuses to start while ``block`` exists."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "60-corral-test.rules").write_text(RULES)
    block = tmp_path / "udevd-blocked"
    wrapper = tmp_path / "udevd"
    wrapper.write_text(f"#!/bin/sh\n[ -e {block} ] && exit 1\nexec {UDEVD} \"$@\"\n")
    wrapper.chmod(0o755)
    return rules, wrapper, block


def probed(sb: Sandbox, dev: str) -> bool:
    """Whether the storage handler probed ``dev`` itself (libblkid) rather than read udevd's database."""
    return dev in sb.request("storage.status")["storage"]["probed"]


def test_udevd_supervised_in_the_sandbox(host_before: None, loops: Loops, sandbox: Any,
                                         tmp_path: Path) -> None:
    rules, wrapper, block = tools(tmp_path)
    # A disk present before boot: udevd's coldplug (trigger limited to it) fills its database.
    cold = loops.attach(loops.image("cold.img", "UDEVCOLD"), read_only=True)
    cold_name = cold.rsplit("/", 1)[1]
    config = {
        "corral": {"udev": {"path": str(wrapper), "rules_dir": str(rules), "children_max": 2,
                            "trigger": ["--subsystem-match=block", f"--sysname-match={cold_name}"]}},
        "mounts": [{"match": {"label": label}, "path": f"/mnt/{label.lower()}", "options": "ro"}
                   for label in ("UDEVCOLD", "UDEVHOT", "UDEVDOWN", "UDEVBACK")],
    }
    sb: Sandbox = sandbox(config)
    status = sb.wait_ready()
    udevd = status["udevd"]
    assert udevd["state"] == "running", (udevd, sb.console_text()[-3000:])
    assert udevd["pid"] and udevd["triggers"] >= 1 and udevd["restarts"] == 0
    assert status["storage"]["udev"]["source"] == "udev"
    assert status["storage"]["udev"]["udevd"]["state"] == "running"
    pid1 = sb.pid1
    [host_pid] = [p for p in children_of(pid1) if is_udevd(p)]
    # Its writes to /dev stay in the sandbox, and it sees only our rules.
    assert os.readlink(f"/proc/{host_pid}/root") == "/"
    assert mounts_of(host_pid)["/dev"] == "corral-dev"
    events = EventLog(sb)
    try:
        # Coldplug: mounted from udevd's database, never probed with blkid.
        wait_for(lambda: mounts_of(pid1).get(str(sb.dir / "mnt/udevcold")) == cold, what="cold disk mounted")
        assert not probed(sb, cold)
        events.wait_subscribed(cold)

        # Hotplug: udevd's event, with the label, and no blkid.
        hot = loops.attach(loops.image("hot.img", "UDEVHOT"), read_only=True)
        wait_for(lambda: mounts_of(pid1).get(str(sb.dir / "mnt/udevhot")) == hot, what="hot disk mounted")
        labelled = [e for e in events.of(hot) if e["properties"].get("ID_FS_LABEL") == "UDEVHOT"]
        assert labelled and all(e["source"] == "udev" for e in labelled), events.of(hot)
        assert all(e["source"] == "udev" for e in events.of(hot))
        assert not probed(sb, hot)

        # udevd killed, and kept from coming back for a while: the kernel's events carry on.
        block.touch()
        os.kill(host_pid, signal.SIGKILL)
        wait_for(lambda: sb.request("storage.status")["udev"]["source"] == "kernel", what="kernel fallback")
        down = loops.attach(loops.image("down.img", "UDEVDOWN"), read_only=True)
        wait_for(lambda: mounts_of(pid1).get(str(sb.dir / "mnt/udevdown")) == down, what="udevd down")
        assert [e["source"] for e in events.of(down)][:1] == ["kernel"]
        assert probed(sb, down)  # no udevd: blkid it is
        assert sb.request("status")["udevd"]["state"] != "running"

        # Allowed back: restarted with backoff, the source follows udevd's events again.
        block.unlink()
        back_status = wait_for(lambda: (s := sb.request("status"))["udevd"]["state"] == "running"
                               and s["storage"]["udev"]["source"] == "udev" and s, timeout=60, what="back")
        assert back_status["udevd"]["restarts"] >= 1
        assert back_status["storage"]["udev"]["switches"] >= 2
        new_pid = [p for p in children_of(pid1) if is_udevd(p)]
        assert new_pid and new_pid[0] != host_pid
        back = loops.attach(loops.image("back.img", "UDEVBACK"), read_only=True)
        wait_for(lambda: mounts_of(pid1).get(str(sb.dir / "mnt/udevback")) == back, what="disk mounted, back")
        assert [e["source"] for e in events.of(back)][:1] == ["udev"]
        assert not probed(sb, back)
        storage = sb.request("storage.status")
        print("udevd:", json.dumps(sb.request("status")["udevd"]), "blkid:",
              json.dumps(storage["storage"]["counters"]))
    finally:
        events.close()
    assert sb.stop() == 0
    sb.assert_clean_journal(expected_errors=())


def test_corral_udev_turned_on_and_off_live(host_before: None, sandbox: Any, tmp_path: Path) -> None:
    need_udevd()
    rules, _, _ = tools(tmp_path)
    trigger = ["--subsystem-match=block", "--sysname-match=corral-test-no-such-device"]
    udev = {"enabled": False, "rules_dir": str(rules), "trigger": trigger}
    sb: Sandbox = sandbox({"corral": {"udev": udev}})
    status = sb.wait_ready()
    assert status["udevd"]["state"] == "off" and status["storage"]["udev"]["source"] == "kernel"
    sb.cli("config", "set", "corral.udev.enabled", "true")
    on = wait_for(lambda: (s := sb.request("status"))["udevd"]["state"] == "running"
                  and s["storage"]["udev"]["source"] == "udev" and s, what="udevd on")
    assert [p for p in children_of(sb.pid1) if is_udevd(p)]
    sb.cli("config", "set", "corral.udev.children_max", "1")  # new arguments: restarted, source follows
    wait_for(lambda: sb.request("status")["udevd"]["starts"] == on["udevd"]["starts"] + 1
             and sb.request("status")["udevd"]["state"] == "running", what="restarted with new arguments")
    cmdlines = [Path(f"/proc/{p}/cmdline").read_text() for p in children_of(sb.pid1) if is_udevd(p)]
    assert cmdlines and "--children-max=1" in cmdlines[0]
    wait_for(lambda: sb.request("storage.status")["udev"]["source"] == "udev", what="back on udevd's events")
    sb.cli("config", "set", "corral.udev.enabled", "false")
    wait_for(lambda: (s := sb.request("status"))["udevd"]["state"] == "off"
             and s["storage"]["udev"]["source"] == "kernel", what="udevd off")
    wait_for(lambda: not [p for p in children_of(sb.pid1) if is_udevd(p)], what="udevd gone")
    assert sb.stop() == 0
    sb.assert_clean_journal()


def test_without_a_rules_dir_the_sandbox_refuses_udevd(host_before: None, sandbox: Any) -> None:
    need_udevd()
    sb: Sandbox = sandbox({"corral": {"udev": True}})
    status = sb.wait_ready()
    assert status["udevd"]["state"] == "refused" and "rules_dir" in status["udevd"]["reason"]
    assert "udevd" in status["degraded"]
    assert status["storage"]["udev"]["source"] == "kernel"
    assert not udevd_processes()
    assert sb.stop() == 0


def test_missing_binary_is_one_warning_and_kernel_events(sandbox: Any, tmp_path: Path) -> None:
    need_udevd()
    udev = {"path": str(tmp_path / "no-udevd"), "rules_dir": str(tmp_path)}
    sb: Sandbox = sandbox({"corral": {"udev": udev}})
    status = sb.wait_ready()
    assert status["udevd"]["state"] == "missing" and "not found" in status["udevd"]["reason"]
    assert status["state"] == "degraded" and "udevd" in status["degraded"]
    assert status["storage"]["udev"]["source"] == "kernel"
    warnings = [r for r in sb.journal() if r.get("event", "").startswith("udevd not started")]
    assert len(warnings) == 1
    assert sb.stop() == 0


# ---- the source's switch, against the real kernel (no udevd needed) -------------------------------------
async def test_source_switches_groups_with_a_resync_each_time() -> None:
    need_root_and_tools()
    bus = Bus()
    sub = bus.subscribe("t", Resync, maxsize=100_000)
    udev = UdevSource(bus, source="kernel")
    await udev.start()
    try:
        first = await asyncio.wait_for(sub.get(), 10)
        assert isinstance(first, Resync) and first.source == "udev"
        assert await udev.use("udev", "test")
        assert udev.status()["source"] == "udev" and udev.status()["open"]
        resync = await asyncio.wait_for(sub.get(), 10)
        assert isinstance(resync, Resync) and "switched to udev" in resync.reason
        assert not await udev.use("udev", "again")  # nothing to do
        # Two calls racing: the last one wins.
        await asyncio.gather(udev.use("kernel", "a"), udev.use("udev", "b"))
        assert udev.status()["source"] == "udev" and udev.status()["requested"] == "udev"
        assert udev.stats.switches >= 2
    finally:
        await udev.stop()
