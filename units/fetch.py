"""``services_include`` of a URL: the unit file fetched at boot, its last good copy kept on the state
directory (``/var/lib/corral/units-fetched/``), as RancherOS fetched ``https://.../x.yml: true``.

``fetch_unit_file`` (blocking: run it in a thread) gets one URL with the network datasources' bounded
HTTP client (supervisor/config/netsources.py: a timeout per request, bounded retries on the shared
backoff, the body bounded like a config file), checks that it is UTF-8 text and a unit file (YAML, a map
of unit name to service), and only then replaces the copy, atomically (supervisor/atomic.py). A fetch
that fails leaves the last good copy in place: the units loader (units/unitfiles.py) reads the copy, its
problems naming the URL. ``fetch_unit_urls`` runs them off the loop and says in the journal, for each
URL, what it got: fetched, unchanged, refused (naming the URL and why), or not reachable (the copy is
used, or nothing runs from it). It never holds the boot up: boot spawns it once the network is up, and
when a copy changed it asks for a config reload, which takes the units again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from supervisor.atomic import write_atomic
from supervisor.config.netsources import Http, NotThere, Retry, check_url, why_failed
from supervisor.config.yamlload import decode_config
from units.unitfiles import cached_copy, parse_unit_text

log = structlog.get_logger("units")

RETRY = Retry(attempts=4, timeout=10.0, pause=1.0)
"""4 tries of 10 s at most each, 1 + 2 + 4 s apart: a URL that does not answer costs at most ~47 s,
in a thread, never the boot's time."""


@dataclass(frozen=True)
class Outcome:
    """What fetching one URL came to. ``level``: the journal's; ``changed``: the copy was replaced."""

    url: str
    level: str  # info | warning | error
    event: str
    detail: str = ""
    changed: bool = False
    units: tuple[str, ...] = ()


def fetch_unit_file(url: str, fetched_dir: Path, http: Http) -> Outcome:
    """Fetch ``url``; keep it as the copy when it is a unit file. Blocking (urllib, the disk)."""
    copy = cached_copy(fetched_dir, url)

    def failed(event: str, why: str, level: str = "warning") -> Outcome:
        if copy.is_file():
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(copy.stat().st_mtime))
            return Outcome(url, level, f"{event}; using the copy fetched before", f"{why} (copy of {stamp})")
        return Outcome(url, level, f"{event}; nothing runs from it", why)

    try:
        check_url(url, "services_include")
        body = http.request(url)
    except ValueError as exc:
        return failed("unit file not fetched", str(exc), "error")
    except NotThere:
        return failed("unit file not fetched", f"{url}: HTTP 404")
    except OSError as exc:  # refused, unreachable, timed out, HTTP errors (urllib's are OSErrors)
        return failed("unit file not fetched", f"{url}: {why_failed(exc)} after {http.retry.attempts} tries")
    text, errors = decode_config(body, url)
    if text is None:
        return failed("unit file refused", "; ".join(str(e) for e in errors), "error")
    raws, errors = parse_unit_text(text, url)
    if errors:
        return failed("unit file refused", "; ".join(str(e) for e in errors), "error")
    names = tuple(r.name for r in raws)
    data = text.encode()
    try:
        if copy.is_file() and copy.read_bytes() == data:
            return Outcome(url, "info", "unit file fetched (unchanged)", units=names)
        fetched_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, data)
    except OSError as exc:
        return failed("unit file fetched but not kept", f"{copy}: {exc}")
    return Outcome(url, "info", "unit file fetched", f"kept as {copy}", changed=True, units=names)


async def fetch_unit_urls(
    urls: Sequence[str],
    fetched_dir: Path,
    reload: Callable[[], Awaitable[object]],
    http: Http | None = None,
) -> list[Outcome]:
    """Fetch every URL, one after the other in a thread (a server that does not answer holds one of the
    loop's worker threads, never more), log what each came to, and reload the config when a copy
    changed (the units are then taken again)."""
    client = http or Http(RETRY)
    outcomes: list[Outcome] = []
    for url in urls:
        o = await asyncio.to_thread(fetch_unit_file, url, fetched_dir, client)
        outcomes.append(o)
        fields: dict[str, object] = {"url": o.url}
        if o.detail:
            fields["detail"] = o.detail
        if o.units:
            fields["units"] = list(o.units)
        getattr(log, o.level)(o.event, **fields)
    if any(o.changed for o in outcomes):
        await reload()
    return outcomes

