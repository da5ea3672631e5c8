"""The `corral` command line: one module per command group, each with ``add_parser(subparsers)``."""
