"""`corral config get | set | unset | export | merge | validate | schema`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor.cli.common import (
    EXIT_FAILED,
    EXIT_NOT_SET,
    EXIT_OK,
    STDIN,
    CliError,
    Parser,
    Subparsers,
    add_command,
    call,
    client_options,
    out,
    print_json,
    read_config_input,
    read_input,
)
from supervisor.control.protocol import NOT_SET, ControlError

if TYPE_CHECKING:
    from supervisor.config.store import ConfigStore

# get, set, unset, export and merge only forward to PID 1, which parses and validates: they import no
# more than the socket's client (not jsonschema, the store or the domain checks; tests/test_cli_imports.py).
# validate and schema, which run here without a supervisor, import what they need when they run.


def add_parser(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "config",
        summary="read, change, check and export the configuration",
        description=(
            "Read and change the cloud-config in force. Keys are dotted paths such as\n"
            "corral.network.dns.nameservers (rancher.* is accepted as an alias of corral.*). Changes are\n"
            "validated by the supervisor, persisted (only the difference from the defaults; secrets in a\n"
            "private file) and applied live; an invalid change is rejected whole and the config in force\n"
            "stays. validate and schema work without a supervisor (on a laptop, in CI)."
        ),
        examples=[
            ("corral config get corral.log", "one subtree, as YAML"),
            ("corral config set corral.network.dns.nameservers '[1.1.1.1, 8.8.8.8]'", "set a list"),
            ("corral config validate my.yml", "check a file before merging it"),
            ("corral config merge my.yml", "merge a cloud-config file"),
            ("corral config export > backup.yml", "save the user config"),
        ],
    )
    sub = parser.add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", title="subcommands", required=True
    )
    options = [client_options()]

    get = add_command(
        sub,
        "get",
        summary="print the value at a key",
        description=(
            "Print the value at KEY in the config in force: scalars as they are, maps and lists as YAML\n"
            "(-o json: as JSON). Secret values (passwords, private keys; see docs/config.md) are shown as\n"
            "<redacted> unless --secrets is given. A key the schema knows but nothing sets prints nothing\n"
            "(-o json: null), says so on stderr and exits 4; a key the schema does not know exits 1."
        ),
        examples=[
            ("corral config get corral.log.level", ""),
            ("corral config get corral -o json", "the whole corral: section as JSON"),
            ("corral config get corral.password --secrets", "a secret, in clear"),
        ],
        parents=options,
        run=run_get,
    )
    get.add_argument("key", metavar="KEY", help="dotted key path")
    _secrets_option(get, "show secret values in clear")

    set_ = add_command(
        sub,
        "set",
        summary="set the value at a key",
        description=(
            "Set KEY to VALUE, which is YAML text: '8.8.8.8' is a string, '3' a number, 'true' a boolean,\n"
            "'[a, b]' a list, '{a: 1}' a map (quote it for the shell). The change is validated, persisted\n"
            "and applied live; the new config generation and the changed keys are printed."
        ),
        examples=[
            ("corral config set hostname edge-1", ""),
            ("corral config set corral.network.dns.nameservers '[1.1.1.1]'", "a list"),
        ],
        parents=options,
        run=run_set,
    )
    set_.add_argument("key", metavar="KEY", help="dotted key path")
    set_.add_argument("value", metavar="VALUE", help="new value, as YAML text")

    unset = add_command(
        sub,
        "unset",
        summary="remove a key from the user's config",
        description=(
            "Remove KEY (and everything under it) from the user's config, the one that set and merge\n"
            "persist, so that the shipped defaults and cloud-config.d count again. It is applied live; the\n"
            "new config generation and the changed keys are printed. A key that the user's config does\n"
            "not hold is an error that says where its value comes from."
        ),
        examples=[
            ("corral config unset hostname", "back to the default hostname"),
            ("corral config unset corral.network.interfaces.eth1", "forget one interface's settings"),
        ],
        parents=options,
        run=run_unset,
    )
    unset.add_argument("key", metavar="KEY", help="dotted key path")

    export = add_command(
        sub,
        "export",
        summary="print the user's config as cloud-config YAML",
        description=(
            "Print the user's config (what set and merge persisted, without the shipped defaults) as a\n"
            "#cloud-config YAML document that merge accepts back. Secret values are left out unless\n"
            "--secrets is given."
        ),
        examples=[
            ("corral config export > backup.yml", ""),
            ("corral config export --secrets -o json", "everything, as JSON"),
        ],
        parents=options,
        run=run_export,
    )
    _secrets_option(export, "include secret values")

    merge = add_command(
        sub,
        "merge",
        summary="merge a cloud-config file into the config",
        description=(
            "Merge the cloud-config document in FILE (- for stdin) into the user's config: maps merge,\n"
            "lists and scalars replace. It is validated, persisted and applied live; the new config\n"
            "generation and the changed keys are printed."
        ),
        examples=[
            ("corral config merge network.yml", ""),
            ("echo 'corral: {hostname: edge-1}' | corral config merge -", "from stdin"),
        ],
        parents=options,
        run=run_merge,
    )
    merge.add_argument("file", metavar="FILE", help="cloud-config YAML file, or - for stdin")

    validate = add_command(
        sub,
        "validate",
        summary="check a cloud-config file without applying it",
        description=(
            "Check the cloud-config document in FILE (- for stdin) as the machine's only config over the\n"
            "defaults: the schema and every domain check (units, network, storage), with the messages\n"
            "boot, merge and reload give. Needs no supervisor: it runs here, on a laptop or in CI. Prints\n"
            "'FILE: valid' (exit 0), or one 'file: key.path: reason' line per problem (exit 1); warnings\n"
            "go to stderr and do not fail, and so does a 'boot: FILE: ...' line saying what a boot would\n"
            "keep of an invalid file (each part with errors on the defaults, the rest applied). A file\n"
            "that cannot be read exits 1; bad usage exits 2."
        ),
        examples=[
            ("corral config validate cloud-config.yml", ""),
            ("corral config validate - < user-data", "from stdin"),
            ("corral config validate -o json my.yml | jq .errors", "as data"),
        ],
        parents=[output_option()],
        run=run_validate,
    )
    validate.add_argument("file", metavar="FILE", help="cloud-config YAML file, or - for stdin")

    add_command(
        sub,
        "schema",
        summary="print the JSON Schema of the config",
        description=(
            "Print the JSON Schema (draft 2020-12) that every config is checked against (JSON in both\n"
            "output modes). Needs no supervisor."
        ),
        examples=[("corral config schema | jq '.properties | keys'", "top-level keys")],
        parents=[output_option()],
        run=run_schema,
    )


def _secrets_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--secrets", "--private", dest="secrets", action="store_true", help=help_text)


def output_option() -> Parser:
    """-o for the commands that run here, without the supervisor."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default) or json for programs",
    )
    # accepted where every other command takes it, and unused: these commands never call the supervisor
    parent.add_argument(
        "--socket", type=Path, metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return parent


def render_value(value: Any) -> str:
    """Scalars as plain text, maps and lists as block YAML."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    import yaml

    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, allow_unicode=True).rstrip("\n")


def render_applied(result: Any) -> str:
    """The reply of set, merge and reload."""
    if not isinstance(result, dict):
        return "ok"
    text = f"config generation {result.get('generation', '?')}"
    changed = result.get("changed")
    if changed:
        text += "; changed: " + ", ".join(str(c) for c in changed)
    elif changed is not None:
        text += "; nothing changed"
    return text


def render_problem(problem: Any, filename: str) -> str:
    if isinstance(problem, dict):
        key = problem.get("key", problem.get("path"))
        parts = [problem.get("file") or filename, key, problem.get("message")]
        return ": ".join(str(p) for p in parts if p not in (None, ""))
    return f"{filename}: {problem}"


def _emit(args: argparse.Namespace, result: Any, text: str) -> int:
    if args.output == "json":
        print_json(result)
    else:
        out(text)
        for warning in result.get("warnings", []) if isinstance(result, dict) else []:
            print(f"warning: {warning}", file=sys.stderr, flush=True)  # what the change ignores
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    try:
        result = call(args, "config.get", key=args.key, secrets=args.secrets)
    except ControlError as exc:
        if exc.code != NOT_SET:
            raise
        if args.output == "json":
            print_json(None)
        print(f"corral: {exc.reason}", file=sys.stderr, flush=True)
        return EXIT_NOT_SET
    return _emit(args, result, render_value(result))


def run_set(args: argparse.Namespace) -> int:
    result = call(args, "config.set", key=args.key, value=args.value)
    return _emit(args, result, render_applied(result))


def run_unset(args: argparse.Namespace) -> int:
    result = call(args, "config.unset", key=args.key)
    return _emit(args, result, render_applied(result))


def run_export(args: argparse.Namespace) -> int:
    result = call(args, "config.export", secrets=args.secrets)
    if isinstance(result, str):
        text = result.rstrip("\n")
    else:
        text = "#cloud-config\n" + render_value(result if result is not None else {})
    return _emit(args, result, text)


def run_merge(args: argparse.Namespace) -> int:
    text = read_input(args.file)
    result = call(args, "config.merge", yaml=text, filename=STDIN if args.file == "-" else args.file)
    return _emit(args, result, render_applied(result))


def run_validate(args: argparse.Namespace) -> int:
    """Here, without the supervisor: the verdict boot, merge and reload give (``ConfigStore.verdict``)."""
    from supervisor.config.store import LoadResult, verdict_reply

    filename = STDIN if args.file == "-" else args.file
    text, errors = read_config_input(args.file)
    if text is None:
        result = verdict_reply(LoadResult({}, errors))
    else:
        result = verdict_reply(_offline_store().verdict(text, filename))
    valid = bool(result["valid"])
    if args.output == "json":
        print_json(result)
    else:
        problems = [render_problem(e, filename) for e in result["errors"]]
        out(f"{filename}: valid" if valid else "\n".join(problems))
        for warning in result["warnings"]:
            print(f"warning: {render_problem(warning, filename)}", file=sys.stderr, flush=True)
        if result.get("boot"):  # what a boot keeps of it (supervisor/config/salvage.py)
            print(f"boot: {filename}: {result['boot']['summary']}", file=sys.stderr, flush=True)
    return EXIT_OK if valid else EXIT_FAILED


def run_schema(args: argparse.Namespace) -> int:
    from supervisor.config.schema import Schema

    print_json(Schema().copy())
    return EXIT_OK


def _offline_store() -> ConfigStore:
    """The store the supervisor of this machine would build (its defaults, unit files and domain
    checks), reading no kernel command line."""
    from supervisor.domain_checks import config_store
    from supervisor.paths import Paths

    try:
        return config_store(Paths(), cmdline_text="")
    except ValueError as exc:  # the image's defaults on this machine are broken
        raise CliError(str(exc)) from None
