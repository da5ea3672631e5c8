"""A unit's ``environment:``, resolved against ``corral.environment`` the way RancherOS did it.

- ``NAME=value`` (list) or ``NAME: value`` (map) sets NAME.
- A bare ``NAME`` (list) or ``NAME:`` with no value (map) takes NAME from ``corral.environment``; when it
  is not there the variable is left out.
- ``PREFIX*`` takes every variable of ``corral.environment`` whose name starts with PREFIX.
- A ``corral.environment`` key ``UNIT/NAME`` applies to that unit only and wins over plain ``NAME``
  (RancherOS looked up ``service/NAME`` first, then ``NAME``; likewise for wildcards).

An explicit value wins over a looked-up one; the same name given explicitly twice is an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supervisor.config.check import describe
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath


def lookup(unit: str, pattern: str, environment: Mapping[str, str]) -> dict[str, str]:
    """What a bare NAME or PREFIX* entry of ``unit`` resolves to (possibly nothing)."""
    for scoped in (True, False):
        prefix = f"{unit}/" if scoped else ""
        if pattern.endswith("*"):
            start = prefix + pattern[:-1]
            found = {
                key.removeprefix(prefix): value
                for key, value in environment.items()
                if key.startswith(start) and (scoped or "/" not in key)
            }
            if found:
                return found
        elif prefix + pattern in environment:
            return {pattern: environment[prefix + pattern]}
    return {}


def _check_name(name: str, wildcard_ok: bool) -> str | None:
    if not name:
        return "empty variable name"
    if "=" in name or any(ch.isspace() or ch == "\0" for ch in name):
        return f"bad variable name {name!r}"
    if "*" in name and not (wildcard_ok and name.endswith("*") and name.count("*") == 1):
        return f"bad variable name {name!r}: '*' is allowed only at the end of a bare name (PREFIX*)"
    return None


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def resolve(
    unit: str, value: Any, environment: Mapping[str, str], path: KeyPath, problems: Problems
) -> tuple[tuple[str, str], ...]:
    """Resolve one unit's ``environment:`` value into sorted (name, value) pairs; what is wrong goes to
    ``problems``."""
    explicit: dict[str, str] = {}
    looked_up: dict[str, str] = {}

    def set_explicit(name: str, text: str, where: KeyPath) -> None:
        if name in explicit:
            problems.error(where, f"variable {name} is given twice")
        explicit[name] = text

    if value is None:
        return ()
    if isinstance(value, list):
        for i, item in enumerate(value):
            where = (*path, i)
            if not isinstance(item, str):
                problems.error(where, f"expected a string NAME=value or NAME, got {describe(item)}")
                continue
            name, eq, text = item.partition("=")
            bad = _check_name(name, wildcard_ok=not eq)
            if bad:
                problems.error(where, bad)
            elif eq:
                set_explicit(name, text, where)
            else:
                looked_up.update(lookup(unit, name, environment))
    elif isinstance(value, dict):
        for name, item in value.items():
            where = (*path, str(name))
            if not isinstance(name, str):
                problems.error(where, f"variable names are strings, got {name!r}: quote it")
                continue
            bad = _check_name(name, wildcard_ok=item is None)
            if bad:
                problems.error(where, bad)
            elif item is None:
                looked_up.update(lookup(unit, name, environment))
            elif (scalar := _scalar(item)) is None:
                problems.error(where, f"expected a string, number or boolean, got {describe(item)}")
            else:
                set_explicit(name, scalar, where)
    else:
        problems.error(path, f"expected a list (NAME=value) or a map (NAME: value), got {describe(value)}")
    merged = {**looked_up, **explicit}
    return tuple(sorted(merged.items()))
