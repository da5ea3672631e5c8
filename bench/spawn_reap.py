"""Spawn + reap cost per child: supervisor.process (posix_spawn + one waitpid(-1) reaper) compared with
subprocess.run in a plain process, run alternately in one process (rounds of 50 children, the order
turned round at every round), same command; each round is printed with the load average at its time."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

from bench._stats import Samples, alternate
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
    results = Samples()
    for i, side in alternate(("supervisor.process", "subprocess.run"), ROUNDS):
        if side == "supervisor.process":
            t0 = time.perf_counter()
            for _ in range(PER_ROUND):
                await pm.spawn(ARGV).wait()
            took = (time.perf_counter() - t0) / PER_ROUND
        else:
            # subprocess.run waits on its own pid; take SIGCHLD away from our reaper meanwhile.
            asyncio.get_running_loop().remove_signal_handler(signal.SIGCHLD)
            t0 = time.perf_counter()
            for _ in range(PER_ROUND):
                subprocess.run(ARGV, check=True)  # noqa: ASYNC221 (the peer being measured)
            took = (time.perf_counter() - t0) / PER_ROUND
            asyncio.get_running_loop().add_signal_handler(signal.SIGCHLD, pm.reap)
            quiet_wakeup_fd()
        results.record(side, took, label=f"round {i + 1:2d}")
    t0 = time.perf_counter()
    children = [pm.spawn(ARGV) for _ in range(500)]
    await asyncio.gather(*(c.wait() for c in children))
    parallel = (time.perf_counter() - t0) / 500
    print("spawn + reap per child:")
    print("\n".join(results.report("supervisor.process", "subprocess.run")))
    print(f"500 children at once through the reaper: {parallel * 1e3:.3f} ms per child")


if __name__ == "__main__":
    asyncio.run(main())
