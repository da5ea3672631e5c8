"""Spawn + reap cost per child: supervisor.process (posix_spawn + one waitpid(-1) reaper) compared with
subprocess.run in a plain process, run alternately in one process, same command."""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import time

from bench._stats import summary
from supervisor import journal
from supervisor.process import ProcessManager
from supervisor.signals import quiet_wakeup_fd

ARGV = ["/bin/true"]
ROUNDS = 20
PER_ROUND = 50


async def main() -> None:
    journal.setup(level="warning", console=None)
    pm = ProcessManager()
    pm.attach(asyncio.get_running_loop())
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(PER_ROUND):
            await pm.spawn(ARGV).wait()
        ours.append((time.perf_counter() - t0) / PER_ROUND)
        # subprocess.run waits on its own pid; take SIGCHLD away from our reaper meanwhile.
        asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)
        t0 = time.perf_counter()
        for _ in range(PER_ROUND):
            subprocess.run(ARGV, check=True)  # noqa: ASYNC221 (the peer being measured)
        theirs.append((time.perf_counter() - t0) / PER_ROUND)
        asyncio.get_running_loop().add_signal_handler(signal.SIGCHLD, pm.reap)
        quiet_wakeup_fd()
    t0 = time.perf_counter()
    children = [pm.spawn(ARGV) for _ in range(500)]
    await asyncio.gather(*(c.wait() for c in children))
    parallel = (time.perf_counter() - t0) / 500
    print(f"supervisor.process spawn+reap per child: {summary(ours)}")
    print(f"subprocess.run per child:                {summary(theirs)}")
    print(f"ratio (ours / subprocess.run): {statistics.median(ours) / statistics.median(theirs):.2f}")
    print(f"500 children at once through the reaper: {parallel * 1e3:.3f} ms per child")


if __name__ == "__main__":
    asyncio.run(main())
