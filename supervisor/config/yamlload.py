"""Reading one YAML config document strictly.

``StrictLoader`` is PyYAML's SafeLoader that (1) rejects duplicate keys, naming the key path and both
lines (except where the caller tolerates them: under a key corral ignores, the last one counts, as in
PyYAML and so cloud-init, and the duplicate is a warning), and (2) records, for every node, its line and
(for plain scalars) the literal text, so that the schema walker can tell that ``420`` came from ``0644``
or ``True`` from ``on``. It never decides what is a trap: ``validate`` does that with the schema."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.keypath import KeyPath, format_path

MAX_NODES = 50_000
"""Upper bound on values per document (keys, list items and scalars), counted as the text is read (so a
huge document stops early, bounding the time spent on it) and again with aliases expanded (stops alias
"billion laughs" expansion)."""

MAX_KEYS = 10_000
"""Upper bound on the keys of all the maps of one document, counted as the text is read."""

MAX_DEPTH = 64
"""Upper bound on nesting (maps and lists inside each other); deeper input is an error, not a crash."""

MAX_DUPLICATES = 20
"""Upper bound on the tolerated duplicate keys one document reports (one warning each; the rest are
counted in one more)."""

MAX_BYTES = 1 << 20
"""Upper bound on the size of one config document (1 MiB): files, stdin and text sent to the supervisor."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class NodeInfo:
    """Where a value came from in its YAML text."""

    line: int | None  # 1-based; None for sources without lines (the kernel command line)
    literal: str | None = None  # the scalar's source text, for plain (unquoted) scalars only
    key_literal: str | None = None  # the source text of its key, when YAML made that key a non-string


@dataclass
class Document:
    """One parsed config source: its data, and per key path where in the text each value came from."""

    source: str
    data: dict[str, Any]
    nodes: dict[KeyPath, NodeInfo] = field(default_factory=dict)
    duplicates: list[ConfigError] = field(default_factory=list)
    """The duplicate keys the reader tolerated (``load_document``'s ``tolerate``), one warning each."""

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            info = self.nodes.get(path[:end])
            if info is not None:
                return info.line
        return None


