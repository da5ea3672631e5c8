"""bench/os_disk.py's pure parts: when a serial line arrived (from the sampled size of the log), the markers
and PID 1's state phase read from a log as the guest prints it (colours and all), and the summary. No
clock: nothing here times anything."""

from __future__ import annotations

from bench.os_disk import Run, arrival, kernel_init, spread, stages, state_phase

# Lines as corral's guests print them on the serial console (a BIOS boot from the installed disk): GRUB's
# banner, the kernel's line, then PID 1's structlog lines with their ANSI colours.
LOG = (
    b"\x1b[2J\x1b[1;1H                             GNU GRUB  version 2.06-13+deb12u2\r\n"
    b"[    7.632499] Run /init as init process\r\n"
    b"\x1b[2m2026-12-07T23:14:42.698324Z\x1b[0m [\x1b[32m\x1b[1minfo     \x1b[0m] "
    b"\x1b[1mcorral 0.1.0 starting         \x1b[0m [\x1b[0m\x1b[1m\x1b[34msupervisor\x1b[0m]\x1b[0m "
    b"\x1b[36mpid\x1b[0m=\x1b[35m1\x1b[0m\r\n"
    b"\x1b[2m2026-12-07T23:14:45.109375Z\x1b[0m [\x1b[32m\x1b[1minfo     \x1b[0m] "
    b"\x1b[1mboot phase done                \x1b[0m [\x1b[0m\x1b[1m\x1b[34msupervisor\x1b[0m]\x1b[0m "
    b"\x1b[36mphase\x1b[0m=\x1b[35mstate\x1b[0m \x1b[36mseconds\x1b[0m=\x1b[35m1.539505\x1b[0m\r\n"
    b"\x1b[2m2026-12-07T23:15:16.138346Z\x1b[0m [\x1b[32m\x1b[1minfo     \x1b[0m] "
    b"\x1b[1mcorral 0.1.0 ready            \x1b[0m [\x1b[0m\x1b[1m\x1b[34msupervisor\x1b[0m]\x1b[0m "
    b"\x1b[36mboot_seconds\x1b[0m=\x1b[35m34.124\x1b[0m\r\n"
)


def test_arrival_is_the_first_sample_past_the_offset() -> None:
    points = [(0.0, 0), (0.05, 10), (0.10, 10), (0.15, 25)]
    assert arrival(points, 0) == 0.05
    assert arrival(points, 9) == 0.05
    assert arrival(points, 10) == 0.15
    assert arrival(points, 25) is None  # never printed (yet)


def test_stages_times_each_marker_by_the_arrival_of_its_line() -> None:
    cut = {name: LOG.index(text) + len(text) for name, text in (
        ("grub", b"GNU GRUB"), ("init", b"Run /init as init process"), ("pid1", b"corral 0.1.0 starting"),
        ("ready", b"corral 0.1.0 ready"))}
    # the log arrived in pieces, each piece ending with one marker
    points = [(0.0, 0), (1.0, cut["grub"]), (2.0, cut["init"]), (3.0, cut["pid1"]), (9.0, len(LOG))]
    assert stages(LOG, points) == {"grub": 1.0, "init": 2.0, "pid1": 3.0, "ready": 9.0}


def test_stages_leaves_out_the_markers_a_boot_never_printed() -> None:
    kernel_side = LOG[LOG.index(b"[    7.6"):]  # -kernel/-initrd: no firmware, no GRUB
    assert set(stages(kernel_side, [(5.0, len(kernel_side))])) == {"init", "pid1", "ready"}


def test_state_phase_reads_pid1s_own_seconds_through_the_colours() -> None:
    assert state_phase(LOG) == 1.539505
    assert state_phase(b"corral 0.1.0 ready\n") is None


def test_kernel_init_is_the_kernels_own_clock_at_run_init() -> None:
    assert kernel_init(LOG) == 7.632499
    assert kernel_init(b"GNU GRUB  version 2.06\r\n") is None


def test_summary_gives_medians_spread_and_the_ratio_disk_to_kernel() -> None:
    run = Run([
        {"install": {"seconds": 60.0}, "disk": {"ready": 50.0}, "kernel": {"ready": 40.0},
         "upgrade": {"total": 100.0, "write": 30.0, "reboot": 10.0, "boot": 60.0}},
        {"install": {"seconds": 80.0}, "disk": {"ready": 70.0}, "kernel": {"ready": 35.0}},  # upgrade failed
        {"install": {"seconds": 70.0}, "disk": {"ready": 60.0}, "kernel": {"ready": 30.0},
         "upgrade": {"total": 120.0, "write": 40.0, "reboot": 12.0, "boot": 68.0}},
    ])
    got = run.summary()
    assert got["install"] == spread([60.0, 80.0, 70.0]) == {"median": 70.0, "min": 60.0, "max": 80.0, "n": 3}
    assert got["upgrade"] == {"median": 110.0, "min": 100.0, "max": 120.0, "n": 2}
    assert got["ratio_disk_kernel"] == round(60.0 / 35.0, 2)


def test_summary_of_a_run_whose_samples_all_failed_is_empty() -> None:
    assert Run([{"sample": 1, "failed": "the guest did not boot"}]).summary() == {}
