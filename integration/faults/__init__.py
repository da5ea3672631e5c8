"""Fault runs (issue 14): real PID 1 and real dockerd under kills, disk full, hostile input and load.

Each fault test is bounded for CI (``make test``: a few minutes in all); ``make soak`` runs the same tests
longer (``CORRAL_SOAK=1``). Figures (attempted / survived / lost, recovery medians) go to
docs/reliability.md.
"""

from __future__ import annotations

import os

SOAK = os.environ.get("CORRAL_SOAK") == "1"


def scale(ci: int, soak: int) -> int:
    """How many rounds a fault test runs: ``ci`` in ``make test``, ``soak`` under ``make soak``."""
    return soak if SOAK else ci
