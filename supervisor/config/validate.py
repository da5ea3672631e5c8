"""Validating one document against the schema.

Two passes, both driven by the schema:
1. the *walker* goes over the data beside the schema and catches what YAML 1.1 did behind the user's
   back, using the literal text recorded by the loader: ``on``/``yes`` read as booleans where a string
   is wanted, ``0644`` read as octal 420 or ``1:30`` as 90 (sexagesimal), dates, non-string keys,
   and file modes written as decimal integers. Every YAML trap is checked here and nowhere else.
2. the ``jsonschema`` library validates the data; its errors are rewritten as key path + reason.
   Errors at a key path the walker already explained are dropped.

``jsonschema`` (with ``referencing``, ``rpds`` and ``jsonschema_specifications``' metaschemas: 0.1 s and
+2.7 MiB over what PID 1 imports anyway, 2 s under QEMU's TCG) is imported when a document is first
validated, not with this module: a CLI command or a process that never validates (``corral status``,
``logs``, ``units``...) does not pay for it. PID 1 validates its shipped defaults when it starts, so it
holds it; taking it out of ``sys.modules`` after each config request was measured and not done: it gave
back no RSS (its pages are shared with what stays) and each import again kept 0.5 MiB more
(docs/benchmarks.md)."""

from __future__ import annotations

import base64
import datetime
import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from supervisor.config.check import out_of_range
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.keypath import KeyPath, format_path
from supervisor.config.schema import NOT_IMPLEMENTED, Schema, SchemaNode, json_type
from supervisor.config.suggest import closest, did_you_mean
from supervisor.config.yamlload import Document, NodeInfo

FILE_MODE = "file-mode"
MAX_FILE_MODE = 0o7777

_OCTAL_LITERAL = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
_BOOL_WORDS = {"yes", "no", "on", "off"}

if TYPE_CHECKING:
    from jsonschema.protocols import Validator as SchemaValidator


def check_schema_document(document: SchemaNode) -> None:
    """Raise ``jsonschema.SchemaError`` when ``document`` is not a valid Draft 2020-12 schema."""
    importlib.import_module("jsonschema").Draft202012Validator.check_schema(document)


@dataclass(frozen=True)
class Problem:
    path: KeyPath
    message: str
    shown_key: str | None = None  # how to show the last segment (a non-string key as written)
    composite: bool = False  # from anyOf/oneOf: superseded by a walker problem inside it
    suggestion: str | None = None  # what was probably meant (the "did you mean" of the message)


