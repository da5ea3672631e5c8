"""Config from the kernel command line: ``corral.a.b=value`` (or ``rancher.a.b=value``).

Syntax, as read from /proc/cmdline:
- ``corral.log.level=debug`` -> ``{"corral": {"log": {"level": "debug"}}}``; ``rancher.`` is an alias;
- a bare ``corral.debug`` means ``true``;
- values are typed like YAML scalars (``true``, ``10``, ``1.5``) except where the schema wants a
  string, which keeps the text as given; ``"..."`` quotes keep spaces and make a scalar a string;
- ``[a,b]`` or ``[a, b]`` is a list (spaces inside the brackets do not end the parameter);
- under maps with free-form keys and scalar values (``corral.sysctl``) the rest of the dotted name is
  one key: ``corral.sysctl.net.ipv4.ip_forward=1``;
- parameters not starting with ``corral.``/``rancher.`` are ignored; a later parameter wins;
- ``corral.slot=A|B`` is not config: GRUB puts it there on an installed disk (osdisk/bootmenu.py) to
  say which boot slot this is, and PID 1 reads it as such (supervisor/boot/slots.py); nor is
  ``corral.trial=1``, GRUB's mark of a trial's boot (supervisor/watchdog.py)."""

from __future__ import annotations

from typing import Any

import yaml

from supervisor.config.errors import ConfigError
from supervisor.config.keypath import KeyPath, Segment
from supervisor.config.merge import merge
from supervisor.config.schema import Schema, SchemaNode
from supervisor.config.yamlload import Document, NodeInfo

SOURCE = "cmdline"
PREFIXES = ("corral.", "rancher.")
# boot parameters in corral's namespace that are not config
NOT_CONFIG = frozenset({"corral.slot", "corral.trial"})


def split_params(text: str) -> list[str]:
    """Split a kernel command line into parameters: whitespace separates, except inside double
    quotes and, in ``corral.``/``rancher.`` parameters, inside ``[...]``."""
    params: list[str] = []
    cur: list[str] = []
    in_quote = False
    depth = 0
    for ch in text:
        if ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch == "[" and _is_ours("".join(cur).lstrip('"')):
            depth += 1
        elif not in_quote and ch == "]" and depth:
            depth -= 1
        elif ch.isspace() and not in_quote and not depth:
            if cur:
                params.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        params.append("".join(cur))
    return params


def _is_ours(param: str) -> bool:
    return param.startswith(PREFIXES)


def param_value(text: str, name: str) -> str | None:
    """The value of the last ``name=value`` parameter (quotes removed), or None."""
    found = None
    for param in split_params(text):
        key, sep, value = param.partition("=")
        if key.replace('"', "") == name and sep:
            found = value.replace('"', "")
    return found


def parse_cmdline(text: str, schema: Schema) -> tuple[Document, list[ConfigError]]:
    """The ``corral.*``/``rancher.*`` parameters of ``text`` as a config document (under ``corral``)."""
    data: dict[str, Any] = {}
    nodes: dict[KeyPath, NodeInfo] = {}
    errors: list[ConfigError] = []
    for param in split_params(text):
        if param.startswith('"') and param.endswith('"') and len(param) > 1:
            param = param[1:-1]  # the kernel accepts "name=value with spaces"
        name, sep, raw = param.partition("=")
        name = name.replace('"', "")
        if not _is_ours(name) or name in NOT_CONFIG:
            continue
        segs = name.split(".")[1:]
        if any(not s for s in segs):
            errors.append(ConfigError(SOURCE, name, "empty key segment (two dots in a row?)"))
            continue
        path = schema.join_free_keys(("corral", *segs))
        value = _typed(raw, schema, schema.at(path), path, nodes) if sep else True  # bare flag: true
        data = merge(data, _nest(path, value))
    return Document(SOURCE, data, nodes), errors


def _nest(path: tuple[Segment, ...], value: Any) -> dict[str, Any]:
    for seg in reversed(path):
        value = {seg: value}
    assert isinstance(value, dict)
    return value


def _typed(
    raw: str, schema: Schema, schemas: list[SchemaNode], path: KeyPath, nodes: dict[KeyPath, NodeInfo]
) -> Any:
    bare = raw.strip()
    if len(bare) >= 2 and bare[0] == bare[-1] == '"' and bare[1:-1].strip().startswith("["):
        bare = bare[1:-1].strip()  # "[a, b]": the quotes only keep the spaces
    if bare.startswith("[") and bare.endswith("]"):
        items = _split_items(bare[1:-1])
        return [
            _scalar(item, schema, schema.child(schemas, i), (*path, i), nodes) for i, item in enumerate(items)
        ]
    return _scalar(bare, schema, schemas, path, nodes)


def _split_items(inner: str) -> list[str]:
    if not inner.strip():
        return []
    items: list[str] = []
    cur: list[str] = []
    in_quote = False
    for ch in inner:
        if ch == '"':
            in_quote = not in_quote
        if ch == "," and not in_quote:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur).strip())
    return items


def _scalar(
    text: str, schema: Schema, schemas: list[SchemaNode], path: KeyPath, nodes: dict[KeyPath, NodeInfo]
) -> Any:
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    text = text.replace('"', "")
    if schema.expects_string(schemas) or text == "":
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool | int | float) or value is None:
        nodes[path] = NodeInfo(None, text)  # the walker checks octal/base-60 literals
        return value
    return text
