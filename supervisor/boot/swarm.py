"""Boot wiring of the swarm reconciler (handlers/swarm/): ``corral.swarm`` kept true in the user dockerd.

Started in the ``units`` phase, beside the user dockerd's image preload, and never waited for: a swarm
that cannot be joined is a status and a retry, not a slower boot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from handlers.swarm.reconciler import SwarmHandler
from supervisor.backoff import Backoff
from supervisor.boot.context import BootContext, handler_backoff

MARKER = "swarm-managed"  # in the state directory: corral.swarm put this node in its swarm
# A join attempt is itself 10-20 s of dockerd's own retries, each an error line in its log ("failed to
# retrieve remote root CA certificate" every 2 s for a wrong token); the shared backoff's first retries
# (0, 0.1, 0.2 s ...) made that an unbroken stream for minutes. The swarm's retries start here instead.
JOIN_RETRY_FIRST = 5.0  # seconds


def swarm_backoff(settings: Mapping[str, Any]) -> Backoff:
    """The shared backoff (``corral.handlers``), its first delays raised to ``JOIN_RETRY_FIRST``."""
    shared = handler_backoff(settings)
    first = max(shared.initial, JOIN_RETRY_FIRST)
    return Backoff(first=first, initial=first, cap=max(shared.cap, first), factor=shared.factor,
                   reset_after=shared.reset_after)


def start_swarm(ctx: BootContext, user_up: Callable[[], bool]) -> SwarmHandler:
    handler = SwarmHandler(ctx.bus, ctx.paths.under("/run/docker.sock"), ctx.domains.swarm, user_up,
                           swarm_backoff(ctx.setting("handlers", {}) or {}),
                           ctx.paths.state_dir / MARKER)

    async def stop() -> None:
        handler.close()

    ctx.stops.add("swarm", stop)
    ctx.add_handler(handler)
    return handler
