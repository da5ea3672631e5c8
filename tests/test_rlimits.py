"""PID 1 raises its own RLIMIT_NOFILE soft limit to the hard limit at start (issue 14: at init's 1024,
1,100 idle control connections stopped every new client and made a dockerd restart fail)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, resource
from supervisor.rlimits import raise_nofile
change = raise_nofile()
print(json.dumps({"change": [change.before, change.after, change.hard, change.error],
                  "now": list(resource.getrlimit(resource.RLIMIT_NOFILE))}))
"""


def run_with_nofile(soft: int, hard: int) -> dict[str, list[object]]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True,
                         preexec_fn=lower, timeout=60)
    return dict(json.loads(out.stdout))


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    assert run_with_nofile(1024, 4096) == {"change": [1024, 4096, 4096, None], "now": [4096, 4096]}


def test_nothing_to_do_when_soft_is_hard() -> None:
    assert run_with_nofile(2048, 2048) == {"change": [2048, 2048, 2048, None], "now": [2048, 2048]}
