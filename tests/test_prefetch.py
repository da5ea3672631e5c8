"""supervisor.prefetch: heavy imports done in a background thread, failures left to the real import."""

from __future__ import annotations

import subprocess
import sys

from supervisor import prefetch


def test_imports_in_a_thread_and_records_failures() -> None:
    thread, done = prefetch.start(["json", "corral_no_such_module_xyz"])
    thread.join(30)
    assert not thread.is_alive()
    assert done == {"json": True, "corral_no_such_module_xyz": False}
    assert thread.daemon  # never holds PID 1 up at exit


def test_the_boot_modules_are_the_heavy_third_party_ones_and_import() -> None:
    assert prefetch.BOOT_MODULES[0] == "pyroute2"  # the system dockerd's bridge needs it first
    ours = ("supervisor", "handlers", "netconf", "units")
    assert not any(m.split(".")[0] in ours for m in prefetch.BOOT_MODULES)
    thread, done = prefetch.start()
    thread.join(60)
    assert done == dict.fromkeys(prefetch.BOOT_MODULES, True)


def test_pid1_main_starts_the_prefetch_before_anything_else() -> None:
    """`python -m supervisor` has pyroute2 loading before the supervisor imports its own modules."""
    code = ("import sys, threading, supervisor.__main__ as m\n"
            "m.parse_args = lambda argv=None: (_ for _ in ()).throw(SystemExit(0))\n"
            "try:\n    m.main([])\nexcept SystemExit:\n    pass\n"
            "print(any(t.name == 'prefetch' for t in threading.enumerate()) or 'pyroute2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
