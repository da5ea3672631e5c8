"""Control-socket commands of the network: ``net.status``, ``net.plan``, ``net.apply``, ``net.try``,
``net.confirm``. Thin: each calls the network handler (handlers.network).

Arguments and results:

- ``net.status {}`` -> ``{links: [...], dns, pending, try, rounds, last_change, source, handler, ...}``
- ``net.plan {yaml?}`` -> ``{changes: [str], format}``: what a reconcile would change now; with ``yaml``
  (a cloud-config document), what it would change with that document merged into the config in force.
- ``net.apply {yaml?}`` -> a round ``{applied: [str], failed: [str], ...}``; with ``yaml``, the document
  is merged into the persisted config first (like `corral config merge`).
- ``net.try {yaml, timeout=120}`` -> a round plus ``deadline``: applied now, not persisted, rolled back
  after ``timeout`` seconds unless confirmed.
- ``net.confirm {}`` -> ``{confirmed: true}``: the tried document is merged into the persisted config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from handlers.network import DEFAULT_TRY_TIMEOUT, NetworkError, candidate_config
from netconf.apply import describe
from supervisor.boot.network import NetworkService
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer

if TYPE_CHECKING:
    from supervisor.commands.host import Host


def register(server: ControlServer, sup: Host) -> None:
    NetCommands(sup).register(server)


class NetCommands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup

    def register(self, server: ControlServer) -> None:
        server.register("net.status", self.status)
        server.register("net.plan", self.plan)
        server.register("net.apply", self.apply)
        server.register("net.try", self.try_)
        server.register("net.confirm", self.confirm)

    def _service(self) -> NetworkService:
        service = self.sup.network
        if service is None:
            raise ControlError("the network is not managed (the network boot phase did not run)")
        return service

    async def status(self, args: dict[str, Any]) -> Any:
        service = self._service()
        try:
            result = await service.handler.status()
        except NetworkError as exc:
            raise ControlError(str(exc)) from None
        return {**result, **service.status()}

    async def plan(self, args: dict[str, Any]) -> Any:
        service = self._service()
        try:
            candidate = await self._candidate(args.get("yaml"), "<plan>")
            ops, _, desired = await service.handler.preview(candidate)
        except NetworkError as exc:
            raise ControlError(str(exc)) from None
        return {"changes": [describe(op) for op in ops], "format": desired.format}

    async def apply(self, args: dict[str, Any]) -> Any:
        service = self._service()
        text = args.get("yaml")
        since = service.handler.rounds
        if text:
            await self._persist(str(text))
        return await service.handler.apply_now("net apply", since=since)

    async def try_(self, args: dict[str, Any]) -> Any:
        service = self._service()
        text = args.get("yaml")
        if not text:
            raise ControlError("net.try needs a cloud-config document (yaml)")
        timeout = float(args.get("timeout") or DEFAULT_TRY_TIMEOUT)
        if timeout <= 0:
            raise ControlError("timeout must be more than 0")
        try:
            candidate = await self._candidate(str(text), "<try>")
            assert candidate is not None
            return await service.handler.try_config(candidate, str(text), timeout)
        except NetworkError as exc:
            raise ControlError(str(exc)) from None

    async def confirm(self, args: dict[str, Any]) -> Any:
        service = self._service()
        try:
            return await service.handler.confirm(self._persist)
        except NetworkError as exc:
            raise ControlError(str(exc)) from None

    async def _candidate(self, text: Any, source: str) -> Any:
        """The network config a candidate document gives; parsed and validated off the loop."""
        if not text:
            return None
        return await self.sup.config_worker.run(candidate_config, self.sup.config.current, str(text), source)

    async def _persist(self, text: str) -> None:
        errors = await self.sup.config_worker.run(self.sup.config.merge, text)
        if errors:
            raise ControlError("; ".join(str(e) for e in errors))
        result = await self.sup.reload()
        if not result.get("applied"):
            raise ControlError("; ".join(result.get("errors", [])))
