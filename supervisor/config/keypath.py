"""Key paths: ``("write_files", 0, "permissions")`` <-> ``write_files[0].permissions``.

Segments that are not plain identifiers (a sysctl such as ``net.ipv4.ip_forward``) are written in
brackets and quoted: ``corral.sysctl["net.ipv4.ip_forward"]``."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

Segment = str | int
KeyPath = tuple[Segment, ...]

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Sequence[Segment]) -> str:
    """Render a key path for humans; the empty path is the document itself."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _PLAIN.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def parse_path(text: str) -> KeyPath:
    """Parse what ``format_path`` writes. Raises ValueError naming what is wrong."""
    segs: list[Segment] = []
    i, n = 0, len(text)
    expect_name = True  # at start or after "."
    if not text:
        raise ValueError("empty key path")
    while i < n:
        ch = text[i]
        if ch == "[":
            end = _bracket_end(text, i)
            inner = text[i + 1 : end]
            if inner.isdigit():
                segs.append(int(inner))
            elif inner.startswith('"'):
                try:
                    value = json.loads(inner)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"bad quoted key {inner}") from exc
                if not isinstance(value, str):
                    raise ValueError(f"bad quoted key {inner}")
                segs.append(value)
            else:
                raise ValueError(f"bad index [{inner}]: use a number or a quoted key")
            i = end + 1
            expect_name = False
        elif ch == ".":
            if expect_name:
                raise ValueError(f"empty key segment in {text!r}")
            i += 1
            expect_name = True
            if i == n:
                raise ValueError(f"key path {text!r} ends with '.'")
        else:
            if not expect_name:
                raise ValueError(f"expected '.' or '[' at {text[i:]!r}")
            m = re.compile(r"[^.\[\]]+").match(text, i)
            if m is None:
                raise ValueError(f"unexpected {ch!r} in key path")
            segs.append(m.group())
            i = m.end()
            expect_name = False
    return tuple(segs)


def _bracket_end(text: str, start: int) -> int:
    in_quote = False
    i = start + 1
    while i < len(text):
        ch = text[i]
        if in_quote and ch == "\\":
            i += 2
            continue
        if ch == '"':
            in_quote = not in_quote
        elif ch == "]" and not in_quote:
            return i
        i += 1
    raise ValueError(f"unclosed '[' in {text!r}")


_MISSING = object()


def get_path(data: Any, path: Sequence[Segment]) -> Any:
    """The value at ``path``; KeyError (naming the path) when it is absent."""
    cur = data
    for depth, seg in enumerate(path):
        present = (isinstance(seg, int) and isinstance(cur, list) and -len(cur) <= seg < len(cur)) or (
            isinstance(seg, str) and isinstance(cur, dict) and seg in cur
        )
        if not present:
            raise KeyError(format_path(path[: depth + 1]))
        cur = cur[seg]
    return cur


def without(data: Any, path: Sequence[Segment]) -> Any:
    """A copy of ``data`` without the key at ``path`` (string segments only), and without the maps
    that this leaves empty; KeyError (naming the path) when it is absent."""
    get_path(data, path)
    if not path:
        return {}
    head, rest = path[0], path[1:]
    if not isinstance(head, str) or not isinstance(data, dict):
        raise ValueError("a list element cannot be removed on its own: set the whole list")
    out = dict(data)
    if rest:
        inner = without(data[head], rest)
        if inner == {}:
            del out[head]
        else:
            out[head] = inner
    else:
        del out[head]
    return out


def nested(path: Sequence[Segment], value: Any) -> Any:
    """A document holding ``value`` at ``path`` (string segments only: lists are replaced whole)."""
    for seg in reversed(path):
        if not isinstance(seg, str):
            raise ValueError("a list index cannot be set on its own: set the whole list")
        value = {seg: value}
    return value
