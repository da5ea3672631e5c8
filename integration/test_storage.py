"""The storage handler and the state partition against real loop devices and real kernel uevents.

Everything that mounts runs in a child process in its own private mount namespace (``unshare --mount
--propagation private``): the udev source, the storage handler, a ProcessManager and a bus, as PID 1
wires them. Its mounts never reach the host and vanish with it, even if a test fails. The test (the
parent) attaches and detaches the loop devices (images in the test's temp dir), reads the child's
mount table from ``/proc/<child>/mountinfo`` and its events from its stdout (JSON lines); the child's
log (structlog) goes to a file. Teardown ends the child, then detaches every loop device backed by a
file of the test.

No loop device is ever detached while mounted: the kernel would defer the detach to the last close
and send no uevent (nothing to observe). A mounted device "goes away" here the way a card leaves a
reader: the loop device's medium is swapped for a blank one (LOOP_CHANGE_FD on a read-only loop
device), which the kernel announces with a ``change`` uevent and a new DISKSEQ.

``python -m integration.test_storage child CONFIG.json`` is the child."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.mountinfo import MountEntry, parse_mountinfo

REPO = Path(__file__).resolve().parent.parent
LOOP_CHANGE_FD = 0x4C06
MS_RDONLY = 1


# ---- loop devices (parent side) ------------------------------------------------------------------------
def need_root_and_tools() -> None:
    if os.geteuid() != 0:
        from integration.netns import unavailable

        unavailable("needs root (loop devices, mount namespaces)")
    for tool in ("losetup", "mkfs.ext4", "blkid", "unshare", "fsck"):
        if not any((Path(d) / tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin")):
            from integration.netns import unavailable

            unavailable(f"{tool} missing")


def make_image(path: Path, label: str | None, size_mb: int = 16) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    if label is not None:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(path)], check=True, capture_output=True)
    return path


class Loops:
    """Loop devices on image files of one test; ``cleanup`` detaches every device backed by them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self.images: list[Path] = []

    def image(self, name: str, label: str | None, size_mb: int = 16) -> Path:
        path = make_image(self.root / name, label, size_mb)
        self.images.append(path)
        return path

    def attach(self, image: Path, read_only: bool = False) -> str:
        argv = ["losetup", "-f", "--show", *(["-r"] if read_only else []), str(image)]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def detach(self, dev: str) -> None:
        subprocess.run(["losetup", "-d", dev], check=True, capture_output=True)

    def change_medium(self, dev: str, image: Path) -> None:
        """LOOP_CHANGE_FD: the read-only loop device now reads ``image`` (a change uevent, new DISKSEQ)."""
        fd = os.open(dev, os.O_RDONLY)
        try:
            new = os.open(image, os.O_RDONLY)
            try:
                fcntl.ioctl(fd, LOOP_CHANGE_FD, new)
            finally:
                os.close(new)
        finally:
            os.close(fd)

    def devices_of(self, image: Path) -> list[str]:
        out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
        return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]

    def cleanup(self) -> list[str]:
        left = []
        for image in self.images:
            for dev in self.devices_of(image):
                for _ in range(50):
                    if subprocess.run(["losetup", "-d", dev], capture_output=True).returncode == 0:
                        break
                    time.sleep(0.1)
                else:
                    left.append(dev)
        return left


