"""The house's size rules (issue 12), held by a test: no module of corral over 600 lines, no class over
25 methods of its own. A module or class that grows past them wants splitting by what changes together
(docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("supervisor", "handlers", "netconf", "units", "storage", "swarm", "osdisk", "image")
MAX_LINES = 600
MAX_METHODS = 25


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py")
                  if "__pycache__" not in p.parts)


def test_no_module_over_600_lines() -> None:
    lines = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in modules()}
    long = {name: n for name, n in lines.items() if n > MAX_LINES}
    assert not long, long


def test_no_class_over_25_methods() -> None:
    big = {}
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                count = sum(isinstance(x, ast.FunctionDef | ast.AsyncFunctionDef) for x in node.body)
                if count > MAX_METHODS:
                    big[f"{path.relative_to(REPO)}:{node.name}"] = count
    assert not big, big
