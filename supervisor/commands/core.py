"""The control socket's commands, wired to the supervisor's parts. Thin: each handler calls one part.

The commands (names, arguments, result shapes) are catalogued in supervisor.control.catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from supervisor.config.store import verdict_reply
from supervisor.config.worker import WorkerBusy
from supervisor.control.catalogue import kind_matches
from supervisor.control.limits import Limits
from supervisor.control.protocol import NOT_SET, ControlError
from supervisor.control.server import ControlServer
from supervisor.events import TimerFired
from supervisor.journal.redact import redact_text

if TYPE_CHECKING:
    from supervisor.commands.host import Host

P = ParamSpec("P")
T = TypeVar("T")


def build_control_server(sup: Host) -> ControlServer:
    server = ControlServer(sup.paths.control_socket, limits=Limits.from_environment())
    Commands(sup).register(server)
    from supervisor.commands.units import register as register_service

    register_service(server, sup)
    from supervisor.commands.net import register as register_net

    register_net(server, sup)
    server.register("storage.status", _storage_status(sup))
    from supervisor.commands.storage import register as register_storage

    register_storage(server, sup)
    from supervisor.commands.swarm import register as register_swarm

    register_swarm(server, sup)
    from supervisor.commands.osdisk import register as register_os

    register_os(server, sup)
    return server


def _storage_status(sup: Host) -> Any:
    async def status(args: dict[str, Any]) -> Any:
        result = sup.storage.status()
        # units requiring each mount (io.corral.requires-mount): "dependents" per mount and rule
        from units.mounts import annotate_dependents

        annotate_dependents(result, sup.units.units if sup.units is not None else {})
        return result

    return status


class Commands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup
        self._clients = 0
        self._server: ControlServer | None = None

    def register(self, server: ControlServer) -> None:
        self._server = server
        server.register("status", self.status)
        server.register("config.get", self.config_get)
        server.register("config.set", self.config_set)
        server.register("config.unset", self.config_unset)
        server.register("config.export", self.config_export)
        server.register("config.merge", self.config_merge)
        server.register("config.validate", self.config_validate)
        server.register("config.schema", self.config_schema)
        server.register("reload", self.reload)
        server.register("poweroff", self.poweroff)
        server.register("reboot", self.reboot)
        server.register("debug.fail", self.debug_fail)
        server.register("debug.spawn", self.debug_spawn)
        server.register("debug.publish", self.debug_publish)
        server.register("debug.modules", self.debug_modules)
        server.register_stream("logs", self.logs)
        server.register_stream("events", self.events)

    async def status(self, args: dict[str, Any]) -> Any:
        result = dict(self.sup.status())
        if self._server is not None:
            result["control"] = self._server.stats()
        return result

    # ---- config ----------------------------------------------------------------------------
    async def config_get(self, args: dict[str, Any]) -> Any:
        key = args["key"]
        try:
            return self.sup.config.get(key, include_secrets=bool(args.get("secrets")))
        except ValueError as exc:
            raise ControlError(f"bad key {key!r}: {exc}") from None
        except KeyError:
            pass
        unknown = self.sup.config.missing(key)
        if unknown is not None:
            raise ControlError(f"no such key: {key} ({unknown})")
        raise ControlError(
            f"{key}: not set (a known key; no layer of the config in force gives it a value)", NOT_SET
        )

    # A change and its reload are one burst of the config worker: one memory release, after both.
    async def config_set(self, args: dict[str, Any]) -> Any:
        async with self.sup.config_worker.burst():
            errors = await self._work(self.sup.config.set, args["key"], args["value"])
            return await self._applied(errors, self.sup.config.last_edit_warnings)

    async def config_unset(self, args: dict[str, Any]) -> Any:
        async with self.sup.config_worker.burst():
            errors = await self._work(self.sup.config.unset, args["key"])
            return await self._applied(errors)

    async def config_merge(self, args: dict[str, Any]) -> Any:
        async with self.sup.config_worker.burst():
            errors = await self._work(self.sup.config.merge, args["yaml"], args.get("filename"))
            return await self._applied(errors, self.sup.config.last_edit_warnings)

    async def _work(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on the config worker (never on the loop); a full queue is the client's error."""
        try:
            return await self.sup.config_worker.run_input(fn, *args, **kwargs)
        except WorkerBusy as exc:
            raise ControlError(str(exc)) from None

    async def _applied(self, errors: list[Any], edit_warnings: Sequence[Any] = ()) -> Any:
        """The reply of a change: its generation and what changed; ``warnings`` when the change had any
        (a RancherOS boolean dropped) or the reload found new ones (a key corral does not implement)."""
        if errors:
            raise ControlError("; ".join(str(e) for e in errors))
        edit = [str(w) for w in edit_warnings]  # read before the reload: this change's own
        result = await self.sup.reload()
        if not result.get("applied"):
            raise ControlError("; ".join(result.get("errors", [])))
        reply: dict[str, Any] = {"generation": result["generation"], "changed": result["changed"]}
        warnings = list(dict.fromkeys([*edit, *result.get("new_warnings", [])]))
        if warnings:
            reply["warnings"] = [redact_text(w) for w in warnings]
        return reply

    async def config_export(self, args: dict[str, Any]) -> Any:
        # it reads the user's files (cloud-config.yml, private.yml): off the loop
        return await self._work(self.sup.config.export, include_secrets=bool(args.get("secrets")),
                                user_only=True)

    async def config_validate(self, args: dict[str, Any]) -> Any:
        verdict = await self._work(
            self.sup.config.verdict, args["yaml"], args.get("filename") or "<stdin>"
        )
        return verdict_reply(verdict)

    async def config_schema(self, args: dict[str, Any]) -> Any:
        return self.sup.config.schema()

    async def reload(self, args: dict[str, Any]) -> Any:
        result = await self.sup.reload()
        if not result.get("applied"):
            kept = "; ".join(result.get("salvaged") or [])
            errors = "; ".join(result["errors"])
            raise ControlError(f"config has errors, the rest is applied ({kept}): {errors}")
        return {"generation": result["generation"], "changed": result["changed"]}

    # ---- power -----------------------------------------------------------------------------
    async def poweroff(self, args: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_soon(self.sup.request, "poweroff")
        return None

    async def reboot(self, args: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_soon(self.sup.request, "reboot")
        return None

    # ---- streams -----------------------------------------------------------------------------
    async def logs(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        """Stored records (read a batch at a time in a worker thread), then with follow the live ones."""
        journal = self.sup.journal
        filters = {"since": args["since"], "unit": args["unit"], "level": args["level"], "grep": args["grep"]}
        if not args["follow"]:
            records = journal.stream(limit=args["limit"], until=args["until"], boot=args["boot"],
                                     reverse=args["reverse"], **filters)
            try:
                async with contextlib.aclosing(records):  # closes the files when the client goes away
                    async for record in records:
                        yield record
            except LookupError as exc:  # -b -N: the journal holds no such boot
                raise ControlError(str(exc)) from None
            return
        follower = journal.follow(backlog=args["limit"] or 0, this_boot=args["boot"] is not None, **filters)
        async with follower:
            async for record in follower:
                yield record

    async def events(self, args: dict[str, Any]) -> AsyncIterator[Any]:
        kinds = args.get("kinds")
        self._clients += 1
        sub = self.sup.bus.subscribe(f"control:events:{self._clients}", maxsize=4096)
        try:
            while True:
                event = await sub.get()
                if kind_matches(kinds, event.kind):
                    yield event.to_dict()
        finally:
            sub.close()

    # ---- debugging (only with corral.debug: true) --------------------------------------------
    def _require_debug(self) -> None:
        if not self.sup.setting("debug", False):
            raise ControlError("debug commands need corral.debug: true")

    async def debug_fail(self, args: dict[str, Any]) -> Any:
        """Make a handler's next N reconciles raise, to prove crash isolation."""
        self._require_debug()
        runner = self.sup.runners.by_name.get(str(args.get("handler")))
        if runner is None:
            raise ControlError(f"no such handler: {args.get('handler')}")
        runner.inject_failures(int(args.get("count", 1)))
        return runner.status()

    async def debug_publish(self, args: dict[str, Any]) -> Any:
        """Publish COUNT timer events on the bus (yielding to the loop every 100), for load tests."""
        self._require_debug()
        count = int(args["count"])
        for i in range(count):
            self.sup.bus.publish(TimerFired(name="debug"))
            if i % 100 == 99:
                await asyncio.sleep(0)
        return {"published": count}

    async def debug_modules(self, args: dict[str, Any]) -> Any:
        """The names in sys.modules that are modules (not the ones marked absent: supervisor.lean), and how
        many objects the collector does not walk (frozen once PID 1 is ready: ConfigWorker.freeze)."""
        self._require_debug()
        return {"modules": sorted(name for name, module in list(sys.modules.items()) if module is not None),
                "frozen": gc.get_freeze_count()}

    async def debug_spawn(self, args: dict[str, Any]) -> Any:
        """Spawn the given argv lists at once through the process module and report each exit."""
        self._require_debug()
        commands = args.get("commands") or []
        children = [self.sup.processes.spawn([str(a) for a in argv], name="debug") for argv in commands]
        statuses = await asyncio.gather(*(c.wait() for c in children))
        return [{"pid": c.pid, "exitcode": s.exitcode, "signal": s.signal} for c, s in zip(children, statuses,
                                                                                         strict=True)]
