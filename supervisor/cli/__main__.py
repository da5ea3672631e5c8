import sys

from supervisor.cli.entry import main

sys.exit(main())
