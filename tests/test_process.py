import asyncio
import signal
import sys

import pytest

from supervisor.events import ProcessExited
from supervisor.process import ProcessManager


@pytest.fixture
async def pm() -> ProcessManager:
    exits: list[ProcessExited] = []
    manager = ProcessManager(exits.append)
    manager.attach(asyncio.get_running_loop())
    manager.exits = exits  # type: ignore[attr-defined]
    yield manager
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


async def test_exit_codes_and_signals_reported_exactly(pm: ProcessManager) -> None:
    children = []
    for i in range(60):
        if i % 3 == 0:
            argv = ["sh", "-c", f"kill -{[9, 15, 1][i % 9 // 3]} $$"]
        else:
            argv = ["sh", "-c", f"exit {i % 256}"]
        children.append((i, pm.spawn(argv)))
    for i, child in children:
        status = await asyncio.wait_for(child.wait(), 10)
        if i % 3 == 0:
            assert status.signal == [9, 15, 1][i % 9 // 3]
            assert status.exitcode is None
        else:
            assert status.exitcode == i % 256


async def test_run_captures_output(pm: ProcessManager) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    status, out, err = await pm.run([sys.executable, "-c", code])
    assert status.returncode == 0
    assert out == b"out\n" and err == b"err\n"


async def test_child_signal_dispositions_reset(pm: ProcessManager) -> None:
    # Python ignores SIGPIPE; a child must not inherit that.
    status, out, _ = await pm.run(["sh", "-c", "grep SigIgn /proc/self/status"])
    assert status.returncode == 0
    ignored = int(out.split()[1], 16)
    assert ignored & ((1 << 31) - 1) == 0  # no standard signal ignored (32 and 33 are glibc-internal)


async def test_stop_escalates_to_sigkill(pm: ProcessManager) -> None:
    child = pm.spawn(["sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"])
    await asyncio.sleep(0.2)
    status = await child.stop(grace=0.3)
    assert status.signal == signal.SIGKILL


async def test_exit_published_on_bus(pm: ProcessManager) -> None:
    child = pm.spawn(["true"], name="t")
    await child.wait()
    exits = pm.exits  # type: ignore[attr-defined]
    assert any(e.pid == child.pid and e.name == "t" and e.returncode == 0 for e in exits)


async def test_spawn_failure_raises(pm: ProcessManager) -> None:
    with pytest.raises(FileNotFoundError):
        pm.spawn(["/nonexistent/binary"])


async def test_burst_of_exits_prints_no_wakeup_fd_warnings(
    pm: ProcessManager, capfd: pytest.CaptureFixture[str]
) -> None:
    children = [pm.spawn(["true"]) for _ in range(400)]
    await asyncio.gather(*(c.wait() for c in children))
    assert "wakeup fd" not in capfd.readouterr().err
