"""How long PID 1's event loop is held while the journal writes to a slow console.

A serial console at 115200 baud drains about 11.5 KB/s; once the tty's buffer is full, a write waits.
The console here is a pipe shrunk to one page (a tty's buffer is about as small) whose reader drains it
at the baud rate. The journal emits a boot's worth of records from the loop (a few per loop turn, as the
handlers do) while a heartbeat task measures how late each of its 5 ms ticks comes. Run side by side:
the journal writing the console itself (``console_thread=False``, what corral did before) and through its
console thread, alternated (the order turned round at every run), each run printed with the load
average at its time.

    python -m bench.console_lag [--records 400] [--baud 115200] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import statistics
import threading
import time

from bench._stats import alternate, loadavg
from supervisor.journal import Journal

F_SETPIPE_SZ = 1031


def slow_reader(fd: int, baud: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        time.sleep(len(data) * 10 / baud)  # 10 bits per byte on the wire


async def measure(journal: Journal, records: int) -> tuple[float, float, float]:
    lags: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        tick = 0.005
        while not done.is_set():
            t = time.monotonic()
            await asyncio.sleep(tick)
            lags.append(time.monotonic() - t - tick)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.02)
    start = time.monotonic()
    for i in range(records):
        journal.log("boot phase step done", logger="bench", unit="bench", i=i, detail="x" * 60)
        if i % 4 == 3:
            await asyncio.sleep(0)
    emitted = time.monotonic() - start
    done.set()
    await beat
    return emitted, max(lags), statistics.quantiles(lags, n=100, method="inclusive")[98]


def run_once(thread: bool, records: int, baud: int) -> tuple[float, float, float]:
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    stop = threading.Event()
    reader = threading.Thread(target=slow_reader, args=(r, baud, stop), daemon=True)
    reader.start()
    console = os.fdopen(w, "w", buffering=1)
    journal = Journal(console=console, console_format="plain", console_thread=thread)
    try:
        return asyncio.run(measure(journal, records))
    finally:
        stop.set()
        journal.drain_console(0)
        os.close(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.records} records to a {args.baud}-baud console, {args.runs} runs each (medians)")
    results: dict[str, list[tuple[float, float, float]]] = {"itself": [], "thread": []}
    for i, side in alternate(("itself", "thread"), args.runs):
        row = run_once(side == "thread", args.records, args.baud)
        results[side].append(row)
        print(f"  run {i + 1} {side:<7} emit all {row[0]:.3f} s, max lag {row[1] * 1e3:.1f} ms, "
              f"p99 lag {row[2] * 1e3:.1f} ms   load {loadavg():.2f}", flush=True)
    header = ("journal writes the console", "emit all (s)", "max lag (ms)", "p99 lag (ms)")
    print(f"{header[0]:<28} {header[1]:>12} {header[2]:>13} {header[3]:>13}")
    for name, rows in results.items():
        emitted = statistics.median(r[0] for r in rows)
        worst = statistics.median(r[1] for r in rows) * 1000
        p99 = statistics.median(r[2] for r in rows) * 1000
        print(f"{name:<28} {emitted:>12.3f} {worst:>13.1f} {p99:>13.1f}")


if __name__ == "__main__":
    main()
