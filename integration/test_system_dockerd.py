"""The system dockerd as PID 1's child in the sandbox (corral.system_docker.enabled turns it on), and
image preload against a real dockerd.

The sandbox gives dockerd what the dockerd fixture found it needs: its own /run (tmpfs) and a fresh
/sys with the cgroup mounts carried over, both in the sandbox's private mount namespace. These tests
check that the host sees none of it (its /run, its mounts; the session fixture checks its network)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import integration.sandbox
from image import busybox
from integration.dockerd import Dockerd, unavailable_reason
from integration.sandbox import CORRAL, Sandbox
from integration.units_helpers import wait_for
from supervisor.paths import Paths
from units.images import preload, read_stamps, stamp_path
from units.runtime import LoadResult, Runtime
from units.system_dockerd import DockerdLayout, remove_cgroups

pytestmark = pytest.mark.docker

# Fast restarts for the tests; shutdown_grace bounds stopping leftover containers.
CONFIG = {"corral": {"shutdown_grace": 2}}
HOST_RUN_WATCH = ("system-docker", "system-docker.sock", "system-docker.pid", "docker", "containerd",
                  "xtables.lock", "docker.pid")


@pytest.fixture(autouse=True)
def _system_docker_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Turn the system dockerd on for the sandboxes of the test. Afterwards (after the sandbox fixture
    killed what still ran) remove their dockerds' cgroups, which only a clean shutdown removes."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(integration.sandbox, "SYSTEM_DOCKER_DEFAULT", True)
    yield
    for directory in tmp_path.iterdir():
        if directory.is_dir():
            remove_cgroups(DockerdLayout.system(Paths.sandbox(directory), sandbox=True).cgroup_parent)


def with_preload(directory: Path) -> None:
    """Sandbox setup: the busybox archive in DIR/var/lib/corral/preload/."""
    preload_dir = directory / "var/lib/corral/preload"
    preload_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox.ensure(), preload_dir / "busybox.tar")


def docker_status(sb: Sandbox) -> dict[str, Any]:
    return dict(sb.request("status")["system_docker"])


def restarted(sb: Sandbox, starts: int) -> bool:
    status = docker_status(sb)
    return bool(status["state"] == "up" and status["starts"] == starts)


def dockerd_host_pid(sb: Sandbox) -> int:
    """The system dockerd's pid as the host sees it (its command line names the sandbox's socket)."""
    needle = f"unix://{sb.dir}/run/system-docker.sock".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if cmdline.startswith(b"/usr/sbin/dockerd\0") and needle in cmdline:
                    return int(entry.name)
    raise AssertionError("no system dockerd found")


def container_host_pids(sb: Sandbox, cid: str) -> list[int]:
    """A container's processes, as host pids (cgroup.procs translates them for the reader)."""
    parent = DockerdLayout.system(sb.paths, sandbox=True).cgroup_parent.lstrip("/")
    procs = Path("/sys/fs/cgroup/pids") / parent / cid / "cgroup.procs"
    return [int(p) for p in procs.read_text().split()]


def host_run_entries() -> set[str]:
    return {name for name in os.listdir("/run") if name in HOST_RUN_WATCH}


def host_mountpoints() -> set[str]:
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if not point.startswith("/run/netns/"):
            points.add(point)
    return points


