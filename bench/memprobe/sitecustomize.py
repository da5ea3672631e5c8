"""A memory probe for experiments on a sandboxed PID 1 (never shipped, never in the image).

``bench.hostile_memory`` puts this directory on PYTHONPATH and sets ``CORRAL_MEMPROBE=DIR``; the
interpreter then imports it at start. In the sandbox's PID 1 only (a pid below 100: its own pid
namespace) it starts a thread that waits for ``DIR/req`` (one line: a label) and answers with
``DIR/LABEL.json``: VmRSS as found, after a full collection and, when the label has ``trim``, after
``malloc_trim(0)``; pymalloc's allocated blocks; with tracemalloc on (``PYTHONTRACEMALLOC=N``) the
traced size and a snapshot ``DIR/LABEL.snap``; and ``sys._debugmallocstats()`` (pymalloc's arenas and
pools) in ``DIR/LABEL.stats``."""

import os

_DIR = os.environ.get("CORRAL_MEMPROBE")


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def _answer(label: str) -> None:
    import ctypes
    import gc
    import json
    import sys
    import tracemalloc

    assert _DIR is not None
    out: dict[str, object] = {"label": label, "rss": _rss()}
    gc.collect()
    out["rss_after_gc"] = _rss()
    out["pymalloc_blocks"] = sys.getallocatedblocks()
    if tracemalloc.is_tracing():
        out["traced"] = tracemalloc.get_traced_memory()  # (now, peak)
        tracemalloc.take_snapshot().dump(os.path.join(_DIR, label + ".snap"))
    if "trim" in label:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        out["rss_after_trim"] = _rss()
    with open(os.path.join(_DIR, label + ".stats"), "w") as stats:
        saved = os.dup(2)
        os.dup2(stats.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    with open(os.path.join(_DIR, label + ".json.tmp"), "w") as f:
        json.dump(out, f)
    os.rename(os.path.join(_DIR, label + ".json.tmp"), os.path.join(_DIR, label + ".json"))


def _serve() -> None:
    import time

    assert _DIR is not None
    request = os.path.join(_DIR, "req")
    while True:
        time.sleep(0.2)
        try:
            with open(request) as f:
                label = f.read().strip()
        except FileNotFoundError:
            continue
        os.unlink(request)
        _answer(label)


if _DIR and os.getpid() < 100:
    import threading

    threading.Thread(target=_serve, daemon=True, name="memprobe").start()
