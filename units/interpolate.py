"""``$VAR`` and ``${VAR}`` in a unit's values, replaced the way RancherOS's compose (libcompose) did it
(pure).

Every string value of a service, at any depth (``image``, ``command``, list items, ``environment`` and
``labels`` values; never a map's keys), is scanned once:

- ``$$`` is a literal ``$``;
- ``$NAME`` and ``${NAME}`` (NAME: letters, digits and ``_``, not starting with a digit) are replaced by
  the variable's value: ``corral.environment``'s ``UNIT/NAME``, else its ``NAME``, else RancherOS's
  default (``DEFAULTS``: ``REGISTRY_DOMAIN=docker.io``, ``SUFFIX``, ...);
- ``${NAME:-default}`` (unset or empty: default) and ``${NAME-default}`` (unset: default), as
  docker-compose has them (libcompose had not);
- a variable that is not set is replaced by the empty string, with a warning naming it (libcompose's
  "The X variable is not set. Substituting a blank string.");
- any other ``$`` (``$`` at the end, ``${}``, ``${A B}``, ``$1``) is an error: libcompose's "invalid
  interpolation format".

So a ``$`` meant for a shell is written ``$$`` (``command: sh -c 'echo $$HOME'``), as in compose files."""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from typing import Any

from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}")

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm"}


def rancher_defaults(machine: str | None = None, kernel: str | None = None) -> dict[str, str]:
    """RancherOS's own ``rancher.environment`` (its os-config.tpl.yml: ``REGISTRY_DOMAIN: docker.io``,
    ``SUFFIX``: empty on amd64, ``_ARCH`` elsewhere) and what it added at boot (``KERNEL_VERSION``, from
    the running kernel), plus ``ARCH``. RancherOS's ``VERSION`` (its own release, naming its own images)
    has no meaning here and is left out: a service using it gets the unset-variable warning."""
    uname = platform.uname()
    arch = _ARCHES.get(machine or uname.machine, machine or uname.machine)
    return {
        "REGISTRY_DOMAIN": "docker.io",
        "ARCH": arch,
        "SUFFIX": "" if arch == "amd64" else f"_{arch}",
        "KERNEL_VERSION": kernel if kernel is not None else uname.release,
    }


DEFAULT_NAMES = ("REGISTRY_DOMAIN", "ARCH", "SUFFIX", "KERNEL_VERSION")


class Substitution:
    """One unit's variables: looks NAME up as ``UNIT/NAME``, ``NAME``, then the defaults; remembers the
    defaults it used (``used_defaults``): a unit using them is RancherOS's, run where RancherOS ran it
    (``units.compose``)."""

    def __init__(self, unit: str, environment: Mapping[str, str], defaults: Mapping[str, str]) -> None:
        self.unit = unit
        self.environment = environment
        self.defaults = defaults
        self.used_defaults: set[str] = set()

    def lookup(self, name: str) -> str | None:
        for key in (f"{self.unit}/{name}", name):
            value = self.environment.get(key)
            if isinstance(value, str):
                return value
        if name in self.defaults:
            self.used_defaults.add(name)
            return self.defaults[name]
        return None


def substitute(text: str, variables: Substitution, path: KeyPath, p: Problems) -> str | None:
    """``text`` with its variables replaced; None (and an error in ``p``) when a ``$`` is malformed."""
    if "$" not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:dollar])
        rest = dollar + 1
        if text.startswith("$", rest):
            out.append("$")
            pos = rest + 1
            continue
        braced = _BRACED.match(text, rest)
        plain = _NAME.match(text, rest)
        if braced is not None:
            name, op, default = braced.group(1), braced.group(2), braced.group(3)
            pos = braced.end()
        elif plain is not None:
            name, op, default = plain.group(0), None, None
            pos = plain.end()
        else:
            p.error(path, f"invalid interpolation format in {text!r} at character {dollar + 1}: use $NAME, "
                          "${NAME}, ${NAME:-default}, or $$ for a literal $")
            return None
        value = variables.lookup(name)
        if (op == ":-" and not value) or (op == "-" and value is None):
            value = default or ""
        elif value is None:
            p.warn(path, f"variable {name} is not set: substituting an empty string "
                         f"(set corral.environment.{name})")
            value = ""
        out.append(value)


def interpolate(body: Any, variables: Substitution, p: Problems, path: KeyPath = ()) -> Any:
    """``body`` with every string value substituted (a new value; maps keep their keys). Problems go to
    ``p`` under the value's key path."""
    if isinstance(body, str):
        result = substitute(body, variables, path, p)
        return body if result is None else result
    if isinstance(body, list):
        return [interpolate(item, variables, p, (*path, i)) for i, item in enumerate(body)]
    if isinstance(body, dict):
        return {k: interpolate(v, variables, p, (*path, str(k))) for k, v in body.items()}
    return body
