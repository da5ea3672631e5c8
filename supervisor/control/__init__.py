"""The control socket: a root-only unix socket speaking newline-delimited JSON (the wire format is
``protocol``'s, the commands ``catalogue``'s), served by ``server.ControlServer`` inside PID 1 and
spoken to by ``client`` (and the `corral` CLI).

The names below load when first used (PEP 562): the CLI's client needs ``protocol``, not the catalogue's
argument checks."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.control.catalogue import COMMANDS
    from supervisor.control.protocol import ControlError, ControlUnavailable

_HOMES = {
    "COMMANDS": "supervisor.control.catalogue",
    "ControlError": "supervisor.control.protocol",
    "ControlUnavailable": "supervisor.control.protocol",
}

__all__ = ["COMMANDS", "ControlError", "ControlUnavailable"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
