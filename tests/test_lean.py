"""supervisor.lean: PID 1 imports pyroute2's parts it uses (not its __init__, which imports all of it) and
never structlog's optional rich; corral's own code names pyroute2's submodules, so it works both ways."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("supervisor", "handlers", "units", "netconf", "storage", "swarm")

ON_DEMAND = (
    # pyroute2's __init__ imports these; PID 1 never uses them
    "pyroute2.ndb.main", "pyroute2.ipdb", "pyroute2.ipset", "pyroute2.ipvs", "pyroute2.nftables",
    "pyroute2.plan9.client", "pyroute2.netlink.generic.wireguard", "pyroute2.conntrack",
    # (not sqlite3, which NDB imports: the tests' loop guard, blockbuster, imports it in the sandbox)
    # structlog's development console extras (rich and pygments: 4.9 MiB)
    "rich", "pygments",
    # unittest's framework, which its __init__ imports (pyroute2's iprsocket needs unittest.mock alone)
    "unittest.case", "unittest.loader", "unittest.runner", "unittest.main",
)  # fmt: skip
"""Modules PID 1's boot path must not import (integration/test_pid1_imports.py checks a live PID 1)."""

ON_VALIDATION = ("jsonschema", "referencing", "jsonschema_specifications")
"""Imported when a document is first validated (supervisor/config/validate.py), not by importing corral's
modules: a live PID 1 has them (it validates its defaults when it starts), its imports alone do not."""

# What `python3 -m supervisor` imports before its loop runs, then what its handlers import once live (the
# system dockerd's API, netlink, ACPI, DHCP, udev): run main() with _serve replaced by these imports.
BOOT = """
import json, sys
import supervisor.__main__ as entry

def serve(args, paths, mount_root, dog):
    import supervisor.app, supervisor.commands.core, supervisor.control.server
    import handlers.network, handlers.storage, handlers.udevd, units.runtime, supervisor.sources.docker
    import netconf.netlink, netconf.dhcp, netconf.apply, supervisor.sources.acpi, supervisor.prefetch
    from supervisor.app import _loopback_up
    for name in supervisor.prefetch.BOOT_MODULES:
        __import__(name)
    from pyroute2.iproute.linux import AsyncIPRoute
    from pyroute2.netlink.event.acpi_event import AsyncAcpiEventSocket
    from pyroute2.dhcp.client import AsyncDHCPClient
    print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
    return "halt"

entry._serve = serve
entry.main(["--sandbox", sys.argv[1]])
"""


def _boot_modules(tmp_path: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", BOOT, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_pid1s_boot_path_imports_only_what_it_uses(tmp_path: Path) -> None:
    modules = _boot_modules(tmp_path)
    assert {"pyroute2.iproute.linux", "pyroute2.dhcp.client", "aiodocker", "structlog"} <= modules  # it ran
    assert sorted(modules & set(ON_DEMAND)) == []
    assert sorted(m for m in modules if m.split(".")[0] in ON_VALIDATION) == []


def test_jsonschema_comes_with_the_first_validation() -> None:
    """A Validator made is not a Validator used: the CLI's commands that never validate do not load it."""
    code = (
        "import sys\n"
        "import supervisor.cli.main\n"
        "from supervisor.config.schema import Schema\n"
        "from supervisor.config.validate import Validator\n"
        "from supervisor.config.yamlload import Document\n"
        "validator = Validator(Schema())\n"
        "print('jsonschema' in sys.modules)\n"
        "print([e.key for e in validator.validate(Document('t.yml', {'hostnam': 'x'}))])\n"
        "print('jsonschema' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True, cwd=ROOT)
    assert out.stdout.splitlines() == ["False", "['hostnam']", "True"]


def test_without_setup_pyroute2_and_structlog_are_whole() -> None:
    """The CLI and other processes import them as they are: the narrowing is PID 1's alone."""
    code = ("import sys, structlog, pyroute2.iproute.linux, pyroute2\n"
            "print(hasattr(pyroute2, 'IPRoute'), 'pyroute2.ndb.main' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.split() == ["True", "True"]


def test_bare_package_keeps_submodules_and_pyroute2s_logger() -> None:
    code = (
        "import logging, sys\n"
        "from supervisor import lean\n"
        "lean.setup()\n"
        "from pyroute2.iproute.linux import IPRoute\n"
        "import pyroute2\n"
        "handlers = logging.getLogger('pyroute2').handlers\n"
        "print(hasattr(pyroute2, 'IPRoute'), [type(h).__name__ for h in handlers],\n"
        "      'pyroute2.ndb.main' in sys.modules, lean.bare_package('pyroute2'))\n"
        "try:\n"
        "    import rich\n"
        "except ImportError:\n"
        "    print('no rich')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.splitlines() == ["False ['NullHandler'] False False", "no rich"]


def _pyroute2_imports(path: Path) -> list[tuple[int, str]]:
    """``from pyroute2 import NAME`` where NAME is not a submodule, and bare ``import pyroute2``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module == "pyroute2" and node.level == 0:
            found += [(node.lineno, a.name) for a in node.names
                      if importlib.util.find_spec(f"pyroute2.{a.name}") is None]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name == "pyroute2"]
    return found


def test_corral_names_pyroute2s_submodules() -> None:
    """In PID 1 ``pyroute2`` is an empty package (supervisor.lean): ``from pyroute2 import IPRoute`` would
    fail there, so corral imports each class from its module."""
    bad = {str(path.relative_to(ROOT)): found for package in PACKAGES
           for path in sorted((ROOT / package).rglob("*.py")) if (found := _pyroute2_imports(path))}
    assert bad == {}


def test_the_check_sees_a_top_level_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from pyroute2 import IPRoute, netns\nimport pyroute2\n"
                      "from pyroute2.iproute import linux\n")
    assert _pyroute2_imports(sample) == [(1, "IPRoute"), (2, "pyroute2")]