class YamlProblem(yaml.YAMLError):
    """A structural problem found while reading (duplicate key, recursive alias, too many nodes)."""

    def __init__(self, path: KeyPath, message: str, line: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line


Tolerate = Callable[[KeyPath], bool]
"""Whether a duplicate key at this key path (as written) is tolerated: the last one counts."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (those ``tolerate`` does not take: kept in ``tolerated``)
    and records the source of every value."""

    def __init__(self, stream: str, tolerate: Tolerate | None = None) -> None:
        super().__init__(stream)
        self.node_info: dict[KeyPath, NodeInfo] = {}
        self.tolerate = tolerate
        self.tolerated: list[YamlProblem] = []
        self._visited = 0
        self._depth = 0
        self._composed = 0
        self._keys = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # PyYAML composes recursively: bound the depth before Python's recursion limit is hit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlProblem((), f"nested more than {MAX_DEPTH} levels deep", self._next_line())
            if isinstance(parent, MappingNode) and index is None:  # a map's key (its value has the key)
                self._keys += 1
                if self._keys > MAX_KEYS:
                    raise YamlProblem((), f"more than {MAX_KEYS} keys (the limit of one document)",
                                      self._next_line())
            self._composed += 1
            if self._composed > MAX_NODES:
                raise YamlProblem((), f"more than {MAX_NODES} values (the limit of one document)",
                                  self._next_line())
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _next_line(self) -> int:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return int(mark.line) + 1

    def construct_document(self, node: Node) -> Any:
        self._inspect(node, (), ())
        return super().construct_document(node)

    def _inspect(
        self, node: Node, path: KeyPath, stack: tuple[int, ...], key_literal: str | None = None
    ) -> None:
        self._visited += 1
        if self._visited > MAX_NODES:
            raise YamlProblem(path, f"more than {MAX_NODES} values with aliases expanded (the limit of one "
                              "document)", _line(node))
        if id(node) in stack:
            raise YamlProblem(path, "recursive alias", _line(node))
        self.node_info.setdefault(path, NodeInfo(_line(node), _plain_literal(node), key_literal))
        stack = (*stack, id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self._inspect(item, (*path, i), stack)
        elif isinstance(node, MappingNode):
            self._inspect_mapping(node, path, stack)

    def _inspect_mapping(self, node: MappingNode, path: KeyPath, stack: tuple[int, ...]) -> None:
        first_line: dict[Any, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                continue  # complex keys: the constructor reports what is wrong with them
            key = self.construct_object(key_node, deep=True)
            seg = key if isinstance(key, str) else str(key)
            line = _line(key_node)
            if key in first_line:
                problem = YamlProblem(
                    (*path, seg),
                    f"duplicate key {seg!r} at line {line} (first given at line {first_line[key]})",
                    line,
                )
                if self.tolerate is None or not self.tolerate((*path, seg)):
                    raise problem
                self.tolerated.append(problem)  # the constructor keeps the last one, as PyYAML does
            first_line.setdefault(key, line)
            self._inspect(value_node, (*path, seg), stack, None if isinstance(key, str) else key_node.value)
        # "<<: *anchor" merges: explicit keys win, so merged values only fill in what is missing
        for merged in merges:
            sources = merged.value if isinstance(merged, SequenceNode) else [merged]
            for source in sources:
                if isinstance(source, MappingNode):
                    for key_node, value_node in source.value:
                        if isinstance(key_node, ScalarNode):
                            key = self.construct_object(key_node, deep=True)
                            seg = key if isinstance(key, str) else str(key)
                            if key not in first_line:
                                self._inspect(value_node, (*path, seg), stack)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _plain_literal(node: Node) -> str | None:
    if isinstance(node, ScalarNode) and node.style is None:
        return str(node.value)
    return None


def parse_yaml(
    text: str, source: str, tolerate: Tolerate | None = None
) -> tuple[Any, dict[KeyPath, NodeInfo], list[ConfigError]]:
    """Parse one YAML document of any shape: ``(value, node info, errors)``; value is None on errors.
    Never raises: a text over ``MAX_BYTES``, and any failure of the loader, is an error naming ``source``.
    A duplicate key ``tolerate`` takes is no error: the last one counts."""
    value, nodes, errors, _ = _parse(text, source, tolerate)
    return value, nodes, errors


def _parse(
    text: str, source: str, tolerate: Tolerate | None
) -> tuple[Any, dict[KeyPath, NodeInfo], list[ConfigError], list[ConfigError]]:
    """``parse_yaml``, and the duplicate keys ``tolerate`` took, as warnings (at most ``MAX_DUPLICATES``
    and one counting the rest)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        return None, {}, [ConfigError(source, DOCUMENT, too_large(size))], []
    loader: StrictLoader | None = None
    try:
        loader = StrictLoader(text, tolerate)  # the reader checks every character here
        value = loader.get_single_data()
        return value, loader.node_info, [], _duplicate_warnings(loader.tolerated, source)
    except YamlProblem as exc:
        message = (
            exc.message if exc.line is None or "line " in exc.message else f"{exc.message} (line {exc.line})"
        )
        return None, {}, [ConfigError(source, format_path(exc.path) or DOCUMENT, message, exc.line)], []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        where = f" at line {line}, column {int(mark.column) + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "invalid YAML"
        message = f"YAML syntax error{where}: {what}"
        if "expected a single document" in (exc.context or ""):
            message = f"more than one YAML document (---){where}: give one document per file"
        return None, {}, [ConfigError(source, DOCUMENT, message, line)], []
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        message = f"YAML syntax error at line {line}, column {column}: unacceptable {what}: {exc.reason}"
        return None, {}, [ConfigError(source, DOCUMENT, message, line)], []
    except yaml.YAMLError as exc:
        return None, {}, [ConfigError(source, DOCUMENT, f"YAML error: {exc}")], []
    except ValueError as exc:  # a constructor's own limit, such as an integer with thousands of digits
        digits = sys.get_int_max_str_digits()
        message = (f"an integer with more than {digits} digits (the limit)" if "integer string conversion"
                   in str(exc) else f"cannot read a value: {exc}")
        return None, {}, [ConfigError(source, DOCUMENT, message)], []
    except Exception as exc:  # RecursionError, MemoryError...: the input's error, not a crash
        why = f"cannot be read: {type(exc).__name__}: {exc}"[:500]
        return None, {}, [ConfigError(source, DOCUMENT, why)], []
    finally:
        if loader is not None:
            loader.dispose()


def _duplicate_warnings(tolerated: list[YamlProblem], source: str) -> list[ConfigError]:
    warnings = [
        ConfigError(source, format_path(p.path) or DOCUMENT,
                    f"{p.message}: the last one counts, as YAML readers take it (corral ignores this key)",
                    p.line)
        for p in tolerated[:MAX_DUPLICATES]
    ]
    if len(tolerated) > MAX_DUPLICATES:
        warnings.append(ConfigError(source, DOCUMENT, f"{len(tolerated) - MAX_DUPLICATES} more duplicate "
                                    "keys under keys corral ignores: the last of each counts"))
    return warnings


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def load_document(
    text: str, source: str, tolerate: Tolerate | None = None
) -> tuple[Document | None, list[ConfigError]]:
    """Parse one cloud-config document. An empty document is an empty mapping; a top level that is
    not a mapping, a syntax error or a duplicate key are errors on the key path ``(document)`` or on
    the duplicated key (a duplicate ``tolerate`` takes is in the document's ``duplicates``, the last one
    counting). A document larger than ``MAX_BYTES`` is an error."""
    data, nodes, errors, duplicates = _parse(text, source, tolerate)
    if errors:
        return None, errors
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the scalar {data!r:.40}"
        return None, [
            ConfigError(source, DOCUMENT, f"the top level must be a mapping of keys, got {kind} (line 1)", 1)
        ]
    return Document(source, data, nodes, duplicates), []


def too_large(size: int | None = None) -> str:
    got = f" ({size} bytes)" if size is not None else ""
    return f"too large{got}: a config document is at most {MAX_BYTES} bytes (1 MiB)"


def decode_config(data: bytes, source: str) -> tuple[str | None, list[ConfigError]]:
    """The text of a config document read as bytes: UTF-8 and at most ``MAX_BYTES``, else an error
    naming the line of the first byte that is not UTF-8."""
    if len(data) > MAX_BYTES:
        return None, [ConfigError(source, DOCUMENT, too_large())]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        message = (
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, column {column} ({exc.reason}); "
            "save the file as UTF-8"
        )
        return None, [ConfigError(source, DOCUMENT, message, line)]


def read_config_file(path: Path, source: str | None = None) -> tuple[str | None, list[ConfigError]]:
    """Read a config file, bounded (``decode_config``); errors name ``source`` (default: the path).
    FileNotFoundError passes through: a missing file is for the caller to judge."""
    name = str(path) if source is None else source
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return None, [ConfigError(name, DOCUMENT, f"cannot read: {exc.strerror or exc}")]
    return decode_config(data, name)