@contextlib.contextmanager
def bus_events(sb: Sandbox, *kinds: str) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """`corral events -o json --kind ...` in the background; yields a function reading what came so far."""
    out = sb.dir.parent / f"{sb.dir.name}-events.jsonl"
    argv = [CORRAL, "--socket", str(sb.paths.control_socket), "events", "-o", "json"]
    for kind in kinds:
        argv += ["--kind", kind]

    def subscribers() -> set[str]:
        return {name for name in sb.request("status")["bus"]["subscribers"]
                if name.startswith("control:events")}

    before = subscribers()
    with open(out, "wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.DEVNULL)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]

    try:
        # subscribed: its stream's bus subscription exists (a fixed wait lost a `down` under load)
        wait_for("the events stream subscribed", lambda: subscribers() - before or proc.poll() is not None)
        assert proc.poll() is None, f"corral events exited {proc.returncode}"
        yield read
    finally:
        proc.terminate()
        proc.wait(10)


def test_system_dockerd_boots_serves_the_cli_and_leaves_the_host_alone(sandbox: Any) -> None:
    run_before, mounts_before = host_run_entries(), host_mountpoints()
    sb: Sandbox = sandbox(CONFIG, setup=with_preload)
    status = sb.wait_ready(90)
    assert status["state"] == "ready", status["degraded"]
    docker = status["system_docker"]
    assert docker["state"] == "up" and docker["starts"] == 1
    assert docker["socket"] == str(sb.dir / "run/system-docker.sock")
    assert docker["events"]["connected"]
    archive = str(sb.dir / "var/lib/corral/preload/busybox.tar")
    assert docker["preload"]["loaded"] == [archive]
    print(f"system dockerd answered {docker['start_seconds']} s after its start; "
          f"phase system-docker {status['boot_phases']['system-docker']:.3f} s, "
          f"images {status['boot_phases']['images']:.3f} s")
    # The CLI finds the socket through `corral status`.
    ps = sb.cli("system-docker", "ps", "-a")
    assert ps.stdout.startswith("CONTAINER ID")
    root_dir = sb.cli("system-docker", "info", "--format", "{{.DockerRootDir}}").stdout.strip()
    assert root_dir == str(sb.dir / "var/lib/system-docker")
    hello = sb.cli("system-docker", "run", "--rm", "--network", "none", "corral/busybox", "echo",
                   "hi from a unit")
    assert hello.stdout == "hi from a unit\n"
    links = sb.nsenter(["ip", "-o", "link"]).stdout
    assert "corral-sys0" in links and "docker0" not in links
    assert "198.19.42.1/24" in sb.nsenter(["ip", "-o", "addr", "show", "corral-sys0"]).stdout
    # The sandbox's /run is its own: nothing of dockerd's reached the host's.
    in_sandbox = sb.nsenter(["ls", "/run"]).stdout.split()
    assert "system-docker" in in_sandbox and "docker" in in_sandbox
    assert host_run_entries() == run_before
    assert host_mountpoints() == mounts_before
    assert sb.stop() == 0
    sb.assert_clean_journal()
    events = [r.get("event") for r in sb.journal()]
    assert "dockerd stopped" in events
    cgroup_parent = DockerdLayout.system(sb.paths, sandbox=True).cgroup_parent.lstrip("/")
    assert not [m for m in Path("/sys/fs/cgroup").iterdir() if (m / cgroup_parent).exists()]
    # A second boot of the same directory: the archive's stamp says it is loaded; the image is there.
    again = Sandbox(sb.dir, CONFIG)
    try:
        status = again.wait_ready(90)
        assert status["system_docker"]["preload"]["skipped"] == [archive]
        assert status["system_docker"]["preload"]["loaded"] == []
        assert "corral/busybox" in again.cli("system-docker", "images").stdout
        assert again.stop() == 0
    finally:
        if again.proc.poll() is None:
            os.kill(again.pid1, signal.SIGKILL)
            again.proc.wait(10)


def test_sigkilled_dockerd_is_restarted_and_its_containers_live_on(sandbox: Any) -> None:
    sb: Sandbox = sandbox(CONFIG, setup=with_preload)
    sb.wait_ready(90)
    sb.cli("system-docker", "run", "-d", "--name", "sleeper", "--network", "none", "corral/busybox",
           "sleep", "600")
    pid = dockerd_host_pid(sb)
    with bus_events(sb, "docker", "resync") as events:
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for("dockerd restarted", lambda: restarted(sb, 2))
        back = time.monotonic() - killed
        wait_for("events reconnected", lambda: docker_status(sb)["events"]["sessions"] == 2)
        print(f"SIGKILLed dockerd answering again after {back:.2f} s")
        assert dockerd_host_pid(sb) != pid
        running = sb.cli("system-docker", "inspect", "-f", "{{.State.Running}}", "sleeper").stdout
        assert running.strip() == "true"
        seen = wait_for("resync published", lambda: [e for e in events() if e["kind"] == "resync"]
                        and events())
    kinds = [(e["kind"], e.get("state") or e.get("source")) for e in seen]
    assert ("docker.daemon", "down") in kinds and ("docker.daemon", "up") in kinds
    assert ("resync", "docker.system") in kinds
    down = next(e for e in seen if e["kind"] == "docker.daemon" and e["state"] == "down")
    assert down["reason"] == "dockerd killed by SIGKILL"
    assert sb.stop() == 0


def test_frozen_dockerd_is_killed_by_the_watchdog_and_a_death_meanwhile_is_observed(sandbox: Any) -> None:
    sb: Sandbox = sandbox(CONFIG, setup=with_preload)
    sb.wait_ready(90)
    cid = sb.cli("system-docker", "run", "-d", "--name", "victim", "--label", "io.corral.unit=victim",
                 "--network", "none", "corral/busybox", "sleep", "600").stdout.strip()
    victim_pids = container_host_pids(sb, cid)
    pid = dockerd_host_pid(sb)
    with bus_events(sb, "docker", "resync") as events:
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        for victim in victim_pids:  # dies while dockerd can hear nothing
            os.kill(victim, signal.SIGKILL)
        down = wait_for("watchdog noticed", lambda: [
            e for e in events() if e["kind"] == "docker.daemon" and e["state"] == "down"], 20)
        noticed = time.monotonic() - frozen
        wait_for("dockerd restarted", lambda: restarted(sb, 2))
        back = time.monotonic() - frozen
        die = wait_for("observed die", lambda: [e for e in events() if e["kind"] == "docker.container"
                                                and e["container_id"] == cid and e["action"] == "die"
                                                and e["observed"]], 20)
        seen = events()
    print(f"frozen dockerd: watchdog noticed after {noticed:.2f} s, answering again after {back:.2f} s")
    assert down[0]["reason"].startswith("watchdog: no answer to /_ping")
    assert noticed < 12  # interval 2 s + 2 x 3 s timeouts, plus slack
    assert not Path(f"/proc/{pid}").exists()
    assert die[0]["exit_code"] == 137 and die[0]["unit"] == "victim"
    assert any(e["kind"] == "resync" and e["source"] == "docker.system" for e in seen)
    status = docker_status(sb)
    assert status["watchdog_kills"] == 1 and status["last_down"].startswith("watchdog")
    assert sb.cli("system-docker", "inspect", "-f", "{{.State.ExitCode}}", "victim").stdout.strip() == "137"
    assert sb.stop() == 0
    # dockerd's own complaints about the container that died under it while it was frozen
    # and about containerd's connection, which the kill cut.
    sb.assert_clean_journal(expected_errors=("dockerd is not answering; killing it",
                                             "stream copy error: reading from a closed fifo",
                                             "transport is closing"))


# ---- preload against the dockerd fixture ---------------------------------------------------------------
async def test_preload_loads_each_archive_once_and_again_when_it_changes(make_dockerd: Any,
                                                                         tmp_path: Path) -> None:
    d: Dockerd = make_dockerd(load_image=False)
    paths = Paths.sandbox(tmp_path / "prefix")
    shipped = paths.under("/usr/share/corral/images")
    shipped.mkdir(parents=True)
    archive = shipped / "busybox.tar"
    shutil.copyfile(busybox.ensure(), archive)
    broken = paths.under("/var/lib/corral/preload/broken.tar")
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a tar archive" * 100)
    async with Runtime(d.socket) as rt:
        assert not await rt.image_exists("corral/busybox:latest")
        first = await preload(rt, paths)
        assert first.loaded == [str(archive)] and first.skipped == []
        assert list(first.failed) == [str(broken)]
        assert set(first.images) == {"corral/busybox:latest", "corral-test/busybox:latest"}
        assert await rt.image_exists("corral/busybox:latest")
        stamps = read_stamps(stamp_path(paths))
        assert set(stamps) == {str(archive)}  # a failed load leaves no stamp: it is tried at every boot
        second = await preload(rt, paths)
        assert second.loaded == [] and second.skipped == [str(archive)]
        os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 1_000_000_000))
        third = await preload(rt, paths)
        assert third.loaded == [str(archive)]
        d.docker(["rmi", "corral/busybox:latest", "corral-test/busybox:latest"])
        fourth = await preload(rt, paths)  # stamp matches, but the images are gone (a wiped data root)
        assert fourth.loaded == [str(archive)]
        assert await rt.image_exists("corral/busybox:latest")


