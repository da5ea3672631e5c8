"""bootcmd/runcmd: entries as argv or shell (pure), and run_commands against real processes: output
into the log, exit codes, a failure never stops the next, the timeout kills the command's group."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from handlers.cloudconfig.commands import SHELL, Command, parse_commands, run_commands
from supervisor.process import ProcessManager


def test_a_string_is_shell_and_a_list_is_an_argv() -> None:
    parsed = parse_commands({"runcmd": ["echo $HOME | tr a-z A-Z", ["touch", "/tmp/a b"], "", []]},
                            "runcmd", "f.yml")
    assert parsed.commands == (
        Command("runcmd[0]", (SHELL, "-c", "echo $HOME | tr a-z A-Z"), shell=True),
        Command("runcmd[1]", ("touch", "/tmp/a b"), shell=False),
    )
    assert [(w.file, w.key, w.message) for w in parsed.warnings] == [
        ("f.yml", "runcmd[2]", "an empty command: skipped"),
        ("f.yml", "runcmd[3]", "an empty command: skipped")]
    assert parse_commands({}, "bootcmd").commands == ()


@pytest.fixture
async def pm() -> AsyncIterator[ProcessManager]:
    manager = ProcessManager()
    manager.attach(asyncio.get_running_loop())
    yield manager
    await manager.stop_all(1.0)
    for _ in range(100):  # the output pipes' transports close a loop turn after their readers' EOF
        if not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)


def shell(key: str, text: str) -> Command:
    return Command(key, (SHELL, "-c", text), shell=True)


async def test_output_exit_codes_and_failures(pm: ProcessManager) -> None:
    commands = [shell("runcmd[0]", "echo out; echo err >&2"),
                Command("runcmd[1]", ("echo", "$HOME", "a;b"), shell=False),
                shell("runcmd[2]", "exit 7"),
                Command("runcmd[3]", ("/nonexistent/program",), shell=False),
                shell("runcmd[4]", "echo last; echo 'level=warning msg=\"careful now\" disk=sda'")]
    with capture_logs() as logs:
        outcomes = await run_commands(pm, commands, "runcmd", timeout=30)
    assert [(o.key, o.returncode) for o in outcomes] == [
        ("runcmd[0]", 0), ("runcmd[1]", 0), ("runcmd[2]", 7), ("runcmd[3]", None), ("runcmd[4]", 0)]
    lines = {(r["command"], r.get("stream"), r["event"]) for r in logs if r.get("stream")}
    assert {("runcmd[0]", "stdout", "out"), ("runcmd[0]", "stderr", "err"),
            ("runcmd[1]", "stdout", "$HOME a;b"), ("runcmd[4]", "stdout", "last")} <= lines
    failed = {r["command"]: r for r in logs if r["event"] == "command failed"}
    assert failed["runcmd[2]"]["exit_code"] == 7 and failed["runcmd[2]"]["log_level"] == "warning"
    assert "cannot start '/nonexistent/program'" in failed["runcmd[3]"]["error"]
    leveled = [r for r in logs if r["event"] == "careful now"]  # a line's own level is kept
    assert [(r["log_level"], r["disk"], r["command"]) for r in leveled] == [("warning", "sda", "runcmd[4]")]
    done = [r for r in logs if r["event"] == "runcmd: done"]
    assert done[0]["failed"] == ["runcmd[2]", "runcmd[3]"]


async def test_a_command_past_its_timeout_is_killed_with_its_group(pm: ProcessManager,
                                                                  tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    commands = [shell("bootcmd[0]", f"sleep 300 & echo $! > {pidfile}; wait"),
                shell("bootcmd[1]", "echo next")]
    with capture_logs() as logs:
        outcomes = await run_commands(pm, commands, "bootcmd", timeout=0.5)
    assert outcomes[0].returncode is None and "still running after 0.5 s" in outcomes[0].reason
    assert outcomes[1].returncode == 0
    grandchild = int(await asyncio.to_thread(pidfile.read_text))
    await _gone(grandchild)
    assert any(r["event"] == "command failed" and r["command"] == "bootcmd[0]" for r in logs)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split()[2]


async def _gone(pid: int) -> None:
    for _ in range(500):
        try:
            state = await asyncio.to_thread(_state, pid)
        except FileNotFoundError:
            return
        if state == "Z":  # killed; its parent (this test's reaper, or init) collects it
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{pid} still running")


async def test_cancelling_kills_the_running_command(pm: ProcessManager) -> None:
    task = asyncio.create_task(run_commands(pm, [shell("runcmd[0]", "sleep 300")], "runcmd", timeout=300))
    for _ in range(500):
        if pm.children():
            break
        await asyncio.sleep(0.01)
    child = pm.children()[0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status: Any = await asyncio.wait_for(child.wait(), 10)
    assert status.signal == signal.SIGKILL
