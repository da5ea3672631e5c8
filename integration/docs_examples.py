"""The `corral` commands that README.md and docs/*.md show, as the docs test runs them.

What counts as an example that runs (the convention the docs are written to):

- every line of a fenced block labelled ``sh``, ``shell``, ``bash`` or ``console`` whose command (after an
  optional ``$ `` prompt and ``sudo``) is ``corral`` (or ``.venv/bin/corral``);
- in a block with no label (or ``text``), only such lines that carry a ``$ `` prompt; the lines after one
  are its output. Synopses (``corral logs [-f] [-u UNIT]``) go in unlabelled blocks without a prompt.

A trailing comment may say more: ``# exits N`` (the exit status the example is meant to have; 0
otherwise) and ``# guest`` (it needs the booted OS: a disk, the console, the user's dockerd). Lines run
with ``sudo`` are the console's (docs/console.md), and ``docker``/``system-docker`` commands are the
booted OS's: they run in the guest too."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHELL_LABELS = frozenset({"sh", "shell", "bash", "console"})
_FENCE = re.compile(r"^```(\S*)\s*$")
_COMMAND = re.compile(r"^(?:sudo\s+)?(?:\.venv/bin/)?(?:corral|docker|system-docker)(?:\s|$)")
_GUEST_ONLY = re.compile(r"^(?:sudo\s|(?:docker|system-docker)\s)")
_EXITS = re.compile(r"#.*\bexits?\s+(\d+)\b")
_FOLLOW = re.compile(r"(?:^|\s)(?:-f|--follow)(?:\s|$)")


@dataclass(frozen=True)
class Example:
    path: str  # relative to the repository
    line: int  # 1-based line number in the file
    command: str  # the shell text to run, without prompt and trailing comment
    exits: int = 0
    guest: bool = False

    @property
    def follows(self) -> bool:
        """A command that runs until interrupted (``logs -f``; ``events``, which always follows)."""
        first = self.command.split("|")[0]
        if not re.match(r"^(?:sudo\s+)?(?:\.venv/bin/)?corral\s", first):
            return False  # docker's -f is --force
        return bool(_FOLLOW.search(first) or re.search(r"\bcorral\s+events\b", first))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _strip_comment(text: str) -> str:
    """The command without a trailing ``# comment`` (a ``#`` outside quotes, after whitespace)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def examples_in(text: str, path: str) -> list[Example]:
    found: list[Example] = []
    label: str | None = None  # None: outside a fence
    for number, raw in enumerate(text.splitlines(), 1):
        fence = _FENCE.match(raw.strip())
        if fence:
            label = None if label is not None else fence.group(1).lower()
            continue
        if label is None:
            continue
        line = raw.strip()
        prompted = line.startswith("$ ")
        if prompted:
            line = line[2:].strip()
        elif label not in SHELL_LABELS:
            continue
        if not _COMMAND.match(line):
            continue
        exits = _EXITS.search(line)
        command = _strip_comment(line)
        guest = bool(_GUEST_ONLY.match(command) or re.search(r"#.*\bguest\b", line))
        found.append(Example(path, number, command, int(exits.group(1)) if exits else 0, guest))
    return found


def all_examples(repo: Path = REPO) -> list[Example]:
    files = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    out: list[Example] = []
    for file in files:
        out += examples_in(file.read_text(), file.relative_to(repo).as_posix())
    return out