async def test_preload_loads_the_archives_side_by_side(make_dockerd: Any, tmp_path: Path) -> None:
    """Each load waits until every load has begun: one after the other, this would never finish."""
    d: Dockerd = make_dockerd(load_image=False)
    paths = Paths.sandbox(tmp_path / "prefix")
    shipped = paths.under("/usr/share/corral/images")
    shipped.mkdir(parents=True)
    archives = [shipped / "a.tar", shipped / "b.tar"]
    for archive in archives:
        shutil.copyfile(busybox.ensure(), archive)
    begun: list[Path] = []
    all_begun = asyncio.Event()

    class Recording(Runtime):
        async def load_image(self, archive: Path, *, timeout: float | None = None) -> LoadResult:
            begun.append(archive)
            if len(begun) == len(archives):
                all_begun.set()
            await asyncio.wait_for(all_begun.wait(), 30)
            return await super().load_image(archive, timeout=timeout)

    async with Recording(d.socket) as rt:
        result = await preload(rt, paths)
    assert sorted(begun) == archives and result.loaded == [str(a) for a in archives] and not result.failed
    assert set(read_stamps(stamp_path(paths))) == {str(a) for a in archives}


async def test_user_images_reach_the_user_dockerd_and_come_back_after_a_wipe(make_dockerd: Any,
                                                                             tmp_path: Path) -> None:
    """The OS's busybox archive (tagged busybox:latest) lands in a real dockerd standing in for the user's,
    only while its event stream is connected; `docker run --rm busybox echo hi` then works with no
    registry; a reconcile that finds it loaded loads nothing; removed, it is loaded again."""
    from handlers.user_images import UserImagesHandler
    from units.images import USER

    d: Dockerd = make_dockerd(load_image=False)
    paths = Paths.sandbox(tmp_path / "prefix")
    shipped = paths.under(USER.dirs[0])
    shipped.mkdir(parents=True)
    busybox.write_archive(shipped / "busybox.tar", tags=busybox.USER_TAGS)
    connected = {"now": False}
    handler = UserImagesHandler(d.socket, paths, lambda: connected["now"])
    await handler.reconcile(full=True)
    assert handler.status() is None  # the user dockerd is not up: nothing tried
    connected["now"] = True
    await handler.reconcile(full=False)
    assert handler.status() is not None and handler.status()["images"] == ["busybox:latest"]
    assert d.docker(["run", "--rm", "busybox", "echo", "hi"]).stdout == "hi\n"
    await handler.reconcile(full=False)
    assert handler.status()["loaded"] == [] and handler.status()["skipped"] == [str(shipped / "busybox.tar")]
    assert read_stamps(paths.state_dir / USER.stamp_file)  # its own stamps, apart from the system's
    assert not stamp_path(paths).exists()
    d.docker(["rmi", "busybox:latest"])
    await handler.reconcile(full=False)
    assert handler.status()["loaded"] == [str(shipped / "busybox.tar")]
