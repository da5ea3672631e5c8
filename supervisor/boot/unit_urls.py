"""The ``services_include`` URLs, fetched in the background (units/fetch.py): once the network is up at
boot, and a URL a config change adds when it comes; each once per boot. Boot never waits for them: the
units start from the copies of the last boot meanwhile, and a copy that changed reloads the config."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from supervisor.tasks import spawn_task
from units.fetch import fetch_unit_urls
from units.unitfiles import included_urls


class UnitUrls:
    def __init__(self, fetched_dir: Path, reload: Callable[[], Awaitable[object]],
                 network_ready: Callable[[], bool]) -> None:
        self.fetched_dir = fetched_dir
        self.reload = reload
        self.network_ready = network_ready
        self.seen: set[str] = set()  # the URLs fetched (or being fetched) this boot

    def start(self, includes: Any) -> asyncio.Task[Any] | None:
        """Fetch the URLs of ``includes`` (``corral.services_include``) not fetched yet this boot, in a
        task (None: nothing to fetch, or the network is not up yet)."""
        if not self.network_ready():
            return None
        urls = [u for u in included_urls(includes) if u not in self.seen]
        if not urls:
            return None
        self.seen.update(urls)
        return spawn_task(fetch_unit_urls(urls, self.fetched_dir, self.reload), name="unit-urls")
