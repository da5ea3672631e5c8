"""The boot phases that read the config again for the datasources that could not give anything at the
config phase (docs/supervisor.md, docs/config.md#datasources):

- ``datasources`` (after ``devices``): a disk datasource (nocloud, configdrive) whose labelled device was
  not there yet, its driver coming with the devices phase, is waited for up to
  ``corral.cloud_init.wait`` seconds, on the config worker (storage/media.py);
- ``network-datasources`` (after ``network``): the network datasources (ec2, url:) fetch now.

Nothing listed, or everything found at the config phase: nothing to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from storage.media import LabelledMedia
from supervisor.config.sources import LayerSources

DATASOURCE_WAIT = 5.0
"""Seconds boot waits for a disk datasource's labelled device (corral.cloud_init.wait)."""

Load = Callable[[], Awaitable[None]]


async def disk_datasources(media: LabelledMedia, setting: Callable[[str, Any], Any], load: Load) -> None:
    seconds = float((setting("cloud_init", {}) or {}).get("wait", DATASOURCE_WAIT))
    if media.start_waiting(seconds):
        await load()


async def network_datasources(sources: LayerSources, load: Load) -> None:
    sources.network_ready = True
    if sources.pending:
        await load()
