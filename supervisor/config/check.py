"""The one validation style of the domain parsers: key tables and typed value helpers.

A parser walks its part of the config with these helpers and reports into one ``Problems`` collector
(``supervisor.config.errors``). Each helper takes ``(value, path, problems, ...)`` and returns the
value checked and normalised, or None after reporting one problem naming ``path``. Messages have one
shape everywhere:

- a wrong type: ``expected a string, got the number 5`` (``describe`` words the value);
- a wrong value: ``20 is out of range (68 to 65535)``, ``'fastest' is not one of: stop, ignore; did
  you mean 'stop'?`` (``show`` writes the value as YAML would);
- an unknown key: ``unknown key; did you mean 'corral.network.dns'?`` or ``unknown key (known here:
  ...)``; a key corral knows but does not implement: the message its ``Keys`` table gives.

``Keys`` declares one map's keys once: the parser checks maps against it and, for the sections whose
schema is generated (``python -m supervisor.gen_schema``), schema.json's definition is made from it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, TypeAlias

from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from supervisor.config.suggest import closest, did_you_mean

SchemaNode: TypeAlias = dict[str, Any]
IPInterface: TypeAlias = IPv4Interface | IPv6Interface
IPAddress: TypeAlias = IPv4Address | IPv6Address


# -- how values are written in messages ---------------------------------------------------------------


def show(value: Any) -> str:
    """A value as written in messages: strings quoted, others as YAML would read them."""
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(value: Any) -> str:
    """What a value is, for "expected X, got ...": its kind, and for a scalar the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r:.40}"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def out_of_range(value: float, low: float | None, high: float | None) -> str:
    """``20 is out of range (68 to 65535)``, ``-1 is out of range (0 or more)``: the one wording of a
    number outside its bounds (the schema validator's too)."""
    if low is not None and high is not None:
        bounds = f"{low} to {high}"
    else:
        bounds = f"{low} or more" if low is not None else f"{high} or less"
    return f"{value} is out of range ({bounds})"


# -- keys ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unsupported:
    """A key corral knows (netplan or RancherOS has it) but does not implement: the message says so."""

    message: str


@dataclass(frozen=True)
class Ignored:
    """A key corral accepts (netplan, cloud-init or RancherOS has it) but does not implement: it is a
    warning, never an error. The message names what corral does instead; any value is let through."""

    message: str


class Keys:
    """The keys of one map, declared once.

    ``keys`` maps each key to the JSON Schema of its structure (types, names: the parser checks the
    values and words their messages), to ``Unsupported`` (an error) or to ``Ignored`` (a warning).
    ``hints`` answer keys that are not there but people write (``dhcp4`` in RancherOS's format).
    ``name`` is the schema definition (``$defs`` entry) made from the table; ``nullable`` lets the map
    be empty (``eth0:`` with nothing under it); ``extra`` is more of the map's schema (``required``,
    ``minProperties``)."""

    def __init__(
        self,
        name: str,
        keys: Mapping[str, SchemaNode | Unsupported | Ignored],
        *,
        hints: Mapping[str, str] | None = None,
        nullable: bool = False,
        description: str | None = None,
        extra: SchemaNode | None = None,
    ) -> None:
        self.name = name
        self.keys = dict(keys)
        self.hints = dict(hints or {})
        self.nullable = nullable
        self.description = description
        self.extra = dict(extra or {})
        self.known = tuple(k for k, v in self.keys.items() if not isinstance(v, Unsupported | Ignored))
        self.unsupported = {k: v.message for k, v in self.keys.items() if isinstance(v, Unsupported)}
        self.ignored = {k: v.message for k, v in self.keys.items() if isinstance(v, Ignored)}

    def schema(self) -> SchemaNode:
        """This table as a JSON Schema object definition. A key corral does not implement is let
        through (any value), so that the parser's message about it is the one people see; so is a key
        it accepts and ignores (the parser warns)."""
        node: SchemaNode = {"type": ["object", "null"] if self.nullable else "object"}
        if self.description:
            node["description"] = self.description
        node["additionalProperties"] = False
        node.update(self.extra)
        node["properties"] = {
            k: {"description": v.message} if isinstance(v, Unsupported | Ignored) else v
            for k, v in self.keys.items()
        }
        return node


def integer(low: int | None = None, high: int | None = None) -> SchemaNode:
    """The schema of a whole number within ``low``..``high``: the bounds a parser gives ``as_int``
    are declared once and shared with the schema (``integer(*MTU)``, ``as_int(..., *MTU)``)."""
    node: SchemaNode = {"type": "integer"}
    if low is not None:
        node["minimum"] = low
    if high is not None:
        node["maximum"] = high
    return node


def check_keys(
    data: Mapping[Any, Any],
    path: KeyPath,
    problems: Problems,
    keys: Keys | Iterable[str],
    *,
    hints: Mapping[str, str] | None = None,
    what: str = "key",
    extensions: bool = False,
) -> None:
    """Every key of ``data`` is one of ``keys``. An unknown key is an error with a hint, or a "did you
    mean" naming the whole key path, or the keys known here; a key the table marks unsupported gets
    its message; a key the table marks ignored is a warning with its message. ``extensions``: ``x-*``
    keys are let through (YAML anchors' place, as in compose)."""
    if isinstance(keys, Keys):
        known, unsupported, hints = keys.known, keys.unsupported, {**keys.hints, **(hints or {})}
        ignored = keys.ignored
    else:
        known, unsupported, hints, ignored = tuple(keys), {}, dict(hints or {}), {}
    for key in data:
        if not isinstance(key, str):
            problems.error((*path, str(key)), f"{what} {show(key)} is not a string; quote it")
        elif key in unsupported:
            problems.error((*path, key), unsupported[key])
        elif key in ignored:
            problems.warn((*path, key), ignored[key])
        elif key not in known and not (extensions and key.startswith("x-")):
            message = f"unknown {what}"
            suggestion = None
            if key in hints:
                message += f"; {hints[key]}"
            elif (close := closest(key, known)) is not None:
                suggestion = problems.key((*path, close))
                message += f"; {did_you_mean(suggestion)}"
            elif known:
                message += f" (known here: {', '.join(sorted(known))})"
            problems.error((*path, key), message, suggestion=suggestion)


