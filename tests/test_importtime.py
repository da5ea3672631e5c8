"""PID 1's import report (issue 17, item 3): image/init starts PID 1 under ``-X importtime`` only when the
kernel command line asks (supervisor/importtime.py), its report apart from the console; and the bench's
reading of such a report (bench/_importtime.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench import _importtime

REPO = Path(__file__).resolve().parents[1]
INIT = REPO / "image" / "init"


def test_init_starts_pid1_plainly_unless_the_command_line_asks() -> None:
    text = INIT.read_text()
    plain = text.index("\texec /usr/bin/python3 -m supervisor\n")
    measured = text.index("exec /usr/bin/python3 -X importtime -m supervisor.importtime 3>&2 "
                          '2>>"$importtime"')
    assert measured < plain  # the measured start is the exception, in its own branch
    branch = text[text.rindex("\n", 0, measured):measured]
    assert 'if [ -n "$importtime" ]' in text[:measured] and "corral_importtime=?*" in text
    assert "importtime" not in text[plain:]  # the plain start has nothing of it
    assert branch.startswith("\n\t\t")


def _init_choice(cmdline: str, tmp_path: Path) -> str:
    """The python3 command line image/init's last lines would run for ``cmdline`` (echoed, not run)."""
    text = INIT.read_text()
    body = text[text.index("importtime=\n"):text.index('echo "corral: /usr/bin/python3 cannot')]
    body = (body.replace("</proc/cmdline", f"<{tmp_path / 'cmdline'}")
            .replace("[ -x /usr/bin/python3 ]", "true")
            .replace("exec /usr/bin/python3", "chosen python3"))
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    script = 'chosen() { echo "$*"; exit 0; }\n' + body
    shell = ["busybox", "sh"] if shutil.which("busybox") else ["sh"]  # init's own shell where there is one
    return subprocess.run([*shell, "-c", script], capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout.strip()


def test_init_reads_the_switch_from_the_command_line(tmp_path: Path) -> None:
    report = tmp_path / "report"
    assert _init_choice("console=ttyS0 panic=-1", tmp_path) == "python3 -m supervisor"
    assert _init_choice(f"console=ttyS0 corral_importtime={report} quiet", tmp_path) == (
        "python3 -X importtime -m supervisor.importtime")
    assert report.exists()
    # a destination that cannot be opened: the plain start (PID 1 must start either way)
    assert _init_choice("corral_importtime=/nonexistent/dir/x", tmp_path) == "python3 -m supervisor"
    assert _init_choice("corral_importtime=", tmp_path) == "python3 -m supervisor"


def test_the_report_goes_to_fd_2_and_python_writes_to_the_console_on_fd_3(tmp_path: Path) -> None:
    """Handed over as image/init does (``3>&2 2>>FILE``): the interpreter's report in FILE, what PID 1
    writes to sys.stderr on the console, and the console's fd 3 not inherited by a child."""
    code = ("import os, sys\n"
            "from supervisor import importtime\n"
            "importtime.divert()\n"
            "import decimal\n"
            "print('on the console', file=sys.stderr)\n"
            "child = os.system('test -e /proc/self/fd/3')\n"
            "print('fd 3 in a child' if child == 0 else 'no fd 3 in a child', file=sys.stderr)\n")
    report, console = tmp_path / "report", tmp_path / "console"
    script = 'exec "$0" -X importtime -c "$1" 3>&2 2>>"$2"'
    with open(console, "w") as con:
        subprocess.run(["sh", "-c", script, sys.executable, code, str(report)], stderr=con, check=True,
                       cwd=REPO)
    imports = _importtime.parse(report.read_text().splitlines())
    assert "decimal" in [i.module for i in imports]
    assert "on the console" not in report.read_text()
    assert console.read_text().splitlines() == ["on the console", "no fd 3 in a child"]


def test_a_report_is_read_with_depth_and_times() -> None:
    lines = [
        (1.0, "import time: self [us] | cumulative | imported package"),
        (1.1, "import time:       205 |        205 |     _io"),
        (1.2, "import time:       430 |       1086 |   _frozen_importlib_external"),
        (1.5, "import time:      1200 |       2286 | supervisor.app"),
        (1.6, "corral 0.1.0 starting"),
        (9.0, "import time:       100 |        100 | aiohttp\r"),
    ]
    imports = _importtime.parse(lines)
    assert [(i.module, i.depth, i.self_us, i.cumulative_us, i.at) for i in imports] == [
        ("_io", 2, 205, 205, 1.1), ("_frozen_importlib_external", 1, 430, 1086, 1.2),
        ("supervisor.app", 0, 1200, 2286, 1.5), ("aiohttp", 0, 100, 100, 9.0)]
    text = "\n".join(_importtime.summary(imports, until=5.0))
    assert "4 modules" in text
    assert "before 5.0 s: 3 modules (_frozen_importlib_external 1, _io 1, supervisor 1)" in text
    assert "after 5.0 s: 1 modules (aiohttp 1)" in text
    assert text.index("supervisor.app") < text.index("  0.1 ms  aiohttp")  # by cumulative time
    assert _importtime.parse(["import time:       7 |         7 | json"])[0].at is None
    # two threads importing at once: own times can come out negative; still read
    assert _importtime.parse(["import time:  -2323469 |    4440018 |               aiohttp.base_protocol"]
                             )[0].self_us == -2323469
