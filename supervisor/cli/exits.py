"""The `corral` command's exit codes (docs/cli.md). A module of its own, imported before anything slow."""

EXIT_OK = 0
EXIT_FAILED = 1  # the supervisor refused the command, a file could not be read, a config is invalid
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_UNAVAILABLE = 3  # the supervisor could not be reached or refused the connection
EXIT_NOT_SET = 4  # config get: the key is known to the schema but has no value in the config in force
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), at any moment: while the CLI loads, too
