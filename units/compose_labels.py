"""A unit's labels, checked: compose's map or ``KEY=value`` list, and the meaning of corral's
``io.corral.*`` labels and their RancherOS ``io.rancher.os.*`` aliases (pure)."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Mapping
from typing import Any

from supervisor.config.check import as_str, describe
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath
from supervisor.config.suggest import closest, did_you_mean
from units.model import (
    CORRAL_LABELS,
    LABEL_AFTER,
    LABEL_BEFORE,
    LABEL_CREATEONLY,
    LABEL_ONESHOT,
    LABEL_RELOADCONFIG,
    LABEL_REQUIRES_MOUNT,
    LABEL_RESTART_MODE,
    LABEL_SCOPE,
    RANCHER_ALIASES,
    RANCHER_DETACH,
    RESERVED_LABELS,
    SCOPES,
    UNIT_NAME,
    USER_DOCKERD_UNIT,
)
from units.rancheros import BUILTINS, ordering_note

RESTART_MODES = ("restart", "replace")
SCOPE_ALIASES = tuple(k for k, v in RANCHER_ALIASES.items() if v == LABEL_SCOPE)


def parse_labels(p: Problems, value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if value is None:
        return out
    if isinstance(value, list):
        for i, item in enumerate(value):
            text = as_str(item, ("labels", i), p)
            if text is None:
                continue
            k, _, v = text.partition("=")
            if not k:
                p.error(("labels", i), f"bad label {text!r}: expected KEY=value")
            elif k in out:
                p.error(("labels", i), f"label {k} is given twice")
            else:
                out[k] = v
        return out
    if isinstance(value, dict):
        for k, v in value.items():
            path: KeyPath = ("labels", str(k))
            if not isinstance(k, str) or not k:
                p.error(path, f"label keys are strings, got {k!r}: quote it")
            elif v is None:
                out[k] = ""
            elif isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, str | int | float):
                out[k] = str(v)
            else:
                p.error(path, f"expected a string, got {describe(v)}")
        return out
    p.error(("labels",), f"expected a map (KEY: value) or a list (KEY=value), got {describe(value)}")
    return out


def corral_labels(
    p: Problems, name: str, labels: Mapping[str, str], known: Collection[str] | None = None
) -> dict[str, Any]:
    """Interpret io.corral.* labels and their io.rancher.os.* aliases. With ``known`` (the names of the
    units configured), an ordering target naming a RancherOS built-in unit that is not configured is
    resolved by ``units.rancheros``: dropped, with a warning unless corral already starts units after it."""
    for k in labels:
        if k in RESERVED_LABELS:
            p.error(
                ("labels", k), f"label {k} is set by corral on the unit's container; a unit may not set it"
            )
        elif k.startswith("io.corral.") and k not in CORRAL_LABELS:
            close = closest(k, CORRAL_LABELS)
            hint = f"; {did_you_mean(close)}" if close else f" (known here: {', '.join(CORRAL_LABELS)})"
            p.error(("labels", k), f"unknown corral label {k}{hint}", suggestion=close)

    def boolean(text: str, label: str) -> bool | None:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        p.error(("labels", label), f"label {label} must be true or false, got {text!r}")
        return None

    def scope(text: str, label: str) -> str | None:
        if text in SCOPES:
            return text
        p.error(("labels", label), f"label {label} must be system or user, got {text!r}")
        return None

    def names(text: str, label: str) -> frozenset[str] | None:
        items = [part.strip() for part in text.split(",")]
        items = [i for i in items if i]
        bad = [i for i in items if not UNIT_NAME.fullmatch(i)]
        if bad:
            p.error(("labels", label), f"label {label} must be comma-separated unit names, got {text!r}")
            return None
        if name in items:
            p.error(("labels", label), f"label {label}: unit {name!r} cannot be ordered against itself")
            return None
        if known is not None:
            items = [i for i in items if not _builtin_target(p, label, i, known)]
        return frozenset(items)

    def mount_paths(text: str, label: str) -> tuple[str, ...] | None:
        items = [part.strip() for part in text.split(",")]
        items = [i for i in items if i]
        if not items:
            p.error(("labels", label), f"label {label} needs one or more absolute paths, got {text!r}")
            return None
        relative = [i for i in items if not i.startswith("/")]
        if relative:
            p.error(("labels", label), f"label {label} needs absolute paths (comma-separated): "
                                     f"{relative[0]!r} is relative")
            return None
        return tuple(sorted({posixpath.normpath(i).replace("//", "/") for i in items}))

    def restart_mode(text: str, label: str) -> bool | None:
        mode = text.strip()
        if mode in RESTART_MODES:
            return mode == "replace"
        p.error(("labels", label), f"label {label} must be {' or '.join(RESTART_MODES)}, got {text!r}")
        return None

    interpret: dict[str, tuple[str, Callable[[str, str], Any]]] = {
        LABEL_SCOPE: ("scope", scope),
        LABEL_AFTER: ("after", names),
        LABEL_BEFORE: ("before", names),
        LABEL_ONESHOT: ("oneshot", boolean),
        LABEL_CREATEONLY: ("createonly", boolean),
        LABEL_RELOADCONFIG: ("reloadconfig", boolean),
        LABEL_REQUIRES_MOUNT: ("requires_mounts", mount_paths),
        LABEL_RESTART_MODE: ("replace", restart_mode),
    }
    out: dict[str, Any] = {}
    given_by: dict[str, str] = {}
    for label in (*CORRAL_LABELS, *RANCHER_ALIASES):
        if label not in labels:
            continue
        meaning = RANCHER_ALIASES.get(label, label)
        attr, parse = interpret[meaning]
        value = parse(labels[label], label)
        if value is None:
            continue
        if label == RANCHER_DETACH:
            value = not value
        if attr in out and out[attr] != value:
            p.error(("labels", label), f"label {label} conflicts with {given_by[attr]}")
            continue
        out[attr] = value
        given_by[attr] = label
    if out.get("oneshot") and out.get("createonly"):
        p.error(
            ("labels", given_by["createonly"]), "a createonly unit is never started: it cannot be oneshot"
        )
    if out.get("replace") and (out.get("oneshot") or out.get("createonly")):
        kind = "oneshot" if out.get("oneshot") else "createonly"
        p.error(("labels", LABEL_RESTART_MODE),
                f"{LABEL_RESTART_MODE}: replace is for a unit that keeps running; a {kind} unit is never "
                "restarted")
    return out


def _builtin_target(p: Problems, label: str, target: str, known: Collection[str]) -> bool:
    """Whether ``target`` of an ordering label is a RancherOS built-in that is not configured (then it
    is dropped, and a warning says what corral does instead when the order does not hold already)."""
    if target in known or target not in BUILTINS:
        return False
    note = ordering_note(target, before=RANCHER_ALIASES.get(label, label) == LABEL_BEFORE)
    if note is not None:
        p.warn(("labels", label), f"{target!r} is RancherOS's built-in unit: {note}")
    return True


def rancheros_scope(
    p: Problems, name: str, labels: Mapping[str, str], rancheros: bool, known: Collection[str] | None
) -> dict[str, Any]:
    """RancherOS ran a service without ``io.rancher.os.scope`` in the user dockerd, after its ``docker``
    service (rancher/os pkg/docker: the user client unless the scope is ``system``, and a link to
    ``docker``); corral's own default is the system dockerd. For a unit that is RancherOS's
    (``rancheros``: from a ``services_include`` URL or a RancherOS os-services file, or with an
    ``io.rancher.os.*`` label or RancherOS's variables such as ${REGISTRY_DOMAIN}) with no scope label,
    the fields that make it run where RancherOS ran it: scope ``user``, after ``docker`` when that unit
    is configured (``known``), and a note saying so (the journal's info line, status).
    When corral's user dockerd is not configured, a warning says the unit waits for it. Any other unit:
    nothing (corral's default)."""
    if not rancheros or any(k in labels for k in (LABEL_SCOPE, *SCOPE_ALIASES)):
        return {}
    note = "no io.rancher.os.scope label: runs in the user dockerd, as RancherOS ran it"
    out: dict[str, Any] = {"scope": "user"}
    if known is not None and USER_DOCKERD_UNIT in known and name != USER_DOCKERD_UNIT:
        out["after"] = frozenset({USER_DOCKERD_UNIT})
        note += f", after the unit {USER_DOCKERD_UNIT!r}"
    elif known is not None:
        p.warn(("labels",), f"{note}; corral's user dockerd (the unit {USER_DOCKERD_UNIT!r}) is not "
                            "configured, so the unit waits for it. Add io.rancher.os.scope: system to run "
                            "it in the system dockerd")
    out["notes"] = (f"{note} (io.rancher.os.scope: system runs it in the system dockerd)",)
    return out
