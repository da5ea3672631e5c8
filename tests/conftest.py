"""Fast tests: pure logic, plus the process module against real child processes."""

from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

# corral's own packages: a blocking call made by their code while an event loop runs in this thread
# (time.sleep, file or socket I/O, os.read...) raises blockbuster.BlockingError and fails the test.
# The tests' own set-up code (writing fixture files) is not scanned.
CORRAL_PACKAGES = ["supervisor", "handlers", "netconf", "units", "storage"]
# The CLI's side never runs on PID 1's loop: its blocking socket client is what it should be.
NOT_PID1 = ["supervisor.cli", "supervisor.control.client", "supervisor.sandbox"]


# Blocking calls PID 1 makes on its loop on purpose, each with why (the one list of them):
# The journal's file (supervisor/journal/storage.py) is written from the loop: each record is one
# write(2) and flush to the page cache, rotation (every 10 MiB) renames files, and `logs -f` lists and
# opens the files under the journal's lock together with the follower's subscription, so that no record
# falls between the backlog and the live ones. (A writer thread would take these off the loop.)
JOURNAL_FILE = ("supervisor/journal/storage.py",
                {"write", "rotate", "open", "_open_current", "_ends_with_newline", "snapshot", "log_files"})
ALLOWED = {
    # The udev source asks once, when it is made or switched, whether udevd runs (a stat on /run).
    "os.stat": [("supervisor/sources/udev.py", {"udevd_running"})],
    # schema.json is read once per process (cached); in PID 1 before its loop runs.
    "io.TextIOWrapper.read": [("supervisor/config/schema.py", {"_schema_text"})],
}


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with blockbuster_ctx(CORRAL_PACKAGES, excluded_modules=NOT_PID1) as bb:
        for name, function in bb.functions.items():
            function.can_block_in(*JOURNAL_FILE)
            for filename, functions in ALLOWED.get(name, ()):
                function.can_block_in(filename, functions)
        yield bb
