"""The control socket: a root-only unix socket speaking newline-delimited JSON (the wire format is
``protocol``'s, the commands ``catalogue``'s), served by ``server.ControlServer`` inside PID 1 and
spoken to by ``client`` (and the `corral` CLI)."""

from supervisor.control.catalogue import COMMANDS
from supervisor.control.protocol import ControlError, ControlUnavailable

__all__ = ["COMMANDS", "ControlError", "ControlUnavailable"]