# -- containers ----------------------------------------------------------------------------------------


def as_map(value: Any, path: KeyPath, problems: Problems, what: str = "a map") -> Mapping[Any, Any] | None:
    """A map; nothing written (null) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.error(path, f"expected {what}, got {describe(value)}")
        return None
    return value


def as_list(value: Any, path: KeyPath, problems: Problems, what: str = "a list") -> list[Any] | None:
    """A list; nothing written (null) is an empty one."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        problems.error(path, f"expected {what}, got {describe(value)}")
        return None
    return list(value)


def as_strings(value: Any, path: KeyPath, problems: Problems, *, single: bool = False) -> list[str] | None:
    """A list of strings (``single``: one string is a list of one), or None when any item is not one."""
    if single and isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        problems.error(path, f"expected a list of strings, got {describe(value)}")
        return None
    out = [text for i, item in enumerate(value) if (text := as_str(item, (*path, i), problems)) is not None]
    return out if len(out) == len(value) else None


# -- scalars --------------------------------------------------------------------------------------------


def as_str(value: Any, path: KeyPath, problems: Problems, *, numbers: bool = False) -> str | None:
    """A string (``numbers``: a number is taken as its text, as compose takes ``user: 1000``)."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    problems.error(path, f"expected a string, got {describe(value)}")
    return None


def as_bool(value: Any, path: KeyPath, problems: Problems, *, strings: bool = False) -> bool | None:
    """true or false (``strings``: also the text "true"/"false", as RancherOS's command line gives it)."""
    if isinstance(value, bool):
        return value
    if strings and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    problems.error(path, f"expected a boolean (true or false), got {describe(value)}")
    return None


def as_int(
    value: Any,
    path: KeyPath,
    problems: Problems,
    low: int | None = None,
    high: int | None = None,
    *,
    strings: bool = False,
    what: str = "",
) -> int | None:
    """A whole number within ``low``..``high`` (either may be open). ``strings``: digits written as a
    string count too (RancherOS's ``mtu: "1500"``). ``what`` is added to the message (`` (a VLAN id)``)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif strings and isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None:
        problems.error(path, f"expected a whole number, got {describe(value)}{what}")
        return None
    if (low is not None and number < low) or (high is not None and number > high):
        problems.error(path, f"{out_of_range(number, low, high)}{what}")
        return None
    return number


def as_number(
    value: Any,
    path: KeyPath,
    problems: Problems,
    low: float | None = None,
    high: float | None = None,
    *,
    what: str = "a number",
) -> float | None:
    """A number (whole or not) within ``low``..``high``; ``what`` names it (``a number of seconds``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.error(path, f"expected {what}, got {describe(value)}")
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        problems.error(path, out_of_range(value, low, high))
        return None
    return float(value)


def as_enum(value: Any, path: KeyPath, problems: Problems, choices: Iterable[str]) -> str | None:
    """One of ``choices``; a misspelt one gets a "did you mean"."""
    options = tuple(choices)
    if isinstance(value, str) and value in options:
        return value
    message = f"{show(value)} is not one of: {', '.join(options)}"
    suggestion = closest(value, options) if isinstance(value, str) else None
    if suggestion is not None:
        message += f"; {did_you_mean(suggestion)}"
    problems.error(path, message, suggestion=suggestion)
    return None


def as_absolute(value: Any, path: KeyPath, problems: Problems) -> str | None:
    """An absolute path (as written: normalising is the caller's business)."""
    text = as_str(value, path, problems)
    if text is not None and not text.startswith("/"):
        problems.error(path, f"{show(text)} is not an absolute path")
        return None
    return text


def as_ip_address(
    value: Any, path: KeyPath, problems: Problems, family: int | None = None
) -> IPAddress | None:
    """An IP address, of ``family`` (4 or 6) when given."""
    example = {4: "10.0.0.1", 6: "fe80::1", None: "10.0.0.1"}[family]
    kind = {4: "an IPv4 address", 6: "an IPv6 address", None: "an IP address"}[family]
    if not isinstance(value, str):
        problems.error(path, f"{show(value)} is not {kind} (expected {example})")
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        problems.error(path, f"{show(value)} is not {kind} (expected {example})")
        return None
    if family is not None and address.version != family:
        problems.error(path, f"{show(value)} is not {kind}")
        return None
    return address


def as_ip_interface(value: Any, path: KeyPath, problems: Problems) -> IPInterface | None:
    """An address with its prefix length (``10.0.0.2/24``)."""
    if not isinstance(value, str):
        problems.error(path, f"{show(value)} is not an IP interface (expected 10.0.0.2/24)")
        return None
    if "/" not in value:
        try:
            ipaddress.ip_address(value.strip())
        except ValueError:
            problems.error(path, f"{show(value)} is not an IP interface (expected 10.0.0.2/24)")
        else:
            problems.error(
                path, f"{show(value)} has no prefix length (expected {value.strip()}/24 or similar)"
            )
        return None
    try:
        return ipaddress.ip_interface(value.strip())
    except ValueError:
        problems.error(path, f"{show(value)} is not an IP interface (expected 10.0.0.2/24)")
        return None
