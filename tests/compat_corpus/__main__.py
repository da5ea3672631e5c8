"""`python -m tests.compat_corpus [--update]`: the corpus's summary, and where the current code's verdicts
differ from expected.yml; with --update, rewrite expected.yml and still_rejected.yml from them."""

from __future__ import annotations

import argparse
import difflib
import sys

from tests.compat_corpus import (
    EXPECTED,
    STILL_REJECTED,
    expected_text,
    still_rejected_text,
    summary,
    verdicts,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.compat_corpus", description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite expected.yml and still_rejected.yml")
    args = parser.parse_args(argv)
    judged = verdicts()
    differs = False
    for path, text in ((EXPECTED, expected_text(judged)), (STILL_REJECTED, still_rejected_text(judged))):
        old = path.read_text() if path.exists() else ""
        if old == text:
            continue
        differs = True
        if args.update:
            path.write_text(text)
            print(f"wrote {path}")
        else:
            sys.stdout.writelines(
                difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path), "now")
            )
    print(summary(judged))
    return 1 if differs and not args.update else 0


if __name__ == "__main__":
    sys.exit(main())
