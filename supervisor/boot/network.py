"""Boot wiring of the network: the netlink source, the DHCP clients and the network reconciler
(handlers/network.py); the `network` boot phase."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import structlog

from handlers.authorized_keys import CONSOLE_DIR
from handlers.network import FIRST_ROUND_TIMEOUT, HOOK_TIMEOUT, LEASE_DIR, NetworkHandler
from handlers.runner import HandlerRunner
from netconf.dhcp import DhcpManager
from netconf.dhcp6 import Dhcp6Manager
from netconf.model import Argv
from netconf.netlink import Netlink
from supervisor.boot.context import BootContext
from supervisor.sources.netlink import NetlinkSource

log = structlog.get_logger("handlers.network")


@dataclass
class NetworkService:
    source: NetlinkSource
    netlink: Netlink
    dhcp: DhcpManager
    handler: NetworkHandler
    runner: HandlerRunner

    async def stop(self) -> None:
        self.handler.close()
        await self.source.stop()
        await self.dhcp.close()
        self.netlink.close()

    def status(self) -> dict[str, Any]:
        return {"source": self.source.status(), "handler": self.runner.status()}


async def start_network(ctx: BootContext) -> NetworkService:
    """The `network` boot phase: open the netlink source (before the first dump, so nothing slips in
    between), start the network handler and wait (a little) for its first reconcile, so that static
    config is in place before the services start. DHCP is not waited for."""
    paths = ctx.paths
    source = NetlinkSource(ctx.bus)
    source.start()
    netlink = Netlink()
    dhcp6 = Dhcp6Manager(ctx.bus, ctx.processes, run_dir=paths.run_dir / "dhcp6")
    dhcp = DhcpManager(ctx.bus, lease_dir=paths.state_dir / LEASE_DIR, hostname=socket.gethostname,
                       dhcp6=dhcp6)
    await dhcp.load()

    async def run_hook(argv: Argv, link: str | None) -> int:
        try:
            status, out, err = await ctx.processes.run(list(argv), name="net-hook", timeout=HOOK_TIMEOUT)
        except FileNotFoundError:
            log.warning("network hook not found", argv=list(argv), link=link)
            return 127
        except TimeoutError:
            log.warning("network hook timed out", argv=list(argv), link=link, timeout=HOOK_TIMEOUT)
            return 124
        level = log.info if status.returncode == 0 else log.warning
        level("network hook ran", argv=list(argv), link=link, status=status.describe(),
              stdout=out.decode(errors="replace")[-2000:], stderr=err.decode(errors="replace")[-2000:])
        return status.returncode

    handler = NetworkHandler(
        bus=ctx.bus,
        netlink=netlink,
        dhcp=dhcp,
        network=ctx.domains.network,
        state_dir=paths.state_dir,
        resolv_conf=paths.under("/etc/resolv.conf"),
        resolv_copies=(paths.under(CONSOLE_DIR) / "resolv.conf",),
        run_hook=run_hook,
    )
    await handler.load()
    runner = ctx.add_handler(handler, queue_size=4096)
    service = NetworkService(source, netlink, dhcp, handler, runner)
    ctx.stops.add("network", service.stop)
    try:
        await asyncio.wait_for(handler.first_round.wait(), FIRST_ROUND_TIMEOUT)
    except TimeoutError:
        log.warning("network not configured yet; carrying on", waited=FIRST_ROUND_TIMEOUT)
    return service
