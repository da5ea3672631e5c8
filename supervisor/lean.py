"""What PID 1 never imports, set up before anything else is (issue 17: ≤ 40 MB with every handler live).

Three libraries import far more than PID 1 uses, and only PID 1 says no (``setup``, first thing in
``python3 -m supervisor``; the CLI and the tests import them as they are):

- **pyroute2**'s ``__init__`` imports every part of the library (IPDB, NDB with sqlite3, IPVS,
  nftables, wireguard, plan9 ...: +9 MiB in PID 1). corral uses ``pyroute2.iproute.linux``'s
  ``IPRoute``/``AsyncIPRoute``, the ACPI event socket and the DHCP client, imported by their own module
  names (``NETLINK_MODULES``). ``bare_package`` puts an empty package object for ``pyroute2`` in
  ``sys.modules``, so those submodules import without the package's ``__init__``, and imports the one
  thing the ``__init__`` did for them: its logger (``pyroute2.config.log``, a NullHandler). From then
  on ``from pyroute2 import IPRoute`` fails in PID 1: corral's code names the submodule
  (tests/test_lean.py checks both).
- **structlog** imports ``rich`` (and with it pygments: +4.9 MiB), ``colorama`` and
  ``better_exceptions`` when they are installed, for its development console renderer's colours and
  tracebacks. PID 1 renders its own tracebacks (the journal's ``traceback`` is a string), and the image
  has none of them: ``rich`` is in the development venv only (import-linter needs it), so the sandbox's
  PID 1 carried 4.9 MiB the guest's does not. ``HIDDEN`` are marked absent (``sys.modules[name] =
  None``: an import of them raises ImportError, as where they are not installed).
- **unittest**: pyroute2's ``iprsocket`` (which ``IPRoute`` is built on) imports ``unittest.mock`` at its
  top for its netlink mock (``config.mock_netlink``) and makes a ``mock.Mock()`` in a class body, and
  with it the whole test framework: ``unittest``'s ``__init__`` imports its cases, loader, runner and
  main (13 modules, +1.5 MiB; ``unittest.mock`` itself, which needs only ``unittest.util``, +0.4).
  ``unittest`` is a bare package in PID 1: the mock imports and works, the framework is not loaded.
  Nothing else in PID 1 imports unittest (there ``unittest.TestCase`` fails, as ``pyroute2.IPRoute``
  does). A lazy ``unittest.mock`` (``importlib.util.LazyLoader``) was tried: the class body's
  ``Mock()`` runs it at once.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

HIDDEN = ("rich", "colorama", "better_exceptions")
"""Optional imports of structlog that PID 1 never uses."""

BARE_PACKAGES = {"pyroute2": ("pyroute2.config.log",), "unittest": ()}
"""Packages whose ``__init__`` PID 1 does not run, each with the submodules that stand in for what the
``__init__`` set up."""

NETLINK_MODULES = ("pyroute2.iproute.linux",)
"""What PID 1 imports of pyroute2 at boot (its prefetch thread, supervisor/prefetch.py)."""


def bare_package(name: str, setup_modules: tuple[str, ...] = ()) -> bool:
    """Register ``name`` as a package whose submodules import without its ``__init__`` running; False
    when it is already imported (then it stays as it is) or not installed."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)  # __path__, __spec__, __file__; nothing executed
    sys.modules[name] = module
    for setup in setup_modules:
        importlib.import_module(setup)
    return True


def hide(names: tuple[str, ...] = HIDDEN) -> None:
    """Make ``import NAME`` raise ImportError for each of ``names`` not imported yet."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def setup() -> None:
    """PID 1's imports, narrowed: before any of corral's modules that import these libraries."""
    hide()
    for name, setup_modules in BARE_PACKAGES.items():
        bare_package(name, setup_modules)
