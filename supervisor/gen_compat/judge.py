"""The verdict of a key path: corral's config schema as the parsers declare it (schema.json with its
generated part made afresh), the domain parsers' ``Keys`` tables (``Ignored``: a warning,
``Unsupported``: an error) and supervisor/compat.py's keys known but not implemented."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from supervisor.compat import ignored
from supervisor.config.check import Keys
from supervisor.gen_compat.upstream import ITEM, Path_
from supervisor.gen_schema import NOT_IMPLEMENTED_COMMENT, generate, schema_path

Kind = Literal["applied", "warned", "rejected"]


def is_name(seg: str) -> bool:
    """A path segment that stands for a name the user chooses (``<id>``, ``NAME``)."""
    return seg.startswith("<") or seg == "NAME"


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    note: str = ""


@cache
def corral_schema() -> dict[str, Any]:
    """The config schema as the parsers declare it now (schema.json, its generated part made afresh)."""
    document: dict[str, Any] = json.loads(generate(schema_path().read_text(encoding="utf-8")))
    return document


@dataclass
class Judge:
    """The verdicts of key paths, from corral's schema and its parsers' key tables; remembers which
    table keys were reached (``visited``), for the test that every table key is some format's."""

    schema: dict[str, Any] = field(default_factory=lambda: dict(corral_schema()))
    visited: set[tuple[str, str]] = field(default_factory=set)
    walked: Path_ = ()
    node: Any = None
    """The schema node of the last path judged applied (None otherwise)."""
    """The last path judged as it sits in a document: with ``[]`` where a list is stepped into."""

    def resolve(self, node: Any) -> Any:
        for _ in range(16):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if not isinstance(ref, str) or not ref.startswith("#/"):
                return node
            target: Any = self.schema
            for part in ref[2:].split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node

    def __call__(self, path: Path_) -> Verdict:
        """The verdict of ``path`` in corral's merged config (``corral.``, not ``rancher.``)."""
        node: Any = self.schema
        self.walked, self.node = (), None
        for i, seg in enumerate(path):
            node = self.resolve(node)
            if seg == ITEM or (isinstance(node, dict) and node.get("type") == "array" and not is_name(seg)):
                node = self.resolve(_items(node))
                self.walked += (ITEM,)
                if seg == ITEM:
                    continue
            self.walked += (seg,)
            if not isinstance(node, dict):
                return Verdict("rejected", "unknown key")
            if is_name(seg):
                extra = node.get("additionalProperties")
                if not isinstance(extra, dict):
                    return Verdict("rejected", "unknown key")
                node = extra
                continue
            table = tables().get(_canonical(node))
            if table is not None and seg in table.keys:
                self.visited.add((table.name, seg))
                if seg in table.ignored:
                    return Verdict("warned", table.ignored[seg])
                if seg in table.unsupported:
                    return Verdict("rejected", table.unsupported[seg])
            props = node.get("properties")
            if not isinstance(props, dict) or seg not in props:
                hint = table.hints.get(seg) if table is not None else None
                return Verdict("rejected", f"unknown key; {hint}" if hint else "unknown key")
            node = props[seg]
            if isinstance(node, dict) and node.get("$comment") == NOT_IMPLEMENTED_COMMENT:
                return Verdict("warned", _compat_message(path, i + 1))
        node = self.node = self.resolve(node)
        description = node.get("description", "") if isinstance(node, dict) else ""
        return Verdict("applied", _first_sentence(description))


def _items(node: dict[str, Any]) -> Any:
    items = node.get("items", {})
    alternatives = (items.get("anyOf") or items.get("oneOf") or []) if isinstance(items, dict) else []
    for alt in alternatives:
        if isinstance(alt, dict) and ("properties" in alt or "$ref" in alt):
            return alt
    return items


def _compat_message(path: Path_, depth: int) -> str:
    """supervisor/compat.py's message for the longest key of ``path`` it names (at least ``depth``)."""
    table = ignored()
    for n in range(len(path), depth - 1, -1):
        if path[:n] in table:
            return table[path[:n]][1]
    return "not implemented"


def _first_sentence(text: str) -> str:
    text = text.strip()
    return text if len(text) <= 140 else text[:137].rsplit(" ", 1)[0] + " ..."


def _canonical(node: Mapping[str, Any]) -> str:
    """A schema node as its key table made it: without gen_schema's marks and the not-implemented keys
    it adds (supervisor/compat.py's, such as ``corral.state.mdadm_scan``)."""
    out = {k: v for k, v in node.items() if k != "$comment"}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            k: v
            for k, v in out["properties"].items()
            if not (isinstance(v, dict) and v.get("$comment") == NOT_IMPLEMENTED_COMMENT)
        }
    return json.dumps(out, sort_keys=True)


DOMAIN_PACKAGES = ("netconf", "storage", "swarm")


@cache
def all_tables() -> tuple[Keys, ...]:
    """Every ``Keys`` table of the domain parsers (module attributes, and the values of dict ones)."""
    found: dict[int, Keys] = {}
    for package in DOMAIN_PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{package}.{info.name}")
            for value in vars(module).values():
                candidates = value.values() if isinstance(value, dict) else [value]
                for item in candidates:
                    if isinstance(item, Keys):
                        found[id(item)] = item
    return tuple(found.values())


@cache
def tables() -> dict[str, Keys]:
    """The tables by the schema they make (as written in schema.json, inline or as a definition)."""
    return {_canonical(json.loads(json.dumps(t.schema()))): t for t in all_tables()}
