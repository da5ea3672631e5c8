"""The one config schema (``schema.json``, JSON Schema draft 2020-12) and a navigator over it.

Validation itself is done by the ``jsonschema`` library (see ``validate``); the navigator answers the
questions the loaders ask before that: what types are allowed at this key path, is this a file mode,
is this map's key free-form."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from supervisor.config.keypath import Segment

SchemaNode = dict[str, Any]

NOT_IMPLEMENTED = "not implemented"
"""How the ``$comment`` of a key corral ignores begins (written by supervisor/gen_schema.py)."""

SCALAR_TYPES = frozenset({"string", "integer", "number", "boolean", "null"})


@functools.cache
def _schema_text() -> str:
    """schema.json as shipped, read once per process (PID 1 reads it before its loop runs)."""
    return resources.files("supervisor.config").joinpath("schema.json").read_text(encoding="utf-8")


def load_schema_document() -> SchemaNode:
    """A fresh copy of the shipped schema."""
    doc = json.loads(_schema_text())
    if not isinstance(doc, dict):
        raise ValueError("schema.json: top level is not an object")
    return doc


class Schema:
    """The loaded schema plus navigation helpers (local ``$ref``, ``anyOf``/``oneOf``/``allOf``)."""

    def __init__(self, document: SchemaNode | None = None) -> None:
        self.document: SchemaNode = document if document is not None else load_schema_document()

    def copy(self) -> SchemaNode:
        return copy.deepcopy(self.document)

    # -- navigation ------------------------------------------------------------------------------------

    def deref(self, node: SchemaNode) -> SchemaNode:
        seen = 0
        while "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise ValueError(f"only local $ref is supported, got {ref!r}")
            target: Any = self.document
            for part in ref[2:].split("/"):
                target = target[part]
            merged = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **merged}
            seen += 1
            if seen > 32:
                raise ValueError(f"$ref loop at {ref}")
        return node

    def expand(self, nodes: Iterable[SchemaNode]) -> list[SchemaNode]:
        """Each node dereferenced, followed by its ``anyOf``/``oneOf``/``allOf`` branches (recursively)."""
        out: list[SchemaNode] = []
        for raw in nodes:
            node = self.deref(raw)
            out.append(node)
            for key in ("anyOf", "oneOf", "allOf"):
                branches = node.get(key)
                if isinstance(branches, list):
                    out.extend(self.expand(b for b in branches if isinstance(b, dict)))
        return out

    def root(self) -> list[SchemaNode]:
        return [self.document]

    def child(self, nodes: Sequence[SchemaNode], seg: Segment) -> list[SchemaNode]:
        """The schemas that apply to ``seg`` inside a value described by ``nodes``."""
        out: list[SchemaNode] = []
        for node in self.expand(nodes):
            if isinstance(seg, int):
                prefix = node.get("prefixItems")
                if isinstance(prefix, list) and seg < len(prefix):
                    out.append(prefix[seg])
                elif isinstance(node.get("items"), dict):
                    out.append(node["items"])
                continue
            props = node.get("properties")
            if isinstance(props, dict) and seg in props:
                out.append(props[seg])
                continue
            patterns = node.get("patternProperties")
            if isinstance(patterns, dict):
                matched = [sub for pat, sub in patterns.items() if re.search(pat, seg)]
                if matched:
                    out.extend(matched)
                    continue
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                out.append(extra)
        return out

    def at(self, path: Sequence[Segment]) -> list[SchemaNode]:
        nodes = self.root()
        for seg in path:
            nodes = self.child(nodes, seg)
            if not nodes:
                break
        return nodes

    def types(self, nodes: Sequence[SchemaNode]) -> set[str]:
        """JSON types allowed by ``nodes``; empty means "anything" (a free-form or unknown key)."""
        found: set[str] = set()
        for node in self.expand(nodes):
            t = node.get("type")
            if isinstance(t, str):
                found.add(t)
            elif isinstance(t, list):
                found.update(x for x in t if isinstance(x, str))
            enum = node.get("enum")
            if isinstance(enum, list) and "type" not in node:
                found.update(json_type(v) for v in enum)
        return found

    def ignored(self, nodes: Sequence[SchemaNode]) -> bool:
        """True at a key corral knows but ignores (supervisor/compat.py: schema.json accepts it, any
        value, its ``$comment`` saying "not implemented"): the value under it is not checked."""
        return any(str(node.get("$comment", "")).startswith(NOT_IMPLEMENTED) for node in nodes)

    def formats(self, nodes: Sequence[SchemaNode]) -> set[str]:
        return {f for n in self.expand(nodes) if isinstance(f := n.get("format"), str)}

    def expects_string(self, nodes: Sequence[SchemaNode]) -> bool:
        """True when a string is the only thing allowed here (null aside: a ``NAME:`` with no value in
        a file, as in ``corral.environment``; text given on the command line is never null)."""
        return self.types(nodes) - {"null"} == {"string"}

    def is_free_key_scalar_map(self, nodes: Sequence[SchemaNode]) -> bool:
        """A map whose keys are free-form and whose values are scalars (sysctl, environment): its
        keys may contain dots, so a dotted path that reaches it takes the rest as one key."""
        expanded = self.expand(nodes)
        if not expanded or self.types(nodes) != {"object"}:
            return False
        for node in expanded:
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                value_types = self.types([extra])
                if value_types and value_types <= SCALAR_TYPES:
                    return True
        return False

    def join_free_keys(self, path: Sequence[Segment]) -> tuple[Segment, ...]:
        """``corral.sysctl.net.ipv4.ip_forward`` -> ``("corral", "sysctl", "net.ipv4.ip_forward")``."""
        out: list[Segment] = []
        nodes = self.root()
        for i, seg in enumerate(path):
            if (
                i < len(path) - 1
                and nodes
                and self.is_free_key_scalar_map(nodes)
                and all(isinstance(s, str) for s in path[i:])
            ):
                out.append(".".join(str(s) for s in path[i:]))
                return tuple(out)
            out.append(seg)
            nodes = self.child(nodes, seg) if nodes else []
        return tuple(out)


def json_type(value: Any) -> str:
    """The JSON Schema type name of a Python value (bool before int: bool is an int subclass)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