class Validator:
    """Validates documents against one ``Schema``. Holds no state besides the schema (and, from its
    first validation on, jsonschema's validator of it).

    The schema itself is checked against JSON Schema's metaschema at the first validation
    (``check_schema``: about 0.4 s here, seconds under TCG). PID 1 builds its validator with
    ``check_schema=False`` and checks the schema once the system dockerd is spawned, off the boot's
    critical path (supervisor/boot/schema.py); documents are validated the same either way."""

    def __init__(self, schema: Schema, *, check_schema: bool = True) -> None:
        self.schema = schema
        self._check_schema = check_schema
        self._validator: SchemaValidator | None = None

    def validate(self, doc: Document) -> list[ConfigError]:
        """All problems with ``doc``, as ConfigErrors naming ``doc.source``."""
        walked = list(self.walk(doc.data, doc.nodes))
        problems = list(walked)
        explained = [p.path for p in walked]
        for problem in self._schema_problems(_string_keys(doc.data)):
            if any(problem.path[: len(e)] == e for e in explained):
                continue  # the walker said it better
            if problem.composite and any(e[: len(problem.path)] == problem.path for e in explained):
                continue
            problems.append(problem)
        errors = [_error(doc, p) for p in problems]
        errors.sort(key=lambda e: (e.line is None, e.line or 0, e.key))
        return _dedupe(errors)

    # -- pass 1: the walker ----------------------------------------------------------------------------

    def walk(self, data: Any, nodes: dict[KeyPath, NodeInfo]) -> Iterator[Problem]:
        yield from self._walk(data, self.schema.root(), (), nodes)

    def _walk(
        self, value: Any, schemas: list[SchemaNode], path: KeyPath, nodes: dict[KeyPath, NodeInfo]
    ) -> Iterator[Problem]:
        if self.schema.ignored(schemas):
            return  # a key corral ignores (supervisor/compat.py): its value is not checked
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    info = nodes.get((*path, str(key)))
                    literal = info.key_literal if info else None
                    yield Problem((*path, str(key)), _bad_key_message(key, literal), literal)
                    continue
                yield from self._walk(item, self.schema.child(schemas, key), (*path, key), nodes)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from self._walk(item, self.schema.child(schemas, i), (*path, i), nodes)
            return
        info = nodes.get(path)
        literal = info.literal if info is not None else None
        if isinstance(value, datetime.date | bytes | set | tuple):
            yield Problem(path, _not_json_message(value, literal))
            return
        if not schemas:
            return  # free-form (or unknown: jsonschema reports unknown keys)
        if FILE_MODE in self.schema.formats(schemas):
            message = _file_mode_problem(value, literal)
            if message:
                yield Problem(path, message)
            return
        allowed = self.schema.types(schemas)
        if not allowed or value is None:
            return
        if isinstance(value, bool):
            if "boolean" not in allowed and "string" in allowed:
                yield Problem(path, _quote_message(value, literal, "boolean"))
            return
        if isinstance(value, int | float):
            number_ok = "number" in allowed or ("integer" in allowed and isinstance(value, int))
            if not number_ok and "string" in allowed:
                yield Problem(path, _quote_message(value, literal, "number"))
            elif number_ok and literal is not None:
                if _OCTAL_LITERAL.fullmatch(literal) and value != 0:
                    yield Problem(
                        path,
                        f"{literal} is read by YAML 1.1 as octal ({value}); write {value} if you "
                        f"meant that, or {literal.lstrip('0')} without the leading zero",
                    )
                elif _SEXAGESIMAL.fullmatch(literal):
                    yield Problem(
                        path,
                        f"{literal} is read by YAML 1.1 as a base-60 number ({value}); "
                        f"write {value} if you meant that",
                    )

    # -- pass 2: jsonschema ----------------------------------------------------------------------------

    def _schema_problems(self, data: Any) -> Iterator[Problem]:
        for err in self._jsonschema().iter_errors(data):
            yield from self._convert(err)

    def _jsonschema(self) -> SchemaValidator:
        """jsonschema's validator of the schema, made (and the library imported) at the first use."""
        if self._validator is None:
            jsonschema = importlib.import_module("jsonschema")
            if self._check_schema:
                check_schema_document(self.schema.document)
            self._validator = jsonschema.Draft202012Validator(self.schema.document)
        return self._validator

    def _convert(self, err: Any) -> Iterator[Problem]:
        path: KeyPath = tuple(err.absolute_path)
        kind = err.validator
        instance = err.instance
        if kind == "additionalProperties" and isinstance(instance, dict):
            props = err.schema.get("properties", {})
            patterns = list(err.schema.get("patternProperties", {}))
            for key in instance:
                if key not in props and not any(re.search(p, key) for p in patterns):
                    message, suggestion = _unknown_key(key, path, props, self.schema)
                    yield Problem((*path, key), message, suggestion=suggestion)
            return
        if kind == "required":
            for key in err.validator_value:
                if isinstance(instance, dict) and key not in instance:
                    yield Problem((*path, key), "required key is missing")
            return
        if "propertyNames" in err.schema_path and isinstance(instance, str):
            rule = f" (must match {err.validator_value})" if kind == "pattern" else f": {err.message}"
            yield Problem((*path, instance), f"not a valid key here{rule}")
            return
        if kind == "type":
            yield Problem(path, f"expected {_types_phrase(err.validator_value)}, got {_describe(instance)}")
            return
        if kind == "enum":
            choices = ", ".join(str(c) for c in err.validator_value)
            message = f"{_describe(instance)} is not one of: {choices}"
            close = None
            if isinstance(instance, str):
                close = closest(instance, [c for c in err.validator_value if isinstance(c, str)])
            if close is not None:
                message += f"; {did_you_mean(close)}"
            yield Problem(path, message, suggestion=close)
            return
        if kind in ("anyOf", "oneOf"):
            allowed = self.schema.types([err.schema])
            if allowed and json_type(instance) not in allowed:
                yield Problem(path, f"expected {_types_phrase(sorted(allowed))}, got {_describe(instance)}")
                return
            # the branch the value was meant for: drop the other branches' "wrong type" errors
            meant = [c for c in err.context if c.validator != "type" or c.path]
            best = importlib.import_module("jsonschema.exceptions").best_match(meant or err.context)
            if best is not None:
                for problem in self._convert(best):
                    yield replace(problem, composite=True)
                return
        if kind == "pattern":
            wanted = err.schema.get("description") or f"the pattern {err.validator_value}"
            yield Problem(path, f"{_describe(instance)} is not valid: expected {wanted}")
            return
        if kind in ("minLength", "maxLength") and isinstance(instance, str):
            word = "at most" if kind == "maxLength" else "at least"
            yield Problem(path, f"{_describe(instance)} has {len(instance)} characters: "
                                f"{word} {err.validator_value} here")
            return
        if kind in ("minimum", "maximum"):
            yield Problem(path, out_of_range(instance, err.schema.get("minimum"), err.schema.get("maximum")))
            return
        if kind in ("exclusiveMinimum", "exclusiveMaximum"):
            word = ">" if kind == "exclusiveMinimum" else "<"
            yield Problem(path, f"{instance!r} must be {word} {err.validator_value}")
            return
        yield Problem(path, err.message)


