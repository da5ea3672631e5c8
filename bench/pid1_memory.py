"""PID 1 memory: RSS of a sandboxed supervisor once ready with every handler live (the system dockerd
on, so the API client, pyroute2 and pyudev are in use), then after 100k bus events through its handlers;
RSS of a process with every dependency imported; growth after 100k bus events through a runner."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._stats import rss_kib

IMPORT_ALL = (
    "import aiodocker, pyudev, pyroute2, yaml, structlog, jsonschema; "
    "import supervisor.app, supervisor.commands.core, supervisor.cli.main; "
    "from pathlib import Path; import time; time.sleep(0.2); "
    "print([l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS')][0])"
)


def sandbox_rss() -> tuple[int, int, float]:
    """RSS of the sandboxed PID 1 when ready and idle, then after 100k bus events through its handlers."""
    from integration import sandbox

    sandbox.SYSTEM_DOCKER_DEFAULT = True  # every handler live, as on a host
    with tempfile.TemporaryDirectory() as tmp:
        sb = sandbox.Sandbox(Path(tmp) / "sb", config={"corral": {"debug": True, "log": {"level": "info"}}})
        try:
            sb.wait_ready()
            time.sleep(1)
            pid = sb.pid1
            idle = rss_kib(pid)
            t0 = time.perf_counter()
            for _ in range(10):
                sb.request("debug.publish", count=10_000)
            took = time.perf_counter() - t0
            time.sleep(1)
            return idle, rss_kib(pid), took
        finally:
            sb.stop()


async def growth() -> tuple[int, int]:
    from handlers.runner import HandlerRunner
    from supervisor import journal
    from supervisor.bus import Bus
    from supervisor.events import Event, TimerFired

    journal.setup(level="warning", console=None)

    class Noop:
        name = "noop"
        kinds: tuple[type[Event], ...] = (TimerFired,)

        async def reconcile(self, full: bool) -> None:
            return None

    bus = Bus()
    runner = HandlerRunner(bus, Noop())
    runner.start()
    for i in range(10_000):  # warm up
        bus.publish(TimerFired(name="t"))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    gc.collect()
    before = rss_kib()
    for i in range(100_000):
        bus.publish(TimerFired(name="t"))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    gc.collect()
    return before, rss_kib()


def main() -> None:
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    print(f"every dependency + corral imported, idle: {out.split(':')[1].strip()}")
    idle, loaded, took = sandbox_rss()
    print(f"sandboxed PID 1, ready and idle: {idle / 1024:.1f} MiB")
    print(f"sandboxed PID 1 after 100k bus events ({took:.2f} s): {loaded / 1024:.1f} MiB "
          f"(growth {loaded - idle} KiB)")
    before, after = asyncio.run(growth())
    print(f"in-process, 100k bus events through a runner: RSS {before} KiB -> {after} KiB "
          f"(growth {after - before} KiB)")


if __name__ == "__main__":
    main()
