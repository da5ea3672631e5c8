"""The config schema's own check against JSON Schema's metaschema, after the system dockerd's spawn.

Checking the schema costs about 0.4 s here and seconds under TCG. PID 1's config store is made without
it (``config_store(..., check_schema=False)``), so that it is not on the way to the spawn; every document
is validated as before. The check runs in a thread once dockerd is spawned. It fails only in a broken
image (the tests check the shipped schema): said as critical, and the boot is ``degraded: schema``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from supervisor.config.validate import check_schema_document

log = structlog.get_logger("supervisor")

SOURCE = "schema"  # the degraded entry


async def check_config_schema(schema: Callable[[], dict[str, Any]],
                              degrade: Callable[[str, str], None]) -> None:
    """Check ``schema()`` (the store's copy) off the loop; a failure degrades the boot."""
    try:
        await asyncio.to_thread(lambda: check_schema_document(schema()))
    except Exception as exc:
        log.critical("the config schema is not a valid JSON Schema", error=str(exc)[:500])
        degrade(SOURCE, f"the config schema is not a valid JSON Schema: {exc}"[:500])