# -- messages ------------------------------------------------------------------------------------------


def _error(doc: Document, problem: Problem) -> ConfigError:
    line = doc.line(problem.path)
    message = problem.message
    if line is not None and "line " not in message:
        message = f"{message} (line {line})"
    shown = problem.path if problem.shown_key is None else (*problem.path[:-1], problem.shown_key)
    return ConfigError(doc.source, format_path(shown) or DOCUMENT, message, line, problem.suggestion)


def _dedupe(errors: list[ConfigError]) -> list[ConfigError]:
    seen: set[tuple[str, str]] = set()
    out = []
    for e in errors:
        if (e.key, e.message) not in seen:
            seen.add((e.key, e.message))
            out.append(e)
    return out


def _quote_message(value: Any, literal: str | None, what: str) -> str:
    shown = literal if literal is not None else _yaml_text(value)
    if literal is not None and literal.lower() in _BOOL_WORDS:
        message = (
            f"a string is expected, but YAML 1.1 reads unquoted {literal} as boolean {_yaml_text(value)}"
        )
    elif literal is not None and _OCTAL_LITERAL.fullmatch(literal):
        message = f"a string is expected, but YAML 1.1 reads {literal} (leading zero) as octal {value}"
    elif literal is not None and _SEXAGESIMAL.fullmatch(literal):
        message = f"a string is expected, but YAML 1.1 reads {literal} as base-60 number {value}"
    else:
        message = f"expected a string, got {what} {_yaml_text(value)}"
    return f'{message}; quote it: "{shown}"'


def _file_mode_problem(value: Any, literal: str | None) -> str | None:
    if isinstance(value, bool):
        return f'a file mode must be an octal string such as "0644", got {_describe(value)}'
    if isinstance(value, int):
        if literal is not None and not _OCTAL_LITERAL.fullmatch(literal) and value >= 8:
            digits = literal.lstrip("+")
            meant = f"{value:04o}"
            suggest = f'"{digits.zfill(4)}"' if re.fullmatch(r"[0-7]{1,4}", digits) else f'"{meant}"'
            if suggest != f'"{meant}"' and value <= MAX_FILE_MODE:
                suggest += f' (or "{meant}", which is what {literal} means)'
            return (
                f"file mode {literal} is not written in octal: YAML reads it as the decimal number "
                f"{value} (= 0o{value:o}); write the mode as a quoted octal string: {suggest}"
            )
        if not 0 <= value <= MAX_FILE_MODE:
            return f"file mode {value} (0o{value:o}) is out of range: a mode is at most 07777"
        return None
    if isinstance(value, str):
        if re.fullmatch(r"(0o)?[0-7]{3,4}", value):
            return None
        return f'file mode {value!r} is not an octal mode; write it like "0644"'
    return f'a file mode must be an octal string such as "0644", got {_describe(value)}'


