"""The compatibility corpus: real cloud-configs from RancherOS, its tests and cloud-init's docs (SOURCES
names each one's repository, path and commit), and the verdict corral gives each.

A verdict is what `corral config validate FILE` says on a corral host, from the same code
(``ConfigStore.verdict`` of the store ``config_store`` builds, with the shipped and the image's defaults
and no kernel command line), reduced to key paths, so that it reads the same on every machine:
``accept``, ``accept`` with the warnings' key paths, or ``reject`` with the errors' key paths. With it,
for an accepted file, the keys it uses that corral does nothing with and says nothing about
(``ignored``): see ``EFFECT``.

expected.yml holds every file's verdict and still_rejected.yml the files RancherOS or cloud-init accept
that corral still rejects, with the keys it rejects them for. Both are written by this code::

    python -m tests.compat_corpus            # the summary, and what differs from expected.yml
    python -m tests.compat_corpus --update   # rewrite expected.yml and still_rejected.yml

so that once corral accepts more, the expectations are refreshed in one step and reviewed as a diff."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from supervisor.compat import ignored
from supervisor.config.errors import ConfigError
from supervisor.config.keypath import format_path
from supervisor.config.schema import Schema
from supervisor.config.store import ConfigStore
from supervisor.config.yamlload import read_config_file
from supervisor.domain_checks import config_store
from supervisor.paths import Paths

CORPUS = Path(__file__).parent
EXPECTED = CORPUS / "expected.yml"
DOC = CORPUS.parent.parent / "docs" / "corpus.md"
DOC_BEGIN, DOC_END = "<!-- compat-corpus-counts: begin -->\n", "<!-- compat-corpus-counts: end -->\n"
STILL_REJECTED = CORPUS / "still_rejected.yml"

ACCEPT, REJECT = "accept", "reject"

EFFECT: Mapping[str, str | None] = {
    # top level
    "hostname": None,
    "ssh_authorized_keys": None,
    "mounts": None,
    "network": None,
    "write_files": None,
    "runcmd": None,
    "bootcmd": None,
    # corral: (rancher: is its alias)
    "corral.environment": None,
    "corral.services": None,
    "corral.services_include": None,
    "corral.network": None,
    "corral.state": None,
    "corral.modules": None,
    "corral.password": "only corral.password= on the kernel command line sets the console's password",
    "corral.debug": None,
    "corral.log": None,
    "corral.cloud_init": None,
    "corral.system_docker": None,
    "corral.udev": None,
    "corral.shutdown_grace": None,
    "corral.upgrade": None,
    "corral.swarm": None,  # the user dockerd's Docker Swarm membership (swarm/, handlers/swarm/)
    "corral.handlers": None,
    "corral.sysctl": None,
}
"""Every key the schema knows, at the depth of the top level and of ``corral.``, but those it marks
reserved (``reserved()``): None where corral acts on it, else why it does nothing. A first, coarse
measure: a key with an effect may still have a sub-key that has none. A key the schema gains must be
added here (a test checks), with an effect or without, and is then reported wherever a file uses it
without a warning for it. A key of neither (one corral comes to accept without a schema entry) counts
as doing nothing, unless a warning names it."""


NOT_REQUIRED: Mapping[str, str] = {
    "cnrancher-os-tests/assets/test_swap.yml": (
        "ssh_authoruzed_keys is a typo (RancherOS ignored the key it did not know, and the test did not need "
        "the keys); corral names a misspelt key on purpose"
    ),
    "rancher-os/docs/os/networking/interfaces/index.md.block4.yml": (
        "the docs' mac=ea:34:71:66:90:12:01 has 7 bytes: RancherOS matched no interface with it and said "
        "nothing; corral names the bad value"
    ),
}
"""The files corral need not accept, though RancherOS or cloud-init did, and why. Every other file of
the corpus must be accepted (with warnings at most): still_rejected.yml lists those that are not yet."""


@dataclass(frozen=True)
class Verdict:
    verdict: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"verdict": self.verdict}
        for name in ("errors", "warnings", "ignored"):
            if getattr(self, name):
                data[name] = list(getattr(self, name))
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(data["verdict"], *(tuple(data.get(n, ())) for n in ("errors", "warnings", "ignored")))


@dataclass(frozen=True)
class Source:
    file: str
    repository: str
    path: str
    commit: str
    block: int | None = None
    """The file is this fenced code block (from 1) of the Markdown page at ``path``."""


def sources() -> list[Source]:
    """SOURCES' lines: corpus file, repository, path in it, commit, and for a block of a page
    ``block=N`` (``#`` lines are comments)."""
    found = []
    for line in (CORPUS / "SOURCES").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            file, repository, path, commit, *block = line.split()
            number = int(block[0].removeprefix("block=")) if block else None
            found.append(Source(file, repository, path, commit, number))
    return found


def files() -> list[str]:
    return [s.file for s in sources()]


def _unaliased(key: str) -> str:
    if key == "rancher" or key.startswith(("rancher.", "rancher[")):
        return "corral" + key[len("rancher") :]
    return key


def _keys(errors: list[ConfigError]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(e.key for e in errors))


def used_keys(document: Any) -> list[str]:
    """The keys of ``EFFECT``'s depth a document gives (``rancher.x`` as ``corral.x``)."""
    if not isinstance(document, Mapping):
        return []
    used: list[str] = []
    for key, value in document.items():
        key = _unaliased(str(key))
        if value is None or value == {} or value == []:  # an empty key (`rancher:` with all of it commented
            continue  # out, as RancherOS's docs give it) sets nothing, so nothing of it can be ignored
        if key == "corral" and isinstance(value, Mapping):
            used.extend(f"corral.{sub}" for sub in value)
        else:
            used.append(key)
    return sorted(set(used))


def _within(key: str, outer: str) -> bool:
    return key == outer or key.startswith((f"{outer}.", f"{outer}["))


def silently_ignored(text: str, warnings: list[ConfigError]) -> tuple[str, ...]:
    """The keys ``text`` uses that corral does nothing with (``no_effect``) and gives no warning for."""
    warned = [_unaliased(w.key) for w in warnings]
    return tuple(
        key
        for key in used_keys(yaml.safe_load(text))
        if not key.startswith("x-")  # extension keys: documented as ignored
        and no_effect(key) is not None
        and not any(_within(w, key) for w in warned)
    )


def judge_text(text: str | None, read_errors: list[ConfigError], name: str) -> Verdict:
    if text is None:
        return Verdict(REJECT, _keys(read_errors))
    result = _store().verdict(text, name)
    if result.errors:
        return Verdict(REJECT, _keys(result.errors))
    return Verdict(ACCEPT, (), _keys(result.warnings), silently_ignored(text, result.warnings))


def judge(name: str) -> Verdict:
    """The verdict on one corpus file, as `corral config validate` gives it."""
    text, errors = read_config_file(CORPUS / name, name)
    return judge_text(text, errors, name)


@functools.cache
def _store() -> ConfigStore:
    """The store `corral config validate` builds on a corral host: this checkout's shipped defaults and
    unit files, the image's own defaults (image/config/, installed in /usr/share/corral/cloud-config.d),
    every domain check, no kernel command line."""
    root = Path(tempfile.mkdtemp(prefix="compat-corpus-"))  # the host's root: only the image's defaults
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    paths = Paths(prefix=root, cmdline_file=root / "cmdline")
    paths.image_config_dir.mkdir(parents=True, exist_ok=True)
    for path in IMAGE_CONFIG.glob("*.yml"):
        shutil.copyfile(path, paths.image_config_dir / path.name)
    return config_store(paths, cmdline_text="")


IMAGE_CONFIG = CORPUS.parent.parent / "image" / "config"


@functools.cache
def verdicts() -> dict[str, Verdict]:
    return {name: judge(name) for name in files()}


def still_rejected(judged: Mapping[str, Verdict]) -> dict[str, list[str]]:
    """The files that must be accepted and are not, with the keys they are rejected for."""
    return {n: list(v.errors) for n, v in judged.items() if v.verdict == REJECT and n not in NOT_REQUIRED}


@functools.cache
def reserved() -> frozenset[str]:
    """The top-level keys the schema accepts free-form and marks reserved (its description): they do
    nothing. A key that gets a real schema entry leaves this set, and must be classified in EFFECT."""
    properties = Schema().document["properties"]
    return frozenset(
        key for key, node in properties.items() if str(node.get("description", "")).startswith("reserved")
    )


def warned() -> frozenset[str]:
    """The keys of ``EFFECT``'s depth that supervisor/compat.py warns about (corral knows them and does
    not implement them): every use of one is a warning naming it, so none is silently ignored."""
    return frozenset(
        format_path(path) for path in ignored() if len(path) == 1 or (len(path) == 2 and path[0] == "corral")
    )


def no_effect(key: str) -> str | None:
    """Why corral does nothing with ``key`` (of ``EFFECT``'s depth), or None when it acts on it."""
    if key in reserved():
        return "reserved: accepted free-form, nothing reads it"
    if key in warned():
        return "not implemented: a warning names it (supervisor/compat.py)"
    return EFFECT.get(key, "not a key of the schema")


def schema_keys() -> set[str]:
    """The keys of ``EFFECT``'s depth the schema knows."""
    schema = Schema()
    top = set(schema.document["properties"]) - {"corral", "rancher"}
    corral = schema.deref(schema.document["properties"]["corral"])
    return top | {format_path(("corral", k)) for k in corral["properties"]}


@dataclass(frozen=True)
class Counts:
    files: int
    accepted: int
    with_warnings: int
    rejected: int
    silently_ignored: int
    wrongly_rejected: int

    def __str__(self) -> str:
        return (
            f"{self.files} files: {self.accepted} accepted ({self.with_warnings} of them with warnings), "
            f"{self.rejected} rejected ({self.wrongly_rejected} of them wrongly); "
            f"{self.silently_ignored} accepted with keys silently ignored"
        )


def counts(judged: Mapping[str, Verdict]) -> Counts:
    accepted = [v for v in judged.values() if v.verdict == ACCEPT]
    return Counts(
        files=len(judged),
        accepted=len(accepted),
        with_warnings=sum(1 for v in accepted if v.warnings),
        rejected=len(judged) - len(accepted),
        silently_ignored=sum(1 for v in accepted if v.ignored),
        wrongly_rejected=len(still_rejected(judged)),
    )


def by_origin(judged: Mapping[str, Verdict]) -> Iterator[tuple[str, Counts]]:
    for origin in sorted({n.split("/", 1)[0] for n in judged}):
        yield origin, counts({n: v for n, v in judged.items() if n.startswith(f"{origin}/")})


def summary(judged: Mapping[str, Verdict]) -> str:
    lines = [f"compat corpus: {counts(judged)}"]
    lines += [f"  {origin}: {c}" for origin, c in by_origin(judged)]
    return "\n".join(lines)


# -- the files this writes -----------------------------------------------------------------------------

EXPECTED_HEADER = """\
# The verdict corral gives each file of the corpus (SOURCES), as `corral config validate FILE` gives it:
# accept (with the warnings' key paths) or reject (with the errors' key paths); `ignored`: keys an
# accepted file uses that corral does nothing with and gives no warning for (tests/compat_corpus/
# __init__.py, EFFECT). Written by `python -m tests.compat_corpus --update`: do not edit by hand.
"""

STILL_REJECTED_HEADER = """\
# The files RancherOS or cloud-init accept that corral still rejects, each with the keys it rejects it
# for: each is a strict xfail of tests/test_compat_corpus.py (the Must-show: no file is rejected for a
# key RancherOS, netplan or cloud-init accept). The list shrinks as corral accepts more; an empty list is
# the goal. Files corral need not accept are NOT_REQUIRED in tests/compat_corpus/__init__.py.
# Written by `python -m tests.compat_corpus --update`: do not edit by hand.
"""


def _dump(data: Mapping[str, Any]) -> str:
    ordered = {name: data[name] for name in sorted(data)}
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)


