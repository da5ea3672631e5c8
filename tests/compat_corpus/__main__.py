"""`python -m tests.compat_corpus [--update]`: the corpus's summary, and where the current code's verdicts
differ from expected.yml, still_rejected.yml and docs/corpus.md's counts; with --update, rewrite
them from those verdicts."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from tests.compat_corpus import (
    DOC,
    EXPECTED,
    STILL_REJECTED,
    doc_text,
    expected_text,
    still_rejected_text,
    summary,
    verdicts,
)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat_corpus", description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite them from the current verdicts")
    args = parser.parse_args(argv)
    judged = verdicts()
    doc = _read(DOC)
    wanted = {
        EXPECTED: expected_text(judged),
        STILL_REJECTED: still_rejected_text(judged),
        DOC: doc_text(doc, judged),
    }
    stale = False
    for path, text in wanted.items():
        old = _read(path)
        if old == text:
            continue
        stale = True
        if args.update:
            path.write_text(text)
            print(f"wrote {path}")
        else:
            diff = difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path), "now")
            sys.stdout.writelines(diff)
    print(summary(judged))
    return 1 if stale and not args.update else 0


if __name__ == "__main__":
    sys.exit(main())
