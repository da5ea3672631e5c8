"""corral's journal: every log line of the supervisor and its units, as JSON lines.

Boot: ``journal = setup()`` first thing (structlog + stdlib logging feed it; records are kept in a
bounded in-memory ring and mirrored to the console); ``journal.attach_storage(paths.log_dir)`` once
``/var/log`` is writable; ``journal.console_mirror = False`` when ready; ``journal.close()`` at shutdown.
``corral logs`` is served by ``journal.stream(...)`` (the stored records, read a bounded batch at a time)
and ``journal.follow(...)``; ``supervisor.journal.lines`` decides the level of a line a child printed.
When a write fails the records wait in the ring and ``journal.outage`` retries; ``journal.status()`` is
what ``corral status`` shows of it. Secret names are ``supervisor.secretnames``' rule, the config's too."""

from supervisor.journal.console import ConsoleFormat, render_json, render_plain
from supervisor.journal.core import Journal
from supervisor.journal.follow import Follower
from supervisor.journal.pipeline import get_journal, reset, setup
from supervisor.journal.query import RecordFilter, parse_since, read_dir
from supervisor.journal.records import Record
from supervisor.journal.redact import REDACTED, is_secret_key, redact_text, redact_value
from supervisor.journal.storage import CURRENT, Snapshot, log_files

__all__ = [
    "CURRENT",
    "REDACTED",
    "ConsoleFormat",
    "Follower",
    "Journal",
    "Record",
    "RecordFilter",
    "Snapshot",
    "get_journal",
    "is_secret_key",
    "log_files",
    "parse_since",
    "read_dir",
    "redact_text",
    "redact_value",
    "render_json",
    "render_plain",
    "reset",
    "setup",
]

