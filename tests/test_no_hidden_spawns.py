"""PID 1 spawns children only through its process module: the libraries it loads through ctypes
(libc, libudev) must not run ``ldconfig -p`` behind its back, as ``ctypes.util.find_library`` does.
Checked with an audit hook in a fresh interpreter, so every import happens under it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys

    spawned = []

    def hook(event, args):
        if event in ("subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "os.system"):
            spawned.append((event, repr(args)[:200]))

    sys.addaudithook(hook)
    import supervisor.app  # noqa: F401  (mounts, power and the rest of PID 1 at import)
    from supervisor import power  # noqa: F401
    import importlib
    from supervisor.prefetch import BOOT_MODULES

    for name in BOOT_MODULES:  # what PID 1 imports in its first boot phase
        importlib.import_module(name)
    from supervisor.sources import libudev
    from supervisor.sources.udev import enumerate_devices

    libudev.context()
    libudev.context()
    devices = enumerate_devices()
    assert devices, "no devices in sysfs?"
    print(spawned)
""")


def test_pid1_imports_and_udev_contexts_spawn_nothing() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
