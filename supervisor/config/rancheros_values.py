"""RancherOS's values of keys corral has with another type: the one place they are read.

RancherOS typed ``rancher.log`` and ``rancher.state.wait`` as booleans (rancher/os ``config/types.go``:
``RancherConfig.Log``, ``StateConfig.Wait``; tests/compat_keys/rancheros-schema.json); corral's
``corral.log`` is a map and ``corral.state.wait`` a number of seconds. A boolean there is RancherOS's
value, not a mistake: every document is read through ``rancheros_values`` before it is validated
(supervisor/config/layers.py, so boot, reload, ``config validate``, ``set`` and ``merge`` give the same
verdict), which drops the boolean, so that corral's default holds, and gives a warning naming the key
and what corral does instead. ``rancher.`` and ``corral.`` are one key (the kernel command line and
``config set`` do not keep which one was written), so a boolean under either is taken so. Any other
value goes on to the schema as usual. ``python -m supervisor.gen_compat`` reads this table too
(docs/compatibility.md: warned)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from supervisor.config.errors import ConfigError
from supervisor.config.keypath import KeyPath, format_path, get_path, without
from supervisor.config.yamlload import Document

BOOLEANS: Mapping[KeyPath, str] = {
    ("corral", "log"): "corral always keeps its journal (corral logs); corral.log is a map (level, "
                       "max_bytes, keep), whose defaults hold",
    ("corral", "state", "wait"): "corral.state.wait is a number of seconds to wait for the state device: "
                                 "corral's default holds (0 s, 10 s when corral.state.required); give "
                                 "seconds to wait longer",
}
"""Key path in the merged config -> what corral does with RancherOS's boolean there."""


def message(path: KeyPath) -> str:
    """The warning's text for RancherOS's boolean at ``path``, a key of ``BOOLEANS``."""
    return f"RancherOS's boolean is ignored: {BOOLEANS[path]}"


def rancheros_values(doc: Document) -> tuple[Document, list[ConfigError]]:
    """``doc`` (``rancher:`` folded into ``corral:``) without RancherOS's booleans at the keys of
    ``BOOLEANS``, and a warning for each one it held."""
    data, nodes = doc.data, doc.nodes
    warnings: list[ConfigError] = []
    for path in BOOLEANS:
        try:
            value = get_path(data, path)
        except KeyError:
            continue
        if not isinstance(value, bool):
            continue
        warnings.append(ConfigError(doc.source, format_path(path), message(path), doc.line(path)))
        data = without(data, path)
        nodes = {p: info for p, info in nodes.items() if p[: len(path)] != path}
    if not warnings:
        return doc, []
    return replace(doc, data=data, nodes=nodes), warnings
