"""schema.json's generated part: the domain parsers' key tables, written into the one config schema.

The network and storage keys are declared once, next to their parser (``Keys`` tables in
netconf.rancher, netconf.netplan and netconf.model, gathered in ``netconf.parse.SCHEMA_DEFS``; in
storage.rules): the parser checks against them, and this writes them into
``supervisor/config/schema.json``'s ``$defs``, each marked with a ``$comment`` saying so. The rest of
schema.json is written by hand; the whole file is kept in this module's layout, so that regenerating
a committed schema.json changes nothing (a test checks)::

    python -m supervisor.gen_schema          # rewrite schema.json after changing a key table
    python -m supervisor.gen_schema --check  # exit 1, saying what differs, when it is out of date

It sits in the wiring layer: core (supervisor.config) may not import the domain libraries."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from netconf.parse import SCHEMA_DEFS as NETWORK_DEFS
from storage.rules import SCHEMA_DEFS as STORAGE_DEFS
from supervisor.compat import NOT_IMPLEMENTED, key_path
from supervisor.config.check import SchemaNode
from swarm.config import SCHEMA_DEFS as SWARM_DEFS

WIDTH = 110
"""A map or list whose whole line fits in this many characters is written on one line."""
GENERATED = (
    "generated from a domain parser's key tables (netconf/, storage/): edit them there, "
    "then run python -m supervisor.gen_schema"
)

NOT_IMPLEMENTED_COMMENT = "not implemented: a warning, any value (supervisor/compat.py)"

DOMAIN_DEFS: Mapping[str, Mapping[str, SchemaNode]] = {"netconf": NETWORK_DEFS, "storage": STORAGE_DEFS,
                                                      "swarm": SWARM_DEFS}
"""Each domain's schema definitions, by the package that declares them."""


def schema_path() -> Path:
    return Path(str(resources.files("supervisor.config").joinpath("schema.json")))


def generated_defs() -> dict[str, SchemaNode]:
    """The definitions this writes, each marked as generated."""
    out: dict[str, SchemaNode] = {}
    for defs in DOMAIN_DEFS.values():
        for name, node in defs.items():
            out[name] = {"$comment": GENERATED, **node}
    return out


def is_generated(node: Any) -> bool:
    return isinstance(node, dict) and node.get("$comment") == GENERATED


def generate(text: str) -> str:
    """schema.json's text with the generated definitions as the parsers declare them now: those it
    held are replaced (or dropped, when no parser declares them any more), the others kept as written."""
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("$defs"), dict):
        raise ValueError("schema.json: expected an object with $defs")
    kept = {name: node for name, node in document["$defs"].items() if not is_generated(node)}
    fresh = generated_defs()
    clash = sorted(set(kept) & set(fresh))
    if clash:
        raise ValueError(f"schema.json: hand-written $defs named like generated ones: {', '.join(clash)}")
    document["$defs"] = {**kept, **fresh}
    _drop_not_implemented(document)
    for shown in sorted(NOT_IMPLEMENTED, key=lambda key: len(key_path(key))):
        _accept(document, key_path(shown), {"$comment": NOT_IMPLEMENTED_COMMENT})
    return render(document) + "\n"


def _drop_not_implemented(node: Any) -> None:
    """Remove every property written from supervisor/compat.py (it is written afresh)."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for key in [k for k, v in props.items() if isinstance(v, dict) and
                        v.get("$comment") == NOT_IMPLEMENTED_COMMENT]:
                del props[key]
        for value in node.values():
            _drop_not_implemented(value)
    elif isinstance(node, list):
        for value in node:
            _drop_not_implemented(value)


def _accept(document: SchemaNode, path: Sequence[Any], entry: SchemaNode) -> None:
    """Make the object schema at ``path[:-1]`` accept the key ``path[-1]`` as ``entry`` (following each
    local ``$ref`` to the definition it names, which is changed in place)."""
    node: Any = document
    for depth, seg in enumerate(path):
        for _ in range(8):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not isinstance(ref, str):
                break
            node = document
            for part in ref.removeprefix("#/").split("/"):
                node = node[part]
        if isinstance(node, dict) and node.get("$comment") == NOT_IMPLEMENTED_COMMENT:
            return  # under a key that is ignored whole: any value is accepted already
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict):
            raise ValueError(f"schema.json: no map of keys at {'.'.join(map(str, path[:depth]))}")
        if depth == len(path) - 1:
            props[seg] = entry
            return
        node = props.get(seg)
        if node is None:
            raise ValueError(f"schema.json: {'.'.join(map(str, path[: depth + 1]))} is not in the schema: "
                             "give a not-implemented key under a key the schema has")


def render(value: Any, indent: int = 0, lead: int = 0) -> str:
    """JSON, two spaces a level, a map or list on one line when that line fits in ``WIDTH``."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or indent + lead + len(flat) + 1 <= WIDTH:
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            name = json.dumps(key, ensure_ascii=False) + ": "
            items.append(inner + name + render(item, indent + 2, len(name)))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    return "[\n" + ",\n".join(inner + render(item, indent + 2) for item in value) + "\n" + " " * indent + "]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.gen_schema", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when schema.json is not up to date")
    parser.add_argument("--path", type=Path, default=None, help="the schema.json to read and write")
    args = parser.parse_args(argv)
    path: Path = args.path or schema_path()
    text = path.read_text(encoding="utf-8")
    wanted = generate(text)
    if wanted == text:
        return 0
    if args.check:
        lines = text.splitlines(), wanted.splitlines()
        diff = difflib.unified_diff(*lines, str(path), "generated", lineterm="")
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{path} is out of date: run python -m supervisor.gen_schema", file=sys.stderr)
        return 1
    path.write_text(wanted, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
