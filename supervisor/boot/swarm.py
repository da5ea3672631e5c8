"""Boot wiring of the swarm reconciler (handlers/swarm/): ``corral.swarm`` kept true in the user dockerd.

Started in the ``units`` phase, beside the user dockerd's image preload, and never waited for: a swarm
that cannot be joined is a status and a retry, not a slower boot."""

from __future__ import annotations

from collections.abc import Callable

from handlers.swarm.reconciler import SwarmHandler
from supervisor.boot.context import BootContext, handler_backoff

MARKER = "swarm-managed"  # in the state directory: corral.swarm put this node in its swarm

def start_swarm(ctx: BootContext, user_up: Callable[[], bool]) -> SwarmHandler:
    handler = SwarmHandler(ctx.bus, ctx.paths.under("/run/docker.sock"), ctx.domains.swarm, user_up,
                           handler_backoff(ctx.setting("handlers", {}) or {}),
                           ctx.paths.state_dir / MARKER)

    async def stop() -> None:
        handler.close()

    ctx.stops.add("swarm", stop)
    ctx.add_handler(handler)
    return handler