def _bad_key_message(key: Any, literal: str | None) -> str:
    text = literal if literal is not None else _yaml_text(key)
    kind = f"{json_type(key)} {_yaml_text(key)}"
    return f'YAML reads the unquoted key {text} as {kind}, not a string; quote it: "{text}"'


def plain(value: Any) -> Any:
    """``value`` as JSON-like data: map keys as strings (``00`` read as 0 is ``"0"``, ``on`` is
    ``"true"``), a date as ISO text, ``!!binary`` bytes as base64 text, a set or a tuple as a list. For
    the values corral does not check (YAML nests them at most ``MAX_DEPTH`` deep)."""
    if isinstance(value, dict):
        return {_yaml_text(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _string_keys(value: Any) -> Any:
    """``value`` with every map key a string (jsonschema cannot look at others; the walker reports them)."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _not_json_message(value: Any, literal: str | None) -> str:
    if isinstance(value, bytes):
        return (f"YAML read a !!binary value ({len(value)} bytes): only write_files content can be binary; "
                "give text here")
    shown = literal if literal is not None else str(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    kind = "a date" if isinstance(value, datetime.date) else f"a {type(value).__name__}"
    return f'YAML read {shown} as {kind}, which config cannot hold; quote it: "{shown}"'


def _unknown_key(key: str, path: KeyPath, known: dict[str, Any], schema: Schema) -> tuple[str, str | None]:
    """The message for an unknown key, and the key path it suggests (None when it suggests none). Keys
    the schema marks not implemented (supervisor/compat.py) are neither suggested nor listed."""
    message = "unknown key"
    known = {k: v for k, v in known.items() if not _not_implemented(v)}
    suggestion: str | None = None
    if not path and key in _property_names(schema, schema.child(schema.root(), "corral")):
        suggestion = f"corral.{key}"
    elif path == ("corral",) and key in _property_names(schema, schema.root()):
        return f"{message}; did you mean the top-level key {key!r}?", key
    elif (close := closest(key, list(known))) is not None:
        suggestion = format_path((*path, close))
    if suggestion is not None:
        return f"{message}; {did_you_mean(suggestion)}", suggestion
    if known:
        return f"{message} (known here: {', '.join(sorted(known))})", None
    return message, None


def _not_implemented(node: Any) -> bool:
    """A property the schema accepts only to warn about (``$comment`` says "not implemented")."""
    return isinstance(node, dict) and str(node.get("$comment", "")).startswith(NOT_IMPLEMENTED)


def _property_names(schema: Schema, nodes: list[SchemaNode]) -> set[str]:
    names: set[str] = set()
    for node in schema.expand(nodes):
        props = node.get("properties")
        if isinstance(props, dict):
            names.update(props)
    return names


def _types_phrase(types: str | Sequence[str]) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "a boolean (true/false)",
        "null": "null",
    }
    items = [types] if isinstance(types, str) else list(types)
    return " or ".join(names.get(t, t) for t in items)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return f"{json_type(value)} {value!r}"


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def canonical_file_modes(data: Any, schema: Schema) -> Any:
    """A copy of valid ``data`` with every file mode as a 4-digit octal string (``420`` -> ``"0644"``,
    ``"644"`` -> ``"0644"``), so consumers and persisted files see one spelling; and the value of a key
    corral ignores (not checked) made plain data: its keys strings, a date, a set or a ``!!binary``
    value as text (``plain``), so that it merges, persists and exports like any other."""
    return _canonical(data, schema.root(), schema)


def _canonical(value: Any, schemas: list[SchemaNode], schema: Schema) -> Any:
    if schema.ignored(schemas):
        return plain(value)
    if isinstance(value, dict):
        return {k: _canonical(v, schema.child(schemas, k), schema) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v, schema.child(schemas, i), schema) for i, v in enumerate(value)]
    if schemas and FILE_MODE in schema.formats(schemas):
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:04o}"
        if isinstance(value, str) and re.fullmatch(r"(0o)?[0-7]{3,4}", value):
            return f"{int(value.removeprefix('0o'), 8):04o}"
    return value
