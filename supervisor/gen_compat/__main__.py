"""``python -m supervisor.gen_compat [--check]``: write docs/compatibility.md (see the package)."""

import sys

from supervisor.gen_compat import main

sys.exit(main())
