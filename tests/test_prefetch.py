"""supervisor.prefetch: heavy imports done in a background thread, failures left to the real import."""

from __future__ import annotations

from supervisor import prefetch


def test_imports_in_a_thread_and_records_failures() -> None:
    thread, done = prefetch.start(["json", "corral_no_such_module_xyz"])
    thread.join(30)
    assert not thread.is_alive()
    assert done == {"json": True, "corral_no_such_module_xyz": False}
    assert thread.daemon  # never holds PID 1 up at exit


def test_the_boot_modules_are_the_heavy_third_party_ones_and_import() -> None:
    assert prefetch.BOOT_MODULES[0] == "pyroute2.iproute.linux"  # the system dockerd's bridge needs it first
    ours = ("supervisor", "handlers", "netconf", "units", "storage", "swarm")
    assert not any(m.split(".")[0] in ours for m in prefetch.BOOT_MODULES)
    thread, done = prefetch.start(prefetch.BOOT_MODULES)
    thread.join(60)
    assert done == dict.fromkeys(prefetch.BOOT_MODULES, True)


def test_the_first_batch_is_only_what_the_spawn_of_the_system_dockerd_needs() -> None:
    """The API client (aiohttp, aiodocker) is imported once dockerd is spawned, not before: imported from
    the first phase on, it took the GIL from the phases before the spawn (1.3 s under TCG)."""
    assert prefetch.EARLY == ("pyroute2.iproute.linux",)
    assert set(prefetch.AFTER_SPAWN) == {"aiohttp", "aiodocker"}
    assert prefetch.start.__defaults__ == (prefetch.EARLY,)


def test_spawning_the_system_dockerd_needs_neither_aiodocker_nor_aiohttp() -> None:
    """The system-docker-start phase imports units.system_dockerd: spawning must not wait for the API
    client's import (seconds under TCG; the prefetch thread brings it in meanwhile)."""
    import subprocess
    import sys

    code = ("import sys, units.system_dockerd\n"
            "print(sorted(m for m in ('aiodocker', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
