"""Deliberate stops that outlive the supervisor: the ``unless-stopped`` units the user stopped with
``corral units down``, kept in ``/var/lib/corral/units-stopped.json`` (written atomically whenever the
list changes) and read when the supervisor starts, so that those units stay down across a reboot, as
Docker's ``unless-stopped`` containers do. Other policies forget a deliberate stop at the next boot
(``units.policy.remembered_stops`` decides which stops are kept)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import structlog

from supervisor.atomic import write_atomic
from supervisor.paths import Paths

log = structlog.get_logger("units.stops")

FILE = "units-stopped.json"
VERSION = 1


def stops_path(paths: Paths) -> Path:
    return paths.state_dir / FILE


def read_stops(path: Path) -> set[str]:
    """The remembered stops; an unreadable or malformed file counts as none (logged)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        log.warning("remembered unit stops not readable; ignoring them", file=str(path), error=str(exc))
        return set()
    stopped = data.get("stopped") if isinstance(data, dict) else None
    if not isinstance(stopped, list):
        log.warning("remembered unit stops malformed; ignoring them", file=str(path))
        return set()
    return {str(name) for name in stopped}


def write_stops(path: Path, names: Iterable[str]) -> None:
    """Persist the list (sorted), atomically; an empty list removes nothing, it is written as such."""
    body = {"version": VERSION, "stopped": sorted(set(names))}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(body, indent=2) + "\n").encode())
