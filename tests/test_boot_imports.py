"""What PID 1 imports before it spawns the system dockerd (issue 17, item 3: boot ≤ 0.9x the shell-script
/init). Everything up to the spawn is on the boot's critical path: under TCG an import costs ~7x what it
does here. These modules are first needed after the spawn and are imported then (by the phase that uses
them, or supervisor/prefetch.py's AFTER_SPAWN batch while dockerd starts); each check is a fresh
interpreter, as PID 1 is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

AFTER_SPAWN = (
    "aiohttp", "aiodocker",  # the system dockerd's API client (prefetch.AFTER_SPAWN)
    "units.runtime", "supervisor.sources.docker", "handlers.units.reconciler",  # system-docker .. units
    "handlers.network", "netconf.ops", "netconf.apply",  # the network phase
    "supervisor.control.server", "supervisor.commands.core",  # the control phase
    "supervisor.sources.timer",  # the handlers phase
)

# PID 1 up to the spawn, as supervisor/__main__.py and Supervisor.boot run it: the entry module, the
# composition root, the journal, a Supervisor (its config store) and every module the phases before
# system-docker-start import (the devices, state and storage wiring, dockerd's own module and its bridge).
BEFORE_SPAWN = """
import json, sys, tempfile
from pathlib import Path
import jsonschema
import supervisor.__main__
from supervisor import journal, lean
from supervisor.app import Options, Supervisor
from supervisor.paths import Paths
checked = []
jsonschema.Draft202012Validator.check_schema = classmethod(lambda cls, schema: checked.append(1))
lean.setup()
root = Path(tempfile.mkdtemp())
sup = Supervisor(options=Options(paths=Paths.sandbox(root), mount_root=root / "root", sandbox=True,
                                 cmdline=""), journal=journal.setup(console=sys.stderr))
import supervisor.boot.storage, supervisor.boot.udevd, storage.state, units.system_dockerd
import supervisor.prefetch, importlib
for name in supervisor.prefetch.EARLY:
    importlib.import_module(name)
print(json.dumps({"modules": sorted(sys.modules), "schema_checks": len(checked)}))
"""


@pytest.fixture(scope="module")
def before_spawn() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", BEFORE_SPAWN], capture_output=True, text=True, timeout=120,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_nothing_first_needed_after_the_spawn_is_imported_before_it(before_spawn: dict[str, object]) -> None:
    modules = set(before_spawn["modules"])  # type: ignore[call-overload]
    assert sorted(modules & set(AFTER_SPAWN)) == []
    assert {"supervisor.app", "units.system_dockerd", "pyroute2.iproute.linux"} <= modules  # it did run


def test_the_config_schema_is_not_checked_before_the_spawn(before_spawn: dict[str, object]) -> None:
    """The store validates every document as before; only the schema's own check against the metaschema
    (0.4 s here) waits until dockerd is spawned (Supervisor._check_schema)."""
    assert before_spawn["schema_checks"] == 0
