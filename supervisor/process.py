"""Every child of PID 1 is spawned here, and this module owns the only ``waitpid(-1)``.

asyncio's child watchers are never used: next to a reaper that also collects orphans they report
wrong exit codes. Children are started with ``os.posix_spawn`` from the loop thread, and the pid is
registered before the loop can run the SIGCHLD handler, so no exit status can be lost. Statuses go to
the spawner's future and onto the bus (``ProcessExited``); orphans re-parented to PID 1 are reaped and
reported as such."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import structlog

from supervisor.events import ProcessExited
from supervisor.signals import quiet_wakeup_fd

log = structlog.get_logger("supervisor.process")

# Every signal a child must see with its default disposition, whatever PID 1 did with it.
_RESETTABLE = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

Publish = Callable[[ProcessExited], None]


@dataclass(frozen=True)
class ExitStatus:
    """How a child ended. ``returncode`` follows subprocess: negative for a killing signal."""

    raw: int

    @property
    def exitcode(self) -> int | None:
        return os.WEXITSTATUS(self.raw) if os.WIFEXITED(self.raw) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.raw) if os.WIFSIGNALED(self.raw) else None

    @property
    def returncode(self) -> int:
        code = self.exitcode
        return code if code is not None else -(self.signal or 0)

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {signal.Signals(self.signal).name}"
        return f"exited {self.exitcode}"


class Child:
    """A spawned process. ``await child.wait()`` gives its ExitStatus."""

    def __init__(self, pid: int, name: str, argv: Sequence[str], done: asyncio.Future[ExitStatus]) -> None:
        self.pid = pid
        self.name = name
        self.argv = list(argv)
        self.started = time.monotonic()
        self._done = done
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None

    @property
    def running(self) -> bool:
        return not self._done.done()

    @property
    def status(self) -> ExitStatus | None:
        return self._done.result() if self._done.done() else None

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    def send_signal(self, signum: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def stop(self, grace: float, signum: int = signal.SIGTERM) -> ExitStatus:
        """Ask the child to stop, then SIGKILL it after ``grace`` seconds."""
        self.send_signal(signum)
        try:
            return await asyncio.wait_for(self.wait(), grace)
        except TimeoutError:
            log.warning("child did not stop in time; killing it", child=self.name, pid=self.pid, grace=grace)
            self.send_signal(signal.SIGKILL)
            return await self.wait()


# What to connect a child's stdin/stdout/stderr to: inherit ours, /dev/null, a pipe we read, or an fd.
INHERIT = "inherit"
DEVNULL = "devnull"
PIPE = "pipe"
Stream = str | int


class ProcessManager:
    """Spawns children and reaps every exit (its own children's and orphans')."""

    def __init__(self, publish: Publish | None = None) -> None:
        self._publish = publish
        self._children: dict[int, tuple[Child, asyncio.Future[ExitStatus]]] = {}
        self._order: list[Child] = []  # spawn order, for stopping in reverse
        self._loop: asyncio.AbstractEventLoop | None = None
        self.orphans_reaped = 0
        self.spawned = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Own SIGCHLD on this loop. Call once, from the loop thread."""
        self._loop = loop
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        quiet_wakeup_fd()
        self.reap()  # anything that exited before we were attached

    def spawn(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: Stream = DEVNULL,
        stdout: Stream = INHERIT,
        stderr: Stream = INHERIT,
        new_session: bool = True,
    ) -> Child:
        """Start ``argv`` (never through a shell). Must be called from the loop thread."""
        loop = self._require_loop()
        if not argv:
            raise ValueError("empty argv")
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = []
        to_close: list[int] = []
        ours: dict[int, int] = {}
        for target, how in ((0, stdin), (1, stdout), (2, stderr)):
            if how == INHERIT:
                continue
            if how == DEVNULL:
                mode = os.O_RDONLY if target == 0 else os.O_WRONLY
                actions.append((os.POSIX_SPAWN_OPEN, target, os.devnull, mode, 0))
            elif how == PIPE:
                r, w = os.pipe()
                child_end, our_end = (r, w) if target == 0 else (w, r)
                actions.append((os.POSIX_SPAWN_DUP2, child_end, target))
                to_close.append(child_end)
                ours[target] = our_end
            elif isinstance(how, int):
                actions.append((os.POSIX_SPAWN_DUP2, how, target))
            else:
                raise ValueError(f"unknown stream {how!r}")
        path = argv[0]
        try:
            pid = os.posix_spawnp(
                path,
                list(argv),
                dict(os.environ if env is None else env),
                file_actions=actions,
                setsid=new_session,
                setsigmask=(),
                setsigdef=_RESETTABLE,
            )
        except BaseException:
            for fd in to_close + list(ours.values()):
                os.close(fd)
            raise
        for fd in to_close:
            os.close(fd)
        done: asyncio.Future[ExitStatus] = loop.create_future()
        child = Child(pid, name or os.path.basename(path), argv, done)
        self._children[pid] = (child, done)
        self._order.append(child)
        self.spawned += 1
        for target, fd in ours.items():
            if target == 0:
                os.close(fd)  # stdin pipes are not needed yet; the child sees EOF
            else:
                reader = _reader_for(fd)
                if target == 1:
                    child.stdout = reader
                else:
                    child.stderr = reader
        log.debug("spawned", child=child.name, pid=pid)
        return child

    def reap(self) -> None:
        """Collect every exited child without blocking. Runs on each SIGCHLD."""
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._exited(pid, raw)

    def _exited(self, pid: int, raw: int) -> None:
        status = ExitStatus(raw)
        entry = self._children.pop(pid, None)
        if entry is None:
            self.orphans_reaped += 1
            log.debug("reaped orphan", pid=pid, status=status.describe())
            self._emit(ProcessExited(pid=pid, name="", returncode=status.exitcode,
                                     signal=status.signal, orphan=True))
            return
        child, done = entry
        if child in self._order:
            self._order.remove(child)
        if not done.done():
            done.set_result(status)
        self._emit(ProcessExited(pid=pid, name=child.name, returncode=status.exitcode, signal=status.signal))

    def _emit(self, event: ProcessExited) -> None:
        if self._publish is not None:
            self._publish(event)

    def children(self) -> list[Child]:
        return list(self._order)

    async def run(
        self,
        argv: Sequence[str],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[ExitStatus, bytes, bytes]:
        """Run to completion and capture output, like ``subprocess.run`` (which must not be used here)."""
        child = self.spawn(argv, name=name, env=env, stdout=PIPE, stderr=PIPE)
        assert child.stdout is not None and child.stderr is not None

        async def collect() -> tuple[ExitStatus, bytes, bytes]:
            assert child.stdout is not None and child.stderr is not None
            out, err = await asyncio.gather(child.stdout.read(), child.stderr.read())
            return await child.wait(), out, err

        try:
            return await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            await child.stop(grace=1.0, signum=signal.SIGKILL)
            raise

    async def stop_all(self, grace: float) -> None:
        """Stop every child in reverse spawn order: SIGTERM, ``grace`` seconds, then SIGKILL."""
        for child in reversed(self.children()):
            log.info("stopping child", child=child.name, pid=child.pid)
            status = await child.stop(grace)
            log.info("child stopped", child=child.name, status=status.describe())

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("ProcessManager.attach(loop) was not called")
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("spawn only from the loop thread (the reaper could race the registration)")
        return self._loop


def _reader_for(fd: int) -> asyncio.StreamReader:
    """An asyncio reader for our end of a pipe, read without threads."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    pipe: IO[bytes] = os.fdopen(fd, "rb", buffering=0)
    transport_ready = loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    from supervisor.tasks import spawn_task

    spawn_task(transport_ready, name=f"pipe-reader-{fd}")
    return reader
