"""The control socket: a root-only unix socket speaking newline-delimited JSON (see ``protocol``),
served by ``server.ControlServer`` inside PID 1 and spoken to by ``client`` (and the `corral` CLI)."""

from supervisor.control.protocol import COMMANDS, ControlError, ControlUnavailable

__all__ = ["COMMANDS", "ControlError", "ControlUnavailable"]