# ---- the child, seen from the parent -------------------------------------------------------------------
class Child:
    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.dir = directory
        self.config_file = directory / "child.json"
        self.config_file.write_text(json.dumps(config))
        self.log = directory / "child.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", *(["--net"] if config.get("net") else []),
             "--",
             sys.executable, "-m", "integration.test_storage", "child", str(self.config_file)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file,
            start_new_session=True)
        self.lines: list[dict[str, Any]] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda m: m["type"] == "ready", 30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            self.lines.append(msg)
            self._new.put(msg)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        for msg in list(self.lines):
            if predicate(msg):
                return msg
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self._new.empty()):
                raise AssertionError(f"no matching message in {timeout}s; child log:\n"
                                     f"{self.log_text()[-4000:]}")
            try:
                msg = self._new.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if predicate(msg):
                return msg

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m["event"] for m in self.lines if m["type"] == "event" and m["event"]["kind"] == kind]

    def wait_mount_event(self, path: Path, state: str, after: int = 0, timeout: float = 20) -> dict[str, Any]:
        """The first MountChanged(path, state) among the messages from index ``after`` on."""
        def pred(m: dict[str, Any]) -> bool:
            return (m["type"] == "event" and m["event"]["kind"] == "storage.mount"
                    and m["event"]["path"] == str(path) and m["event"]["state"] == state
                    and self.lines.index(m) >= after)
        return self.wait_for(pred, timeout)

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def status(self, timeout: float = 20) -> dict[str, Any]:
        def replies() -> list[dict[str, Any]]:
            return [m for m in self.lines if m["type"] == "status"]

        before = len(replies())
        self.send("status")
        deadline = time.monotonic() + timeout
        while len(replies()) <= before:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no status reply; child log:\n{self.log_text()[-4000:]}")
            time.sleep(0.01)
        return replies()[-1]

    def mounts(self, under: Path) -> list[MountEntry]:
        text = Path(f"/proc/{self.proc.pid}/mountinfo").read_text()
        return [m for m in parse_mountinfo(text)
                if m.target == str(under) or m.target.startswith(f"{under}/")]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def assert_clean_log(self, expected: tuple[str, ...] = ()) -> None:
        bad = [line for line in self.log_text().splitlines()
               if ("[error" in line or "[critical" in line or "Traceback" in line)
               and not any(e in line for e in expected)]
        assert not bad, "unexpected errors in the child's log:\n" + "\n".join(bad)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.send("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reader.join(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log_file.close()


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    need_root_and_tools()
    made = Loops(tmp_path)
    yield made
    left = made.cleanup()
    assert not left, f"loop devices left attached: {left}"


@pytest.fixture
def start_child(tmp_path: Path, loops: Loops) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(**config: Any) -> Child:
        config.setdefault("scope", str(loops.root))
        child = Child(tmp_path, config)
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()
    left = loops.cleanup()  # the child's namespace (and its mounts) is gone: the devices are free
    assert not left, f"loop devices left attached: {left}"


def opts(entry: MountEntry) -> set[str]:
    return set(entry.options.split(","))


# ---- tests -----------------------------------------------------------------------------------------------
def test_rule_mounts_device_unmounts_when_medium_goes_and_mounts_again(
        tmp_path: Path, loops: Loops, start_child: Callable[..., Child]) -> None:
    data = loops.image("data.img", "CT_DATA")
    blank = loops.image("blank.img", None)
    other = loops.image("other.img", "CT_OTHER")
    target = tmp_path / "mnt" / "data"
    child = start_child(config={"mounts": [
        {"match": {"label": "CT_DATA"}, "path": str(target), "options": "noatime,errors=remount-ro"}]})

    # a device no rule matches is never mounted
    loops.attach(other)
    # attached (read-only, so that its medium can be swapped) -> mounted with the rule's options
    dev = loops.attach(data, read_only=True)
    mounted = child.wait_mount_event(target, "mounted")["event"]
    assert mounted["device"] == dev and mounted["fstype"] == "ext4"
    [entry] = child.mounts(tmp_path / "mnt")
    assert entry.target == str(target) and entry.source == dev
    assert {"nodev", "nosuid", "noatime", "ro"} <= opts(entry)  # ro: the device is read-only
    assert "errors=remount-ro" in entry.super_options

    # the medium goes (like a card leaving its reader) -> lazily unmounted, and the journal says so
    mark = len(child.lines)
    loops.change_medium(dev, blank)
    gone = child.wait_mount_event(target, "unmounted", after=mark)["event"]
    assert gone["reason"] == "medium changed" and gone["device"] == dev
    assert child.mounts(tmp_path / "mnt") == []
    assert "medium changed; lazily unmounted" in child.log_text()

    # the medium comes back -> mounted again
    mark = len(child.lines)
    loops.change_medium(dev, data)
    child.wait_mount_event(target, "mounted", after=mark)
    assert [m.source for m in child.mounts(tmp_path / "mnt")] == [dev]

    # gone again, then the device is detached and re-attached read-write -> mounted read-write
    mark = len(child.lines)
    loops.change_medium(dev, blank)
    child.wait_mount_event(target, "unmounted", after=mark)
    loops.detach(dev)
    mark = len(child.lines)
    dev2 = loops.attach(data)
    again = child.wait_mount_event(target, "mounted", after=mark)["event"]
    [entry] = child.mounts(tmp_path / "mnt")
    assert again["device"] == dev2 == entry.source
    assert {"nodev", "nosuid", "noatime", "rw"} <= opts(entry)

    status = child.status()["storage"]
    assert status["counters"]["mounts"] == 3 and status["counters"]["unmounts"] == 2
    assert status["counters"]["failures"] == 0
    assert [m["device"] for m in status["mounts"]] == [dev2]
    latencies = [m["latency_ms"] for m in child.lines if m.get("latency_ms") is not None]
    print(f"uevent -> mounted: {sorted(latencies)} ms")
    child.assert_clean_log()


def test_list_form_rule_with_fsck_and_suid_dev(tmp_path: Path, loops: Loops,
                                               start_child: Callable[..., Child]) -> None:
    image = loops.image("fsck.img", "CT_FSCK")
    target = tmp_path / "mnt" / "fsck"
    entry = ["LABEL=CT_FSCK", str(target), "ext4", "dev,suid,noexec", "0", "2"]  # passno 2: fsck
    child = start_child(config={"mounts": [entry]})
    dev = loops.attach(image)
    child.wait_mount_event(target, "mounted")
    [mounted] = child.mounts(tmp_path / "mnt")
    assert mounted.source == dev
    assert "noexec" in opts(mounted) and "nodev" not in opts(mounted) and "nosuid" not in opts(mounted)
    status = child.status()["storage"]
    assert status["counters"]["fscks"] == 1
    assert "fsck done" in child.log_text()
    child.assert_clean_log()


@pytest.mark.parametrize("when", ["enumerating", "enumerated"])
def test_device_attached_during_coldplug_is_handled_exactly_once(
        tmp_path: Path, loops: Loops, start_child: Callable[..., Child], when: str) -> None:
    """The monitor is open before the enumeration: a device attached before the enumeration (seen by
    both) or after it (seen only by the monitor) is mounted exactly once."""
    image = loops.image("cold.img", "CT_COLD")
    target = tmp_path / "mnt" / "cold"
    child = start_child(config={"mounts": [{"match": {"label": "CT_COLD"}, "path": str(target)}]},
                        hook={"when": when, "image": str(image)}, storage_first=True)
    dev = child.wait_for(lambda m: m["type"] == "hook")["device"]
    child.wait_mount_event(target, "mounted")
    time.sleep(0.5)  # let any duplicate handling show
    live = [e for e in child.events("udev.block") if e["devname"] == dev and not e["coldplug"]]
    assert live, "the monitor did not see the device attached during coldplug"
    cold = [e for e in child.events("udev.block") if e["devname"] == dev and e["coldplug"]
            and e["properties"].get("DISKSEQ") == live[0]["properties"].get("DISKSEQ")]
    assert bool(cold) == (when == "enumerating")  # seen by the enumeration only if attached before it
    assert len([e for e in child.events("storage.mount") if e["state"] == "mounted"]) == 1
    assert len(child.mounts(tmp_path / "mnt")) == 1
    counters = child.status()["storage"]["counters"]
    assert counters["mounts"] == 1 and counters["failures"] == 0
    child.assert_clean_log()


@pytest.mark.parametrize("rcvbuf", [4096, 32 << 20], ids=["tiny-buffer", "32MiB"])
def test_burst_of_200_loop_operations_ends_in_the_right_state(
        tmp_path: Path, loops: Loops, start_child: Callable[..., Child], rcvbuf: int) -> None:
    """200 attach/detach operations while the child's loop is blocked (so the kernel queues every
    uevent at once). With a tiny receive buffer the queue overflows: the source reopens its monitor
    and re-enumerates (Resync); with 32 MiB nothing is lost. Either way the end state is right."""
    b1, b2, b3 = (loops.image(f"b{i}.img", f"CT_B{i}") for i in (1, 2, 3))
    noise = loops.image("noise.img", "CT_NOISE")
    blank = loops.image("blank.img", None)
    mnt = tmp_path / "mnt"
    child = start_child(rcvbuf=rcvbuf, config={"mounts": [
        {"match": {"label": f"CT_B{i}"}, "path": str(mnt / f"b{i}")} for i in (1, 2, 3)]})
    r3 = loops.attach(b3, read_only=True)
    child.wait_mount_event(mnt / "b3", "mounted")

    release = tmp_path / "release"
    child.send(f"block {release}")
    child.wait_for(lambda m: m["type"] == "blocked")
    ops = 0
    for _ in range(49):
        for image in (noise, b2):
            dev = loops.attach(image)
            loops.detach(dev)
            ops += 2
    d1 = loops.attach(b1)
    loops.change_medium(r3, blank)
    d2 = loops.attach(b2)
    loops.detach(d2)
    ops += 4
    assert ops == 200
    started = time.monotonic()
    release.touch()

    child.wait_mount_event(mnt / "b1", "mounted", timeout=30)
    child.wait_mount_event(mnt / "b3", "unmounted", timeout=30)
    deadline = time.monotonic() + 10
    while True:  # settled: b1 only
        entries = child.mounts(mnt)
        if [(m.target, m.source) for m in entries] == [(str(mnt / "b1"), d1)] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    converged = time.monotonic() - started
    assert [(m.target, m.source) for m in entries] == [(str(mnt / "b1"), d1)]
    status = child.status()
    udev = status["udev"]
    print(f"rcvbuf granted {udev['rcvbuf']}, overflows {udev['overflows']}, converged in {converged:.3f}s")
    mounted_paths = {e["path"] for e in child.events("storage.mount") if e["state"] == "mounted"}
    assert mounted_paths == {str(mnt / "b1"), str(mnt / "b3")}  # b2 came and went while blocked
    if rcvbuf < 1 << 20:
        assert udev["overflows"] >= 1 and udev["reopens"] >= 1
        assert any(e["state"] == "lost" and e["reason"] == "overflow" for e in child.events("udev.monitor"))
        child.wait_for(lambda m: m["type"] == "event" and m["event"]["kind"] == "resync"
                       and m["event"]["source"] == "udev" and "overflow" in m["event"]["reason"])
        child.assert_clean_log()
    else:
        assert udev["rcvbuf"] >= 32 << 20
        assert udev["overflows"] == 0
        child.assert_clean_log()


def test_state_zeroed_candidate_is_formatted_and_mounted(tmp_path: Path, loops: Loops,
                                                         start_child: Callable[..., Child]) -> None:
    blank = loops.image("state.img", None)
    dev = loops.attach(blank)
    target = tmp_path / "state"
    root = tmp_path / "root"  # stands for "/": its config, written before the state was mounted
    (root / "var/lib/corral/conf").mkdir(parents=True)
    (root / "var/lib/corral/conf/cloud-config.yml").write_text("hostname: early\n")
    child = start_child(mode="state", state={"autoformat": [dev], "wait": 0}, state_target=str(target),
                        bind_root=str(root))
    result = child.wait_for(lambda m: m["type"] == "state", 60)["result"]
    assert result["outcome"] == "formatted" and result["device"] == dev
    probe = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True).stdout
    assert "LABEL=CORRAL_STATE" in probe and "TYPE=ext4" in probe
    bound = child.wait_for(lambda m: m["type"] == "bound")["targets"]
    assert bound == [str(root / "var/lib/corral"), str(root / "var/log")]
    entries = child.mounts(target) + child.mounts(root)
    assert [(m.target, m.source, m.root) for m in entries] == [
        (str(target), dev, "/"),
        (str(root / "var/lib/corral"), dev, "/var/lib/corral"),  # binds of the state's directories
        (str(root / "var/log"), dev, "/var/log")]
    # seeded: what /var/lib/corral held before is on the state partition now (read through the child)
    inside = Path(f"/proc/{child.proc.pid}/root")
    seeded = inside / str(target / "var/lib/corral/conf/cloud-config.yml").lstrip("/")
    assert seeded.read_text() == "hostname: early\n"
    child.assert_clean_log()


