"""The `corral` command's entry point: a Ctrl-C while the CLI is still loading its modules (seconds in a
TCG guest under load) ends it like a Ctrl-C during its work: exit 130, no traceback. Before, the
KeyboardInterrupt escaped the import, Python killed itself with SIGINT, and over ssh that read as 255."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_installed_command_is_the_guarded_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["corral"] == "supervisor.cli.entry:main"


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback(tmp_path: Path) -> None:
    # A stand-in for a slow import: argparse is the first module the CLI loads that the interpreter's
    # own start does not; this one says it is loading, then waits for the signal.
    (tmp_path / "argparse.py").write_text("import sys, time\nprint('loading', flush=True)\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    with subprocess.Popen([sys.executable, "-m", "supervisor.cli", "status"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "loading\n"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "Traceback" not in err, err
