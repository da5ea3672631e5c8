"""The units' container inits watched through pidfds (handlers/units/inits.py) and what an init gone leads
to (handlers/units/acting.py, ``Actions.init_gone``): the same decision as a ``die`` (the exit code from
dockerd's wait), taken once, the ``die`` that follows coalesced; a pid that is not the container's init
is never watched. The pidfds are real (of child processes of the test); dockerd is the fake."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from handlers.units.inits import InitWatch, open_init
from handlers.units.reconciler import UnitsReconciler
from supervisor.events.docker import ContainerEvent
from tests.units_fakes import Clock, FakeDocker, FakeRuntime, make, settle, svc
from units.model import Scope
from units.runtime import DockerUnavailable

CID = "c" * 64


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def fake_proc(tmp_path: Path, pid: int, cgroup: str) -> Path:
    (tmp_path / "proc" / str(pid)).mkdir(parents=True)
    (tmp_path / "proc" / str(pid) / "cgroup").write_text(cgroup)
    return tmp_path / "proc"


def test_only_a_live_process_in_the_containers_cgroup_is_opened(tmp_path: Path,
                                                                 child: subprocess.Popen[bytes]) -> None:
    proc = fake_proc(tmp_path, child.pid, f"0::/corral-x/{CID}\n")
    fd = open_init(child.pid, CID, proc)
    assert fd is not None
    os.close(fd)
    # Another container's cgroup (a reused pid, or a dockerd in another pid namespace): not opened.
    assert open_init(child.pid, "d" * 64, proc) is None
    assert open_init(0, CID, proc) is None
    # A process already gone: not opened (its pidfd would be readable at once, or there is none).
    child.kill()
    child.wait()
    assert open_init(child.pid, CID, proc) is None


async def test_an_init_gone_is_told_once_and_its_pidfd_closed(tmp_path: Path,
                                                              child: subprocess.Popen[bytes]) -> None:
    gone: list[tuple[str, str, Scope]] = []
    told = asyncio.Event()

    def on_gone(name: str, cid: str, scope: Scope) -> None:
        gone.append((name, cid, scope))
        told.set()

    watch = InitWatch(on_gone, opener=lambda pid, _cid: os.pidfd_open(pid))
    assert watch.wants("web", CID)
    assert await watch.arm("web", CID, "system", child.pid)
    fd = watch.watched["web"].fd
    assert not watch.wants("web", CID) and watch.wants("web", "other")
    child.kill()
    await asyncio.wait_for(told.wait(), 5)
    await asyncio.sleep(0.01)
    assert gone == [("web", CID, "system")] and watch.fired == 1 and watch.watched == {}
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    watch.close()


async def test_an_init_that_cannot_be_opened_is_not_tried_again_by_the_reconcile(
        child: subprocess.Popen[bytes]) -> None:
    tried: list[int] = []

    def opener(pid: int, _cid: str) -> int | None:
        tried.append(pid)
        return None

    watch = InitWatch(lambda *_: None, opener=opener)
    assert not await watch.arm("web", CID, "user", child.pid)
    assert not watch.wants("web", CID)  # a reconcile does not look at it again
    assert not await watch.arm("web", CID, "user", child.pid)  # nor does a start with the same pid
    assert await watch.arm("web", CID, "user", child.pid + 1) is False  # a new init is tried
    assert tried == [child.pid, child.pid + 1]


async def test_watches_end_with_their_unit_and_at_close(child: subprocess.Popen[bytes]) -> None:
    watch = InitWatch(lambda *_: None, opener=lambda pid, _cid: os.pidfd_open(pid))
    await watch.arm("a", CID, "system", child.pid)
    await watch.arm("b", "d" * 64, "system", child.pid)
    fds = [w.fd for w in watch.watched.values()]
    watch.keep_only({"b"})
    assert list(watch.watched) == ["b"]
    watch.close()
    assert watch.watched == {} and not watch.wants("c", CID)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


# ---- an init gone, through the units reconciler (fake dockerd) ------------------------------------------
def gone(handler: UnitsReconciler, docker: FakeDocker, name: str, code: int) -> str:
    """The unit's init exited with ``code`` and dockerd has processed it (its wait answers); its listing
    may still say running."""
    cid = docker.exit(name, code)
    handler.actions.init_gone(name, cid, "system")
    return cid


def die(docker: FakeDocker, handler: UnitsReconciler, name: str, code: int, at: int) -> None:
    cid = docker.by_name(name)["Id"]
    handler.exits.note(ContainerEvent(daemon="system", action="die", container_id=cid, name=name, unit=name,
                                      exit_code=code, time_nano=at))


async def test_an_init_gone_restarts_the_unit_once_and_the_die_after_it_is_coalesced(tmp_path: Path) -> None:
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    docker.calls.clear()
    clock.now += 2
    killed = time.time_ns()
    with structlog.testing.capture_logs() as logs:
        gone(handler, docker, "web", 137)
        assert list(handler.actions.busy) == ["web"]  # before any reconcile
        await settle(handler)
        # dockerd's die, after the restart: nothing more.
        die(docker, handler, "web", 137, killed)
        await settle(handler)
    assert docker.calls == [("wait", "web"), ("start", "web")]
    status = handler.unit_status("web")
    assert status["restarts"] == 1 and status["last_exit"] == 137 and status["state"] == "running"
    exits = [e for e in logs if e["event"] == "unit exited; restarting"]
    assert [(e["via"], e["exit_code"]) for e in exits] == [("pidfd+wait", 137)]
    await handler.close()


async def test_the_die_that_comes_before_the_wait_answers_tells_the_exit_at_once(tmp_path: Path) -> None:
    """dockerd sends `die` while it still holds the container for its clean-up, and answers the wait after:
    the start goes out on the die (it waits in dockerd), the wait's answer changes nothing."""
    clock = Clock()
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")}, clock=clock)
    await settle(handler)
    docker.calls.clear()
    clock.now += 2
    with structlog.testing.capture_logs() as logs:
        gone(handler, docker, "web", 137)
        die(docker, handler, "web", 137, time.time_ns())  # before the wait is even sent
        await settle(handler)
    assert sorted(docker.calls) == [("start", "web"), ("wait", "web")]
    exits = [e for e in logs if e["event"] == "unit exited; restarting"]
    assert [(e["via"], e["exit_code"]) for e in exits] == [("pidfd+die", 137)]
    assert handler.unit_status("web")["restarts"] == 1
    await handler.close()