def test_state_candidate_with_data_is_never_formatted(tmp_path: Path, loops: Loops,
                                                      start_child: Callable[..., Child]) -> None:
    image = loops.image("data.img", None)
    with open(image, "r+b") as f:  # no signature blkid knows, but data in the first MiB
        f.seek(300 << 10)
        f.write(b"precious user data")
    before = image.read_bytes()
    dev = loops.attach(image)
    child = start_child(mode="state", state={"autoformat": [dev], "required": True, "wait": 0},
                        state_target=str(tmp_path / "state"))
    result = child.wait_for(lambda m: m["type"] == "state", 60)["result"]
    assert result["outcome"] == "emergency"
    assert f"{dev} has data in its first MiB; not formatted" in result["reason"]
    assert "LABEL=CORRAL_STATE" in result["reason"]
    assert image.read_bytes() == before
    assert child.mounts(tmp_path / "state") == []
    child.assert_clean_log(expected=("state partition",))


def test_state_waits_for_a_rancher_state_device(tmp_path: Path, loops: Loops,
                                                start_child: Callable[..., Child]) -> None:
    image = loops.image("rancher.img", "RANCHER_STATE")
    target = tmp_path / "state"
    child = start_child(mode="state", state={"wait": 20}, state_target=str(target))
    time.sleep(0.5)
    attached = time.monotonic()
    dev = loops.attach(image)
    result = child.wait_for(lambda m: m["type"] == "state", 30)["result"]
    assert result["outcome"] == "found" and result["device"] == dev
    assert time.monotonic() - attached < 5  # woken by the uevent, not by the 20 s timeout
    [entry] = child.mounts(target)
    assert entry.source == dev
    child.assert_clean_log()


