"""The image archives still being loaded into the system dockerd at boot, and which units wait for them.

The `images` boot phase starts the loads and the units start beside them (supervisor/boot/images.py): a
unit whose image is in an archive not loaded yet is neither created nor started (no failed start, no
restart backoff counted); it waits, its reason "waiting for its image to be preloaded (FILE)" in `corral
units`, and is reconciled the moment that archive's load ends (``PreloadDone`` marks the units
reconciler dirty). A failed load ends the wait too: the unit then fails as it would have ("No such
image", named). Which images an archive holds is known from its stamp or its ``manifest.json``
(units/images.py ``archive_images``); for an archive of unknown contents, every unit whose image dockerd
does not have yet waits for it. ``unit_waits`` is the pure decision; ``Preloads`` holds the state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import ClassVar

from supervisor.events import Event
from units.model import Unit


@dataclass(frozen=True, kw_only=True)
class PreloadDone(Event):
    """The load of ``file`` into ``daemon``'s dockerd ended (``loaded``: it worked, or was not needed)."""

    kind: ClassVar[str] = "docker.preload"
    daemon: str
    file: str
    loaded: bool


def normal_ref(ref: str) -> str:
    """An image reference as ``docker save`` names it: no ``docker.io/`` or ``library/``, ``:latest``
    when no tag or digest is given."""
    for prefix in ("docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
    if ref.startswith("library/") and ref.count("/") == 1:
        ref = ref[len("library/"):]
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def unit_waits(desired: Mapping[str, Unit], pending: Mapping[str, tuple[str, ...] | None],
               known: Container[str]) -> dict[str, str]:
    """Unit name -> the archive file name(s) it waits for: a system unit whose image is in a pending
    archive, or, while archives of unknown contents (None) are pending, whose image ``known`` (the image
    references dockerd has) does not hold. Pure."""
    holds: dict[str, str] = {}
    unknown: list[str] = []
    for path, images in sorted(pending.items()):
        name = PurePath(path).name
        if images is None:
            unknown.append(name)
            continue
        for image in images:
            holds.setdefault(normal_ref(image), name)
    waits: dict[str, str] = {}
    for name, unit in desired.items():
        if unit.scope != "system":
            continue
        file = holds.get(normal_ref(unit.image))
        if file is None and unknown and unit.image not in known:
            file = ", ".join(unknown)
        if file is not None:
            waits[name] = file
    return waits


class Preloads:
    """The archives being loaded (path -> the images each holds, None: not known until loaded)."""

    def __init__(self, publish: Callable[[Event], None], daemon: str = "system") -> None:
        self.publish = publish
        self.daemon = daemon
        self.pending: dict[str, tuple[str, ...] | None] = {}
        self.idle = asyncio.Event()  # no pass under way (set when one ends)
        self.idle.set()

    def expect(self, archives: Mapping[str, tuple[str, ...] | None]) -> None:
        self.pending.update(archives)
        if self.pending:
            self.idle.clear()

    def finished(self, path: str, loaded: bool) -> None:
        """The load of ``path`` ended (or it was not needed): the units waiting for it are reconciled."""
        if path not in self.pending:
            return
        del self.pending[path]
        self.publish(PreloadDone(daemon=self.daemon, file=path, loaded=loaded))

    def finish_all(self) -> None:
        """The pass ended (or failed before it loaded these): nothing is pending any more, and ``idle``
        is set (not before: the pass's result and stamps come after its last load)."""
        for path in list(self.pending):
            self.finished(path, False)
        self.idle.set()

    def waits(self, desired: Mapping[str, Unit], known: Container[str]) -> dict[str, str]:
        return unit_waits(desired, self.pending, known)

    async def wait_idle(self) -> None:
        await self.idle.wait()
