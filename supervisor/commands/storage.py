"""Control-socket commands of storage: ``storage.mount``, ``storage.unmount`` and ``dev``. Thin: each
calls the storage handler (handlers.storage), whose ``StorageRequestError`` becomes the command's error.

- ``storage.mount {name}`` -> ``{rule, path, state: "mounted", device, fstype}``
- ``storage.unmount {name}`` -> ``{rule, path, state: "unmounted", device}``
- ``dev {spec}`` -> ``{spec, devices: [BlockDevice.to_dict()]}``

(``storage.status`` is registered by supervisor.commands.core.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from handlers.storage import StorageHandler, StorageRequestError
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer

if TYPE_CHECKING:
    from supervisor.commands.host import Host


def register(server: ControlServer, sup: Host) -> None:
    StorageCommands(sup).register(server)


class StorageCommands:
    def __init__(self, sup: Host) -> None:
        self.sup = sup

    def register(self, server: ControlServer) -> None:
        server.register("storage.mount", self.mount)
        server.register("storage.unmount", self.unmount)
        server.register("dev", self.dev)

    def _handler(self) -> StorageHandler:
        handler = self.sup.storage.storage
        if handler is None:
            raise ControlError("storage is not managed (the storage boot phase did not run)")
        return handler

    async def mount(self, args: dict[str, Any]) -> Any:
        return await _checked(self._handler().request_mount, str(args["name"]))

    async def unmount(self, args: dict[str, Any]) -> Any:
        return await _checked(self._handler().request_unmount, str(args["name"]))

    async def dev(self, args: dict[str, Any]) -> Any:
        return await _checked(self._handler().resolve_device, str(args["spec"]))


async def _checked(request: Callable[[str], Awaitable[dict[str, object]]], value: str) -> Any:
    try:
        return await request(value)
    except StorageRequestError as exc:
        raise ControlError(str(exc)) from None
