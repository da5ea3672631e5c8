"""The formats' own key sets, read from the files their projects publish (tests/compat_keys/ and
tests/cloud_init_schema/, SOURCES there): RancherOS's schema and netconf types, cloud-init's schemas of
cloud-config and network-config v1, netplan's doc/netplan-yaml.md. A key path is a tuple of segments;
``[]`` is each item of a list, ``NAME`` and ``<id>`` a name the user chooses."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
UPSTREAM = ROOT / "tests" / "compat_keys"
CLOUD_INIT = ROOT / "tests" / "cloud_init_schema"

ITEM = "[]"
"""A path segment: each item of a list."""
Path_ = tuple[str, ...]


def rancheros_keys() -> list[Path_]:
    """Every key of a RancherOS cloud-config: its schema.go's schema, and under ``rancher.network`` the
    interface and dns keys of its netconf types (the schema has them as any object)."""
    return list(rancheros_types())


def rancheros_types() -> dict[Path_, str | None]:
    """``rancheros_keys`` -> the JSON type RancherOS's schema gives each (None: not one scalar type)."""
    schema = json.loads((UPSTREAM / "rancheros-schema.json").read_text(encoding="utf-8"))
    structs = go_structs((UPSTREAM / "rancheros-netconf-types.go").read_text(encoding="utf-8"))
    out: dict[Path_, str | None] = {}

    def walk(node: Mapping[str, Any], path: Path_) -> None:
        ref = node.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            node = schema["definitions"][ref.rsplit("/", 1)[-1]]
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], (*path, ITEM))
            return
        for key, sub in node.get("properties", {}).items():
            kind = sub.get("type")
            out[(*path, key)] = kind if isinstance(kind, str) else None
            walk(sub, (*path, key))
        if path == ("rancher", "network"):
            out.update(
                {("rancher", "network", "interfaces", "NAME", k): None for k in structs["InterfaceConfig"]}
            )
            out.update({("rancher", "network", "dns", k): None for k in structs["DNSConfig"]})

    walk(schema, ())
    return out


def go_structs(text: str) -> dict[str, list[str]]:
    """A Go file's structs -> their fields' YAML names, in order."""
    out: dict[str, list[str]] = {}
    for name, body in re.findall(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
        out[name] = re.findall(r'yaml:"([^,"]+)', body)
    return out


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def cloud_init_keys() -> list[Path_]:
    """Every top-level key of cloud-init's cloud-config schema, and the keys under each (the module's
    own keys: ``write_files[].path``)."""
    schema = _json(CLOUD_INIT / "schema-cloud-config-v1.json")
    defs = schema.get("$defs", {})
    top: dict[str, Any] = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        top.update(defs.get(part.get("$ref", "").rsplit("/", 1)[-1], {}).get("properties", {}))
    out: list[Path_] = []

    def walk(node: Any, path: Path_, depth: int) -> None:
        if not isinstance(node, dict) or depth > 4:
            return
        ref = node.get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            walk(defs.get(ref.rsplit("/", 1)[-1]), path, depth + 1)
        for alt in (*node.get("oneOf", ()), *node.get("anyOf", ())):
            walk(alt, path, depth + 1)
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, ITEM) if path[-1:] != (ITEM,) else path, depth + 1)
        for key, sub in node.get("properties", {}).items():
            if (*path, key) not in out:
                out.append((*path, key))
            walk(sub, (*path, key), depth + 1)

    for key in sorted(top):
        out.append((key,))
        walk(top[key], (key,), 0)
    return out


NETPLAN_SECTIONS: Mapping[str, tuple[str, ...] | None] = {
    "Top-level configuration structure": None,
    "Properties for physical device types": ("ethernets", "wifis", "modems"),
    "Properties for all device types": (),
    "DHCP Overrides": (),
    "IPv6 Router Advertisement Overrides": (),
    "Routing": (),
    "Authentication": ("ethernets", "wifis"),
    "Back end-specific configuration parameters": (),
}
"""netplan-yaml.md's sections -> the device types whose keys they give (``()``: every type; None: the
top level); ``Properties for device type `X``` gives X's."""


@dataclass(frozen=True)
class NetplanKey:
    section: str
    types: tuple[str, ...] | None
    path: Path_


def netplan_device_types() -> list[str]:
    """The device types netplan-yaml.md has a section of (``Properties for device type `X```)."""
    text = (UPSTREAM / "netplan-yaml.md").read_text(encoding="utf-8")
    return re.findall(r"^## Properties for device type `([\w-]+)`", text, re.M)


def netplan_keys() -> list[NetplanKey]:
    """Every key netplan-yaml.md gives (a ``- **`key`**`` item, nested ones under it), by section."""
    text = (UPSTREAM / "netplan-yaml.md").read_text(encoding="utf-8")
    out: list[NetplanKey] = []
    section, types = "", NETPLAN_SECTIONS["Top-level configuration structure"]
    stack: list[tuple[int, list[Path_]]] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("## "):
            section = line[3:].strip()
            own = re.fullmatch(r"Properties for device type `([\w-]+)`", section)
            if own:
                types = (own.group(1),)
            elif section in NETPLAN_SECTIONS:
                types = NETPLAN_SECTIONS[section]
            else:
                raise ValueError(f"netplan-yaml.md: section {section!r} is not known here (NETPLAN_SECTIONS)")
            stack = []
            continue
        item = re.match(r"^( *)- \[?\*\*`", line)
        if not item:
            continue
        indent = len(item.group(1))
        names = re.findall(r"\*\*`([^`]+)`\*\*", line.split("(", 1)[0])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents = stack[-1][1] if stack else [()]
        paths = [(*parent, name) for parent in parents for name in names]
        out.extend(NetplanKey(section, types, path) for path in paths)
        stack.append((indent, paths))
    return out


def network_config_v1_keys() -> dict[str, list[Path_]]:
    """cloud-init's network-config v1: each ``config`` entry type's keys (``subnets`` and ``params``
    with the keys under them), and the document's own (``version``, ``config``) under ``""``."""
    defs = _json(CLOUD_INIT / "schema-network-config-v1.json")["$defs"]
    out: dict[str, list[Path_]] = {"": [(k,) for k in defs["network_config_version1"]["properties"]]}
    for name, node in defs.items():
        if not name.startswith("anyOf_type_"):
            continue
        keys: list[Path_] = []
        for key, sub in node.get("properties", {}).items():
            keys.append((key,))
            if key == "subnets":
                for skey in defs["config_type_subnet"]["properties"]:
                    keys.append((key, ITEM, skey))
                    if skey == "routes":
                        routes = defs["anyOf_type_route"]["properties"]
                        keys.extend((key, ITEM, skey, ITEM, rkey) for rkey in routes)
            keys.extend((key, pkey) for pkey in sub.get("properties", {}))
        out[name.removeprefix("anyOf_type_")] = keys
    return out
