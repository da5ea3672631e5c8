"""The `corral` command's entry point. The CLI's modules load here, inside the interrupt guard: on a slow
machine (a TCG guest under load) they take seconds, and a Ctrl-C meanwhile must end the command as one
during its work does (exit 130, no traceback; a process killed by SIGINT instead makes ssh say 255)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from supervisor.cli.exits import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from supervisor.cli.main import main as run

        return run(argv)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