async def test_an_init_gone_is_decided_with_the_exit_code_dockerd_reports(tmp_path: Path) -> None:
    handler, docker, _ = make(tmp_path, {"ok": svc(restart="on-failure"), "bad": svc(restart="on-failure")})
    await settle(handler)
    docker.calls.clear()
    gone(handler, docker, "ok", 0)
    gone(handler, docker, "bad", 2)
    await settle(handler)
    assert sorted(docker.calls) == [("start", "bad"), ("wait", "bad"), ("wait", "ok")]
    assert handler.unit_status("ok")["state"] == "exited" and handler.unit_status("ok")["last_exit"] == 0
    assert handler.unit_status("bad")["restarts"] == 1
    await handler.close()


async def test_an_init_gone_the_fast_path_does_not_own_is_left_alone(tmp_path: Path) -> None:
    services = {"web": svc(restart="always"),
                "init": svc(restart="always", labels={"io.corral.oneshot": "true"})}
    handler, docker, _ = make(tmp_path, services)
    await settle(handler)
    docker.calls.clear()
    # An old container of the unit, another daemon, a oneshot, a unit not configured: nothing done.
    handler.actions.init_gone("web", "old", "system")
    handler.actions.init_gone("web", docker.by_name("web")["Id"], "user")
    handler.actions.init_gone("init", docker.by_name("init")["Id"], "system")
    handler.actions.init_gone("nope", "x", "system")
    assert handler.actions.busy == {}
    # A unit with a task in flight (corral is stopping or starting it): left to that task.
    blocker = asyncio.Event()
    handler.actions._spawn_task("web", blocker.wait())  # type: ignore[arg-type]
    handler.actions.init_gone("web", docker.by_name("web")["Id"], "system")
    blocker.set()
    await settle(handler)
    assert docker.calls == []
    await handler.close()


