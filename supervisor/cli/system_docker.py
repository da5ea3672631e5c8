"""`corral system-docker ARGS...`: Debian's docker CLI against the system dockerd's socket.

The socket is the one `corral status` reports (``system_docker.socket``); when the supervisor cannot
be reached it is derived from the control socket's prefix: PREFIX/run/corral/control.sock gives
PREFIX/run/system-docker.sock (so CORRAL_SOCKET=DIR/run/corral/control.sock finds a sandbox's)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from supervisor.cli.common import EXIT_FAILED, EXIT_OK, CliError, Subparsers, call, format_examples
from supervisor.control.protocol import ControlError

DOCKER_CLI = Path("/usr/bin/docker")  # Debian's, matching its dockerd (not /usr/local/bin/docker)
# docker's own environment that would point it elsewhere than -H says.
_DROPPED_ENV = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "system-docker",
        help="run the docker CLI against the system dockerd (OS services)",
        description=(
            "Run Debian's docker CLI (/usr/bin/docker) against the system dockerd, which runs corral's\n"
            "own services. Every argument goes to docker unchanged, except a first -h/--help, which\n"
            "shows this (`corral system-docker help` is docker's help). The user's containers live in\n"
            "another dockerd: plain `docker` reaches it."
        ),
        epilog=format_examples([
            ("corral system-docker ps -a", "the OS's containers"),
            ("corral system-docker images", "its images"),
            ("corral system-docker logs -f NAME", "a service's output (also in `corral logs --unit`)"),
        ]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prefix_chars="\x00",  # no option of ours: everything after system-docker is docker's
        add_help=False,
    )
    parser.add_argument("docker_args", nargs=argparse.REMAINDER, metavar="ARGS", help="docker's arguments")
    parser.set_defaults(func=run, system_docker_parser=parser)


def derived_socket(control_socket: Path) -> Path:
    """PREFIX/run/corral/control.sock -> PREFIX/run/system-docker.sock."""
    return control_socket.parent.parent / "system-docker.sock"


def system_socket(args: argparse.Namespace) -> Path:
    try:
        status = call(args, "status")
    except ControlError:  # unreachable, or refused: fall back to the derived path
        return derived_socket(Path(args.socket))
    docker = status.get("system_docker") if isinstance(status, dict) else None
    if not docker:
        raise CliError("the system docker is not running (disabled in this boot)", EXIT_FAILED)
    return Path(docker["socket"])


def run(args: argparse.Namespace) -> int:
    if args.docker_args[:1] in (["-h"], ["--help"]):
        args.system_docker_parser.print_help()
        return EXIT_OK
    exec_docker(args)


def exec_docker(args: argparse.Namespace) -> NoReturn:
    if not DOCKER_CLI.exists():
        raise CliError(f"{DOCKER_CLI} missing: install docker.io", EXIT_FAILED)
    socket = system_socket(args)
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    argv = [os.fspath(DOCKER_CLI), "-H", f"unix://{socket}", *args.docker_args]
    # exec: stdin, stdout and the terminal become docker's (docker run -it works); its exit code is ours.
    os.execve(argv[0], argv, env)