def test_rancheros_bind_mount_and_one_device_at_four_paths(tmp_path: Path, loops: Loops,
                                                            start_child: Callable[..., Child]) -> None:
    """RancherOS's tests/assets/test_23 (and cnrancher's test_mounts.yml), under the test's directory: a
    file bound onto another path, and one disk named by its path at four mount points (RancherOS's test
    checked /home/rancher/a, b and c after `cloud-init-execute`)."""
    source = tmp_path / "test"
    source.write_text("test\n")
    home = tmp_path / "home" / "rancher"
    dev = loops.attach(loops.image("vdb.img", "CT_VDB"))
    child = start_child(config={"mounts": [
        [str(source), str(home / "test"), "", "bind"],
        [dev, str(home / "a"), "ext4", ""],
        [dev, str(home / "b"), "", ""],
        [dev, str(home / "c"), "auto", "defaults"],
        [dev, str(home / "d"), "auto", "defaults"]]})
    for name in ("test", "a", "b", "c", "d"):
        child.wait_mount_event(home / name, "mounted")
    table = {m.target: m for m in child.mounts(tmp_path / "home")}
    assert sorted(table) == [str(home / n) for n in ("a", "b", "c", "d", "test")]
    assert {table[str(home / n)].source for n in "abcd"} == {dev}
    bound = table[str(home / "test")]
    assert bound.root.endswith(str(source)) and {"nodev", "nosuid"} <= opts(bound)
    # the file is seen through the bind, in the child's mount namespace
    assert Path(f"/proc/{child.proc.pid}/root{home / 'test'}").read_text() == "test\n"
    (state,) = child.status()["storage"]["sourced"]
    assert (state["rule"], state["kind"], state["state"]) == ("mounts[0]", "bind", "mounted")
    child.assert_clean_log()


