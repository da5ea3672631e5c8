"""Fast tests: pure logic, plus the process module against real child processes."""

from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster

from supervisor.loopguard import guarded


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """corral's code under blockbuster (supervisor/loopguard.py): a blocking call it makes while an
    event loop runs in this thread fails the test. The tests' own set-up code is not scanned."""
    with guarded() as bb:
        yield bb