def expected_text(judged: Mapping[str, Verdict]) -> str:
    return EXPECTED_HEADER + _dump({n: v.to_data() for n, v in judged.items()})


def still_rejected_text(judged: Mapping[str, Verdict]) -> str:
    rejected = still_rejected(judged)
    return STILL_REJECTED_HEADER + (_dump(rejected) if rejected else "{}\n")


def counts_table(judged: Mapping[str, Verdict]) -> str:
    """The counts as docs/corpus.md shows them: all files, then each origin."""
    rows = [("all", counts(judged)), *by_origin(judged)]
    lines = [
        "| | files | accepted | of them with warnings | rejected | of them wrongly | "
        "accepted, with keys silently ignored |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in rows:
        cells = (c.files, c.accepted, c.with_warnings, c.rejected, c.wrongly_rejected, c.silently_ignored)
        lines.append(f"| {name} | " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def doc_text(doc: str, judged: Mapping[str, Verdict]) -> str:
    """``doc`` (docs/corpus.md's text) with the counts between its markers written anew."""
    head, begin, rest = doc.partition(DOC_BEGIN)
    _, end, tail = rest.partition(DOC_END)
    if not begin or not end:
        raise ValueError(f"{DOC} has no {DOC_BEGIN.strip()} ... {DOC_END.strip()}")
    return head + begin + counts_table(judged) + end + tail


def load_expected() -> dict[str, Verdict]:
    data = yaml.safe_load(EXPECTED.read_text()) or {}
    return {name: Verdict.from_data(v) for name, v in data.items()}


def load_still_rejected() -> dict[str, list[str]]:
    return dict(yaml.safe_load(STILL_REJECTED.read_text()) or {})