def _mount_nfs(tmp_path: Path) -> str:
    """mount.nfs from the host, else from the image's package cache (nfs-common's .deb, unpacked here)."""
    found = shutil.which("mount.nfs")
    if found:
        return found
    from image.debs import DEFAULT_CACHE

    debs = sorted(DEFAULT_CACHE.glob("nfs-common_*.deb"))
    if not debs:
        pytest.skip("no mount.nfs: nfs-common neither installed nor in .cache/debs (make image fetches it)")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp_path / "nfs-common")], check=True)
    return str(tmp_path / "nfs-common" / "sbin" / "mount.nfs")


def test_nfs_server_unreachable_is_retried_reported_and_holds_nothing_up(
        tmp_path: Path, loops: Loops, start_child: Callable[..., Child]) -> None:
    """The real mount.nfs in an empty network namespace the test made (no route to any server; this
    host's kernel has no NFS client either): each try fails at once, is retried after the backoff, gives
    up after the bounded attempts, is reported; the disk of the same config is mounted meanwhile."""
    helper = _mount_nfs(tmp_path)
    nfs_path = tmp_path / "mnt" / "nfs"
    disk_path = tmp_path / "mnt" / "disk"
    child = start_child(net=True, mount_nfs=helper, nfs_attempts=3, config={"mounts": [
        ["192.0.2.1:/export", str(nfs_path), "nfs", "vers=3,nolock"],
        ["LABEL=CT_DISK", str(disk_path)]]})
    dev = loops.attach(loops.image("disk.img", "CT_DISK"))
    assert child.wait_mount_event(disk_path, "mounted")["event"]["device"] == dev
    deadline = time.monotonic() + 30
    while (state := child.status()["storage"]["sourced"][0])["state"] != "failed":
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    failed = [e for e in child.events("storage.mount") if e["path"] == str(nfs_path)]
    assert [e["state"] for e in failed] == ["failed"] * 3
    assert state["attempts"] == 3 and state["error"].startswith("mount.nfs exit 32: ")
    assert [m.target for m in child.mounts(tmp_path / "mnt")] == [str(disk_path)]
    log_text = child.log_text()
    assert log_text.count("mount failed; retrying") == 2
    assert "gave up after 3 attempts (corral storage mount mounts[0] tries again)" in log_text
    child.assert_clean_log(expected=("gave up after 3 attempts",))


