"""corral's PID 1: one asyncio loop for the life of the host."""

__version__ = "0.1.0"