async def test_an_init_gone_that_dockerd_does_not_confirm_is_left_to_the_reconcile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unanswered(*_: object, **__: object) -> int:
        raise DockerUnavailable("wait web: no answer")

    monkeypatch.setattr(FakeRuntime, "wait", unanswered)
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")})
    await settle(handler)
    docker.calls.clear()
    gone(handler, docker, "web", 137)
    await asyncio.sleep(0.01)
    assert handler.unit_status("web")["restarts"] == 0  # nothing decided on the pidfd alone
    await settle(handler)  # the reconcile sees the exit in the listing
    assert docker.calls == [("start", "web")]
    assert handler.unit_status("web")["restarts"] == 1
    await handler.close()


async def test_a_running_units_init_is_watched_and_its_exit_restarts_it(
        tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    """Armed when corral starts the unit, again by a reconcile when the watch is missing (a container that
    was running before PID 1 came up); the real pidfd of the init firing restarts the unit."""
    handler, docker, _ = make(tmp_path, {"web": svc(restart="always")})
    def opener(pid: int, _cid: str) -> int | None:
        try:
            return os.pidfd_open(pid)
        except OSError:
            return None  # the init of the restarted container (the dead child again)

    handler.actions.inits.opener = opener
    original_start = FakeRuntime.start

    async def start(self: FakeRuntime, container: str) -> None:
        await original_start(self, container)
        self.docker.by_name(container)["Pid"] = child.pid

    FakeRuntime.start = start  # type: ignore[method-assign]
    try:
        await settle(handler)
        assert list(handler.actions.inits.watched) == ["web"]  # by corral's start
        handler.actions.inits.disarm("web")
        await handler.reconcile(False)
        await asyncio.sleep(0.05)
        assert list(handler.actions.inits.watched) == ["web"]  # by the reconcile
        docker.calls.clear()
        docker.exit("web", 137)
        child.kill()
        child.wait()
        for _ in range(100):
            if handler.actions.inits.fired:
                break
            await asyncio.sleep(0.01)
        await settle(handler)
    finally:
        FakeRuntime.start = original_start  # type: ignore[method-assign]
    assert handler.actions.inits.fired == 1
    assert docker.calls == [("wait", "web"), ("start", "web")]
    assert handler.unit_status("web")["restarts"] == 1
    await handler.close()


async def test_a_start_cancelled_at_shutdown_lets_its_watchs_inspect_end(tmp_path: Path) -> None:
    """The inspect that sets up a started unit's watch is not cut off when the start is cancelled at
    shutdown (dockerd logs a client that hangs up mid-answer as an error: "write: broken pipe")."""
    handler, _docker, _ = make(tmp_path, {"web": svc(restart="always")})
    entered, release, ended = asyncio.Event(), asyncio.Event(), []
    original = FakeRuntime.inspect

    async def inspect(self: FakeRuntime, container: str) -> Any:
        entered.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            ended.append(False)  # cut off
            raise
        ended.append(True)
        return await original(self, container)

    FakeRuntime.inspect = inspect  # type: ignore[method-assign]
    try:
        task = asyncio.ensure_future(handler.reconcile(False))
        await asyncio.wait_for(entered.wait(), 5)  # the start is done; its watch's inspect is in flight
        asyncio.get_running_loop().call_later(0.2, release.set)  # dockerd answers a little later
        await handler.actions.cancel()
        assert ended == [True]  # answered, not cut off
        await asyncio.gather(task, return_exceptions=True)
    finally:
        FakeRuntime.inspect = original  # type: ignore[method-assign]
    await handler.close()


async def test_a_unit_switched_off_is_not_watched_until_switched_on(child: subprocess.Popen[bytes]) -> None:
    """`corral debug init-watch UNIT off`: its exits are told by dockerd's die alone (the die-only side)."""
    watch = InitWatch(lambda *_: None, opener=lambda pid, _cid: os.pidfd_open(pid))
    assert await watch.arm("web", CID, "system", child.pid)
    watch.switch("web", False)
    assert watch.watched == {} and not watch.wants("web", CID)
    assert not await watch.arm("web", CID, "system", child.pid)
    watch.switch("web", True)
    assert watch.wants("web", CID) and await watch.arm("web", CID, "system", child.pid)
    watch.close()