# ---- the child ------------------------------------------------------------------------------------------
def _child_main(config_file: str) -> None:
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    config = json.loads(Path(config_file).read_text())
    asyncio.run(_child(config))


def _emit(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg, default=str) + "\n")
    sys.stdout.flush()


async def _child(config: dict[str, Any]) -> None:
    from handlers.runner import HandlerRunner
    from handlers.sourced_mounts import SourcedMounts
    from handlers.storage import StorageHandler
    from storage.observe import Observer, Prober
    from storage.rules import Problems as RuleProblems
    from storage.rules import parse_state, parse_storage
    from storage.state import bind_persistent, prepare_state
    from supervisor.backoff import Backoff
    from supervisor.bus import Bus
    from supervisor.events import Resync
    from supervisor.events.udev import BlockEvent, MountChanged, UdevMonitorState
    from supervisor.process import ProcessManager
    from supervisor.sources.udev import UdevSource
    from supervisor.tasks import spawn_task

    loop = asyncio.get_running_loop()
    bus = Bus()
    pm = ProcessManager(bus.publish)
    pm.attach(loop)
    scope = config["scope"]
    observer = Observer(Prober(pm), scope=lambda d: (d.backing_file or "").startswith(scope))
    watch = bus.subscribe("test:watch", BlockEvent, MountChanged, UdevMonitorState, Resync, maxsize=100_000)
    last_uevent: dict[str, float] = {}

    async def forward() -> None:
        while True:
            event = await watch.get()
            msg: dict[str, Any] = {"type": "event", "event": event.to_dict()}
            if isinstance(event, BlockEvent) and event.devname and not event.coldplug:
                last_uevent.setdefault(event.devname, event.received)
            if isinstance(event, MountChanged) and event.state == "mounted" and event.device in last_uevent:
                msg["latency_ms"] = round((time.monotonic() - last_uevent.pop(event.device)) * 1000, 3)
            if isinstance(event, MountChanged) and event.state == "unmounted" and event.device:
                last_uevent.pop(event.device, None)
            _emit(msg)

    spawn_task(forward(), name="test:forward")

    hook_cfg = config.get("hook")

    async def hook(stage: str) -> None:
        if hook_cfg and hook_cfg["when"] == stage:
            status, out, err = await pm.run(["losetup", "-f", "--show", hook_cfg["image"]])
            assert status.returncode == 0, err
            _emit({"type": "hook", "device": out.decode().strip(), "stage": stage})

    udev = UdevSource(bus, buffer_size=int(config.get("rcvbuf", 32 << 20)), coldplug_hook=hook)
    storage: StorageHandler | None = None
    runner: HandlerRunner | None = None
    if config.get("mode", "mounts") == "mounts":
        parsed = parse_storage(config.get("config", {}))
        assert parsed.rules is not None, parsed.errors
        sourced = SourcedMounts(pm, bus, mount_nfs=config.get("mount_nfs", "mount.nfs"),
                                attempts=int(config.get("nfs_attempts", 5)),
                                backoff=lambda: Backoff(first=0.05, initial=0.05, reset_after=float("inf")))
        storage = StorageHandler(pm, bus, rules=parsed.rules.mounts, observer=observer, sourced=sourced)
        runner = HandlerRunner(bus, storage, Backoff(initial=0.01, cap=0.5))
        storage.sourced.poke = runner.mark_dirty
        if config.get("storage_first"):
            runner.start()  # observes (nothing) before the source even opens its monitor
            for _ in range(2000):
                if storage.stats.reconciles:
                    break
                await asyncio.sleep(0.005)
            await udev.start()
        else:
            await udev.start()
            runner.start()
        _emit({"type": "ready"})
    else:
        await udev.start()
        _emit({"type": "ready"})
        problems = RuleProblems()
        rule = parse_state(config["state"], ("corral", "state"), problems)
        assert rule is not None, problems.errors
        result = await prepare_state(rule, observer, pm, bus, Path(config["state_target"]))
        _emit({"type": "state", "result": result.to_dict()})
        if config.get("bind_root") and result.path:
            bound = await asyncio.to_thread(bind_persistent, Path(result.path), Path(config["bind_root"]),
                                            ("var/lib/corral", "var/log"))
            _emit({"type": "bound", "targets": [str(p) for p in bound]})

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "quit":
            break
        if line == "status":
            _emit({"type": "status", "storage": storage.status() if storage else None, "udev": udev.status()})
        elif line.startswith("block "):
            release = Path(line.split(" ", 1)[1])
            _emit({"type": "blocked"})
            deadline = time.monotonic() + 60
            # the loop is blocked on purpose: uevents pile up in the socket
            while not release.exists() and time.monotonic() < deadline:  # noqa: ASYNC240
                time.sleep(0.01)  # noqa: ASYNC251
    if runner is not None:
        await runner.stop()
    await udev.stop()
    await asyncio.sleep(0.05)  # let the forwarder flush
    with contextlib.suppress(Exception):
        watch.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        _child_main(sys.argv[2])
    else:
        raise SystemExit("usage: python -m integration.test_storage child CONFIG.json")

