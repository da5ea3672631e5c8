"""`corral config get | set | unset | export | merge | validate | schema`."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from supervisor.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Subparsers,
    add_command,
    call,
    client_options,
    out,
    print_json,
    read_input,
)


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
            "stays."
        ),
        examples=[
            ("corral config get corral.network", "one subtree, as YAML"),
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
            "(-o json: as JSON). Fails with 'no such key' when KEY is absent."
        ),
        examples=[
            ("corral config get corral.network.dns.nameservers", ""),
            ("corral config get corral -o json", "the whole corral: section as JSON"),
        ],
        parents=options,
        run=run_get,
    )
    get.add_argument("key", metavar="KEY", help="dotted key path")

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
    export.add_argument("--secrets", action="store_true", help="include secret values")

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
            "Check the cloud-config document in FILE (- for stdin) against the schema. The CLI reads the\n"
            "file and the supervisor checks it, so the result is what a merge would meet. Prints\n"
            "'FILE: valid', or one 'file: key.path: reason' line per problem and exits 1."
        ),
        examples=[
            ("corral config validate cloud-config.yml", ""),
            ("corral config validate - < user-data", "from stdin"),
        ],
        parents=options,
        run=run_validate,
    )
    validate.add_argument("file", metavar="FILE", help="cloud-config YAML file, or - for stdin")

    add_command(
        sub,
        "schema",
        summary="print the JSON Schema of the config",
        description="Print the JSON Schema that every config is checked against (JSON in both output modes).",
        examples=[("corral config schema | jq '.properties | keys'", "top-level keys")],
        parents=options,
        run=run_schema,
    )


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
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    result = call(args, "config.get", key=args.key)
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
    result = call(args, "config.merge", yaml=text)
    return _emit(args, result, render_applied(result))


def run_validate(args: argparse.Namespace) -> int:
    filename = "<stdin>" if args.file == "-" else args.file
    result = call(args, "config.validate", yaml=read_input(args.file), filename=filename)
    valid = isinstance(result, dict) and bool(result.get("valid"))
    errors = (result.get("errors") or []) if isinstance(result, dict) else []
    if valid:
        text = f"{filename}: valid"
    else:
        text = "\n".join(render_problem(e, filename) for e in errors) or f"{filename}: invalid"
    _emit(args, result, text)
    return EXIT_OK if valid else EXIT_FAILED


def run_schema(args: argparse.Namespace) -> int:
    print_json(call(args, "config.schema"))
    return EXIT_OK
