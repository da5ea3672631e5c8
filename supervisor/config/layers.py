"""From text to a validated layer: parse, fold ``rancher:`` into ``corral:``, read RancherOS's values
(supervisor/config/rancheros_values.py), validate, canonicalise."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.keypath import KeyPath
from supervisor.config.rancheros_values import rancheros_values
from supervisor.config.salvage import roots_of, without_roots
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator, canonical_file_modes
from supervisor.config.yamlload import Document, load_document

CORRAL = "corral"
ALIAS = "rancher"


@dataclass(frozen=True)
class Layer:
    """One validated config source, ready to merge."""

    source: str
    data: dict[str, Any]
    warnings: tuple[ConfigError, ...] = ()
    """What its reading found that is not an error: a duplicate key under a key corral ignores,
    RancherOS's boolean at a key where corral takes another type (supervisor/config/rancheros_values.py)."""


def layer_warnings(layers: Sequence[Layer]) -> list[ConfigError]:
    """The warnings the layers' reading found, in merge order."""
    return [warning for layer in layers for warning in layer.warnings]


def fold_alias(doc: Document) -> tuple[Document | None, bool, list[ConfigError]]:
    """Rename a top-level ``rancher:`` to ``corral:``; both at once is an error.
    Returns the document, whether the alias was used, and errors."""
    if ALIAS not in doc.data:
        return doc, False, []
    if doc.data[ALIAS] is None:  # an empty `rancher:` (all its keys commented out): RancherOS took it
        data = {k: v for k, v in doc.data.items() if k != ALIAS}
        nodes = {p: info for p, info in doc.nodes.items() if p[:1] != (ALIAS,)}
        return replace(doc, data=data, nodes=nodes), False, []
    if CORRAL in doc.data:
        line = doc.line((ALIAS,))
        where = f" (line {line})" if line else ""
        return (
            None,
            True,
            [
                ConfigError(
                    doc.source,
                    ALIAS,
                    "both 'rancher' and 'corral' are given ('rancher' is an alias of 'corral'): "
                    f"use one{where}",
                    line,
                )
            ],
        )
    data = {(CORRAL if k == ALIAS else k): v for k, v in doc.data.items()}
    nodes = {_rename(p, ALIAS, CORRAL): info for p, info in doc.nodes.items()}
    return replace(doc, data=data, nodes=nodes), True, []


WRITE_FILES = "write_files"
_AS_BASE64 = {None: "b64", "text/plain": "b64", "gz": "gz+b64", "gzip": "gz+b64"}
"""write_files' encodings (schema.json) of bytes, -> the encoding of the same bytes as base64 text."""
_BASE64 = frozenset({"b64", "base64", "gz+b64", "gzip+base64"})


def binary_content(doc: Document) -> Document:
    """``write_files`` content given as YAML's ``!!binary`` (bytes), as cloud-init takes it: the bytes are
    the file's (gunzipped first with ``encoding: gzip``), so they become base64 text with the encoding
    that says so (``b64``, ``gz+b64``); with a base64 encoding the bytes are that base64 text. Anything
    else stays bytes, which the schema walker refuses."""
    entries = doc.data.get(WRITE_FILES)
    if not isinstance(entries, list) or not any(
        isinstance(e, dict) and isinstance(e.get("content"), bytes) for e in entries
    ):
        return doc
    out: list[Any] = []
    for entry in entries:
        content = entry.get("content") if isinstance(entry, dict) else None
        encoding = entry.get("encoding") if isinstance(entry, dict) else None
        if isinstance(content, bytes) and isinstance(encoding, str | None):
            if encoding in _AS_BASE64:
                entry = {**entry, "content": base64.b64encode(content).decode("ascii"),
                         "encoding": _AS_BASE64[encoding]}
            elif encoding in _BASE64:  # not base64 text: write_files warns, and skips the file
                entry = {**entry, "content": content.decode("latin-1")}
        out.append(entry)
    return replace(doc, data={**doc.data, WRITE_FILES: out})


