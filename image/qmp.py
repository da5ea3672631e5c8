"""QMP helpers for a running corral guest: hot-plug disks and NICs, press the power button, quit.

Built on ``qemu.qmp`` (QEMU's own asyncio QMP client). One :class:`Guest` wraps one connection:

    async with Guest.connect(qmp_socket) as g:
        await g.add_disk("data", Path("data.img"))     # blockdev-add file+raw, device_add virtio-blk-pci
        await g.remove_disk("data")                    # device_del, wait for DEVICE_DELETED, blockdev-del
        await g.add_nic("nic1", "52:54:00:c0:ff:10")   # netdev_add user, device_add virtio-net-pci
        await g.remove_nic("nic1")
        await g.powerdown()                            # ACPI power button (system_powerdown)

Unplugging is a request to the guest (ACPI eject): QEMU removes the device only when the guest's kernel
lets it go, and then says so with ``DEVICE_DELETED``; only after that can the backend be deleted.

``python -m image.qmp --qmp PATH add-disk|remove-disk|add-nic|remove-nic|powerdown|quit|status`` does
the same from a shell, next to ``corral-image run --qmp PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from qemu.qmp import ExecuteError, QMPClient
from qemu.qmp.message import Message

DEFAULT_TIMEOUT = 30.0


class QmpError(Exception):
    """A QMP request that failed or timed out, naming the command and the device."""


class Guest:
    """A QMP session with one QEMU process."""

    def __init__(self, client: QMPClient) -> None:
        self.client = client

    @classmethod
    @asynccontextmanager
    async def connect(cls, socket_path: Path | str, timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[Guest]:
        """Connect (retrying while QEMU has not made the socket yet), yield a :class:`Guest`, disconnect."""
        client = QMPClient(f"corral-qmp:{os.path.basename(os.fspath(socket_path))}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                await client.connect(os.fspath(socket_path))
                break
            except Exception as exc:  # ConnectError wraps OSError; retry until the deadline
                if loop.time() >= deadline:
                    raise QmpError(f"QMP socket {socket_path}: cannot connect within {timeout:g}s: {exc}") \
                        from exc
                await asyncio.sleep(0.1)
        try:
            yield cls(client)
        finally:
            await client.disconnect()

    async def execute(self, cmd: str, arguments: Mapping[str, object] | None = None) -> Any:
        try:
            return await self.client.execute(cmd, arguments)
        except ExecuteError as exc:
            raise QmpError(f"{cmd} {json.dumps(arguments or {})}: {exc}") from exc

    async def status(self) -> str:
        """QEMU's run state: ``running``, ``paused``, ``shutdown``..."""
        result = await self.execute("query-status")
        return str(result["status"])

    async def devices(self) -> list[str]:
        """The ids of the PCI devices on the root bus that have one (what was hot-plugged, mostly)."""
        buses = await self.execute("query-pci")
        return [d["qdev_id"] for bus in buses for d in bus["devices"] if d.get("qdev_id")]

    # ---- disks -------------------------------------------------------------------------------------
    async def add_disk(self, dev_id: str, image: Path, serial: str | None = None,
                       read_only: bool = False) -> None:
        """Plug the raw image file ``image`` (an absolute path: QEMU resolves it, not us) in as a virtio-blk
        disk with qdev id ``dev_id``."""
        await self.execute("blockdev-add", {"driver": "file", "node-name": f"{dev_id}-file",
                                            "filename": os.fspath(image),
                                            "read-only": read_only})
        try:
            await self.execute("blockdev-add", {"driver": "raw", "node-name": f"{dev_id}-raw",
                                                "file": f"{dev_id}-file", "read-only": read_only})
            device: dict[str, object] = {"driver": "virtio-blk-pci", "id": dev_id, "drive": f"{dev_id}-raw"}
            if serial is not None:
                device["serial"] = serial
            try:
                await self.execute("device_add", device)
            except QmpError:
                await self.execute("blockdev-del", {"node-name": f"{dev_id}-raw"})
                raise
        except QmpError:
            await self.execute("blockdev-del", {"node-name": f"{dev_id}-file"})
            raise

    async def remove_disk(self, dev_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Unplug disk ``dev_id`` (waits for the guest to release it), then delete its block nodes."""
        await self.unplug(dev_id, timeout)
        await self.execute("blockdev-del", {"node-name": f"{dev_id}-raw"})
        await self.execute("blockdev-del", {"node-name": f"{dev_id}-file"})

    # ---- NICs --------------------------------------------------------------------------------------
    async def add_nic(self, dev_id: str, mac: str, netdev: Mapping[str, object] | None = None) -> None:
        """Plug in a virtio-net NIC ``dev_id`` with ``mac`` on a new QEMU user network (its own DHCP
        server, 10.0.2.0/24); ``netdev`` overrides the backend's arguments."""
        backend = {"type": "user", "id": f"{dev_id}-net", **(netdev or {})}
        await self.execute("netdev_add", backend)
        try:
            await self.execute("device_add", {"driver": "virtio-net-pci", "id": dev_id,
                                              "netdev": backend["id"], "mac": mac})
        except QmpError:
            await self.execute("netdev_del", {"id": backend["id"]})
            raise

    async def remove_nic(self, dev_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Unplug NIC ``dev_id`` (waits for the guest), then delete its backend."""
        await self.unplug(dev_id, timeout)
        await self.execute("netdev_del", {"id": f"{dev_id}-net"})

    # ---- any device ---------------------------------------------------------------------------------
    async def unplug(self, dev_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """``device_del`` and wait for ``DEVICE_DELETED`` of ``dev_id`` (the guest ejected it)."""

        def ours(event: Message) -> bool:
            data = event.get("data")
            return isinstance(data, dict) and data.get("device") == dev_id

        with self.client.listener("DEVICE_DELETED", ours) as listener:
            await self.execute("device_del", {"id": dev_id})
            try:
                await asyncio.wait_for(listener.get(), timeout)
            except TimeoutError as exc:
                raise QmpError(f"device_del {dev_id}: the guest did not release it within {timeout:g}s "
                               "(no DEVICE_DELETED; is acpiphp working in the guest?)") from exc

    # ---- power ---------------------------------------------------------------------------------------
    async def powerdown(self) -> None:
        """Press the ACPI power button; the guest decides what to do (corral powers off)."""
        await self.execute("system_powerdown")

    async def quit(self) -> None:
        """End QEMU now (no shutdown in the guest)."""
        with contextlib.suppress(Exception):  # the connection may close before the reply arrives
            await self.execute("quit")


def run(socket_path: Path | str, action: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Synchronous one-shot: connect, call ``Guest.<action>(*args)``, disconnect (for tests and scripts)."""

    async def go() -> Any:
        async with Guest.connect(socket_path, timeout) as guest:
            return await getattr(guest, action)(*args)

    return asyncio.run(go())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m image.qmp", description=__doc__.split("\n\n")[0])
    p.add_argument("--qmp", type=Path, required=True, help="the QMP socket (corral-image run --qmp PATH)")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add-disk", help="hot-plug a raw image as a virtio-blk disk")
    a.add_argument("id")
    a.add_argument("image", type=Path)
    a.add_argument("--serial")
    sub.add_parser("remove-disk", help="unplug a disk added with add-disk").add_argument("id")
    n = sub.add_parser("add-nic", help="hot-plug a virtio-net NIC on a new user network")
    n.add_argument("id")
    n.add_argument("mac")
    sub.add_parser("remove-nic", help="unplug a NIC added with add-nic").add_argument("id")
    sub.add_parser("powerdown", help="press the ACPI power button")
    sub.add_parser("quit", help="end QEMU now")
    sub.add_parser("status", help="QEMU's run state")
    args = p.parse_args(argv)
    calls: dict[str, tuple[str, tuple[Any, ...]]] = {
        "add-disk": ("add_disk", (getattr(args, "id", None), Path(getattr(args, "image", ".")).resolve(),
                                  getattr(args, "serial", None))),
        "remove-disk": ("remove_disk", (getattr(args, "id", None),)),
        "add-nic": ("add_nic", (getattr(args, "id", None), getattr(args, "mac", None))),
        "remove-nic": ("remove_nic", (getattr(args, "id", None),)),
        "powerdown": ("powerdown", ()),
        "quit": ("quit", ()),
        "status": ("status", ()),
    }
    method, call_args = calls[args.action]
    try:
        result = run(args.qmp, method, *call_args)
    except QmpError as exc:
        print(f"python -m image.qmp: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
