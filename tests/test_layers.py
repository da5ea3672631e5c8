"""The layers hold (`make lint` runs lint-imports): a copy of the tree passes, and the same copy with one
import that goes up a layer, or that closes a cycle, fails naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("supervisor", "handlers", "netconf", "units", "storage", "swarm")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(tree))  # the copy, not the checkout, is what grimp finds
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copyfile(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(module: Path, line: str) -> None:
    text = module.read_text()
    at = text.index("from __future__ import annotations\n") + len("from __future__ import annotations\n")
    module.write_text(text[:at] + "\n" + line + "\n" + text[at:])


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    done = lint(tree)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_a_library_importing_a_reconciler_breaks_the_layers(tree: Path) -> None:
    _add_import(tree / "units" / "model.py", "import handlers.runner  # noqa: F401")
    done = lint(tree)
    assert done.returncode == 1
    assert "units is not allowed to import handlers" in done.stdout
    assert "units.model -> handlers.runner" in done.stdout


def test_one_domain_library_importing_another_breaks_the_layers(tree: Path) -> None:
    _add_import(tree / "netconf" / "plan.py", "import units.graph  # noqa: F401")
    done = lint(tree)
    assert done.returncode == 1 and "netconf is not allowed to import units" in done.stdout


def test_a_cycle_breaks_the_acyclic_contract(tree: Path) -> None:
    _add_import(tree / "netconf" / "model.py", "import netconf.parse  # noqa: F401")
    done = lint(tree)
    assert done.returncode == 1
    assert "No cycles are allowed in netconf" in done.stdout
