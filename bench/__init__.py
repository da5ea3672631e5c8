"""Benchmarks: each prints medians and ratios against a peer run side by side (see docs/benchmarks.md)."""

import os as _os

# The benches measure PID 1 as it ships, not under the tests' loop guard (supervisor/loopguard.py).
_os.environ.setdefault("CORRAL_LOOP_GUARD", "0")