def _rename(path: KeyPath, old: str, new: str) -> KeyPath:
    return (new, *path[1:]) if path[:1] == (old,) else path


def check_document(
    doc: Document, validator: Validator, *, partial: bool = False
) -> tuple[Layer | None, list[ConfigError]]:
    """Validate a parsed document; errors name the keys as the user wrote them (``rancher.`` stays).
    ``partial`` (boot and reload: supervisor/config/salvage.py): a document whose every error sits
    under a domain root still gives a layer, without those roots, next to its errors."""
    try:
        return _check_document(doc, validator, partial)
    except Exception as exc:  # any failure on user input is the input's error, not a crash
        return None, [unreadable(doc.source, exc)]


def unreadable(source: str, exc: BaseException) -> ConfigError:
    """A failure of the loader itself (a bug, or a limit it did not check) as the document's error."""
    return ConfigError(source, DOCUMENT, f"cannot be read: {type(exc).__name__}: {exc}"[:500])


def _check_document(
    doc: Document, validator: Validator, partial: bool
) -> tuple[Layer | None, list[ConfigError]]:
    folded, aliased, errors = fold_alias(doc)
    if folded is None:
        return None, errors
    folded, read = rancheros_values(binary_content(folded))
    warnings = (*doc.duplicates, *(_unfold(w) if aliased else w for w in read))
    errors = validator.validate(folded)
    if aliased:
        errors = [_unfold(e) for e in errors]
    if errors:
        return (_partial(folded, errors, validator, warnings) if partial else None), errors
    return Layer(doc.source, canonical_file_modes(folded.data, validator.schema), warnings), []


def _partial(
    doc: Document, errors: list[ConfigError], validator: Validator, warnings: tuple[ConfigError, ...]
) -> Layer | None:
    """What is left of ``doc`` without the roots its errors cost, checked again (None: an error that
    no root holds, or what is left still fails)."""
    roots, unplaced = roots_of(errors)
    if unplaced:
        return None
    rest = replace(doc, data=without_roots(doc.data, roots))
    if validator.validate(rest):
        return None
    return Layer(doc.source, canonical_file_modes(rest.data, validator.schema), warnings)


def _unfold(error: ConfigError) -> ConfigError:
    """The error as the user wrote the keys: ``rancher.``, also in a "did you mean 'corral.x'"."""
    if error.key == CORRAL or error.key.startswith((CORRAL + ".", CORRAL + "[")):
        message = error.message.replace(f"'{CORRAL}.", f"'{ALIAS}.")
        suggestion = error.suggestion
        if suggestion is not None and suggestion.startswith(CORRAL + "."):
            suggestion = ALIAS + suggestion[len(CORRAL) :]
        return replace(error, key=ALIAS + error.key[len(CORRAL) :], message=message, suggestion=suggestion)
    return error


def ignored(schema: Schema, path: KeyPath) -> bool:
    """Whether ``path`` (as written: ``rancher.`` is ``corral.``) is, or is under, a key corral ignores
    (supervisor/compat.py): a duplicate key there is a warning, the last one counting, as PyYAML (and so
    cloud-init) reads it; corral does not read the value anyway."""
    nodes = schema.root()
    for seg in _rename(path, ALIAS, CORRAL):
        if schema.ignored(nodes):
            return True
        nodes = schema.child(nodes, seg)
        if not nodes:
            return False
    return schema.ignored(nodes)


def check_text(
    text: str, source: str, validator: Validator, *, partial: bool = False
) -> tuple[Layer | None, list[ConfigError]]:
    """Parse and validate one cloud-config document (a leading ``#cloud-config`` line is a comment).
    Whatever goes wrong is an error naming ``source``: this never raises. ``partial``: see
    ``check_document``."""
    try:
        doc, errors = load_document(text, source, lambda path: ignored(validator.schema, path))
    except Exception as exc:  # see check_document
        return None, [unreadable(source, exc)]
    if doc is None:
        return None, errors
    return check_document(doc, validator, partial=partial)
