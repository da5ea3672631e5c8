"""The types every datasource shares (supervisor/config/datasources.py, netsources.py): what one is
given (``DatasourceContext``), what it gives (``Fetched``), and what reads labelled media for it
(``MediaReader``, ``MediumRead``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.paths import Paths


@dataclass(frozen=True)
class MediumRead:
    """What a ``MediaReader`` found for a set of labels: the device (None: none has the label) and the
    text of each file it holds (by name; missing files are absent), or why it could not be read."""

    device: str | None = None
    label: str | None = None
    fstype: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    errors: Sequence[ConfigError] = ()  # a file too big, not UTF-8, unreadable
    problem: str | None = None  # the medium could not be probed or mounted: why
    pending: bool = False  # not found yet, and boot will look again once devices are probed


class MediaReader(Protocol):
    def read(self, labels: Sequence[str], names: Sequence[str]) -> MediumRead:
        """The first block device whose filesystem label is one of ``labels``, with the files ``names``
        (paths inside it) read with the bounds of any config file. Blocking."""
        ...


@dataclass(frozen=True)
class DatasourceContext:
    paths: Paths
    cmdline_text: str
    media: MediaReader | None = None
    network_ready: bool = True  # False at boot until the network phase is done
    cache: dict[str, Fetched] = field(default_factory=dict)  # what network datasources gave, per spec
    sleep: Callable[[float], None] = time.sleep  # between retries


@dataclass
class Fetched:
    """What one datasource gave: cloud-config texts and config-shaped metadata, each with its source,
    and one line for the journal saying what it found (``notes``)."""

    user_data: list[tuple[str, str]] = field(default_factory=list)
    metadata: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: bool = False  # found nothing yet, and boot will look again (no warning now)


class Datasource(Protocol):
    spec: str

    def fetch(self, ctx: DatasourceContext) -> Fetched: ...


def add_user_data(source: str, text: str, out: Fetched) -> None:
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith("#!"):
        out.warnings.append(
            ConfigError(source, DOCUMENT, "user-data is a script: not supported yet, ignored")
        )
    elif first.startswith("#include") or first.lower().startswith("content-type:"):
        out.warnings.append(
            ConfigError(source, DOCUMENT, f"user-data format {first!r} is not supported, ignored")
        )
    else:
        out.user_data.append((source, text))
