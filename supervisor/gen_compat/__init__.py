"""docs/compatibility.md: every key of RancherOS, cloud-init and netplan, and what corral does with it.

Each format's key set is its own project's (kept in tests/ with SOURCES: RancherOS's ``config/schema.go``
and ``pkg/netconf/types.go``, cloud-init's JSON Schemas of cloud-config and network-config v1,
netplan's ``doc/netplan-yaml.md``). Each key's verdict comes from what corral's parsers use: the config
schema as ``python -m supervisor.gen_schema`` makes it (schema.json with the domain parsers' ``Keys``
tables), those ``Keys`` tables themselves (``Ignored``: a warning, ``Unsupported``: an error) and
``supervisor.compat.NOT_IMPLEMENTED`` (a warning naming what corral does instead)::

    python -m supervisor.gen_compat          # write docs/compatibility.md
    python -m supervisor.gen_compat --check  # exit 1 when it is out of date

A key is **applied** (corral acts on it), **warned** (accepted, a warning says what corral does
instead) or **rejected** (an error: unknown to corral, or known and refused). Keys a parser's table has
that its format's list does not are named in ``ADDITIONS`` (a test holds both ways)."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from netconf import network_config
from supervisor.config.check import Keys
from supervisor.config.errors import Problems
from supervisor.config.rancheros_values import BOOLEANS
from supervisor.config.rancheros_values import message as boolean_message
from supervisor.gen_compat.judge import Judge, Verdict, all_tables
from supervisor.gen_compat.upstream import (
    ITEM,
    ROOT,
    Path_,
    cloud_init_keys,
    netplan_device_types,
    netplan_keys,
    network_config_v1_keys,
    rancheros_keys,
    rancheros_types,
)

DOC = ROOT / "docs" / "compatibility.md"

__all__ = [
    "ADDITIONS",
    "BY_CODE",
    "CORRAL_TABLES",
    "DOC",
    "ITEM",
    "NETPLAN_PATHS",
    "Judge",
    "Verdict",
    "all_tables",
    "build",
    "cloud_init_keys",
    "cloud_init_rows",
    "main",
    "netplan_device_types",
    "netplan_keys",
    "netplan_rows",
    "network_config_v1_keys",
    "rancheros_keys",
    "rancheros_rows",
    "rancheros_types",
    "render",
    "unlisted",
    "v1_rows",
]


# -- verdicts ---------------------------------------------------------------------------------------------


def shown(path: Path_) -> str:
    """A key path as the tables write it: ``write_files[].path``, ``interfaces.NAME.dhcp``."""
    text = ""
    for seg in path:
        text += seg if seg == ITEM or not text else f".{seg}"
    return text


def collapse(judged: Iterable[tuple[Path_, Verdict]]) -> list[tuple[Path_, Verdict]]:
    """The rows worth a line: a key under a rejected one is rejected with it, a key under a warned one
    with the same message is warned with it; such keys are left out."""
    seen: dict[Path_, Verdict] = {}
    out: list[tuple[Path_, Verdict]] = []
    for path, verdict in judged:
        parent = next((seen[path[:n]] for n in range(len(path) - 1, 0, -1) if path[:n] in seen), None)
        seen[path] = verdict
        if parent is not None and (
            parent.kind == "rejected" or (parent.kind == "warned" and parent == verdict)
        ):
            seen[path] = parent
            continue
        out.append((path, verdict))
    return out


_DOCS_OF = {"network": "networking.md", "state": "storage.md", "services": "units.md#rancheros-service-files"}


SCALARS = ("boolean", "integer", "string")
_WORDS = {
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a map",
    "array": "a list",
    "null": "nothing",
}


def rancheros_rows(judge: Judge) -> list[tuple[Path_, Verdict]]:
    """RancherOS's keys, each judged as the ``corral.`` key it is. A key corral has whose value RancherOS
    typed otherwise is rejected as RancherOS wrote it, unless corral reads RancherOS's value there
    (supervisor/config/rancheros_values.py: ``rancher.log: true`` is a warning)."""
    judged = []
    for path, ros_type in rancheros_types().items():
        corral = ("corral", *path[1:]) if path[:1] == ("rancher",) else path
        verdict = judge(corral)
        takes = judge.node.get("type") if verdict.kind == "applied" and isinstance(judge.node, dict) else None
        allowed = {takes} if isinstance(takes, str) else set(takes or ())
        if "number" in allowed:
            allowed.add("integer")
        if ros_type == "boolean" and corral in BOOLEANS:
            verdict = Verdict("warned", boolean_message(corral))
        elif ros_type in SCALARS and allowed and ros_type not in allowed:
            verdict = Verdict(
                "rejected",
                f"RancherOS's value is {_WORDS[ros_type]}; corral's `{shown(corral)}` takes "
                f"{' or '.join(_WORDS.get(t, t) for t in sorted(allowed))}, "
                f"so {_WORDS[ros_type]} is an error",
            )
        elif verdict.kind == "applied" and corral != path:
            where = _DOCS_OF.get(corral[1], "config.md#keys") if len(corral) > 1 else "config.md#keys"
            note = f"as [`{shown(corral)}`]({where})"
            verdict = Verdict("applied", f"{note}: {verdict.note}" if verdict.note else note)
        judged.append((path, verdict))
    return collapse(judged)


def cloud_init_rows(judge: Judge) -> list[tuple[Path_, Verdict]]:
    return collapse((path, judge(path)) for path in cloud_init_keys())


NETPLAN_PATHS: Mapping[Path_, Path_] = {
    ("addresses", "lifetime"): ("addresses", ITEM, "<address>", "lifetime"),
    ("addresses", "label"): ("addresses", ITEM, "<address>", "label"),
}
"""netplan-yaml.md's key path -> where it sits in a document (an address's options are under the
address, in a list)."""
BY_CODE: Mapping[tuple[str, Path_], Verdict] = {
    ("netplan", ("addresses", ITEM, "<address>", "lifetime")): Verdict(
        "warned",
        "address options (lifetime, label) are not implemented; the address is added without them "
        "(permanent, no label)",
    ),
    ("netplan", ("addresses", ITEM, "<address>", "label")): Verdict(
        "warned",
        "address options (lifetime, label) are not implemented; the address is added without them "
        "(permanent, no label)",
    ),
}
"""Keys a parser reads by code, not through a key table: their verdict, as the parser gives it (a test
feeds each one to the parser and checks)."""


@dataclass(frozen=True)
class NetplanRow:
    section: str
    path: Path_
    """The key path as netplan-yaml.md gives it."""
    verdicts: tuple[tuple[str, Verdict], ...]
    """(device type, verdict), or ("", verdict) at the top level."""
    where: Path_ = ()
    """The key path as it sits in a definition (``routes[].to``); the top level's: ``path``."""


def netplan_rows(judge: Judge) -> list[NetplanRow]:
    keys = netplan_keys()
    top = {k.path[0]: judge(("network", *k.path)) for k in keys if k.types is None}
    device_types = netplan_device_types()
    applied_types = [t for t in device_types if top[t].kind == "applied"]
    rows: list[NetplanRow] = []
    done: set[tuple[tuple[str, ...], Path_]] = set()
    judged: dict[str, list[tuple[Path_, Verdict]]] = {}
    for key in keys:
        if key.types is None:
            rows.append(NetplanRow(key.section, key.path, (("", top[key.path[0]]),), key.path))
            continue
        types = tuple(t for t in (key.types or applied_types) if t in applied_types)
        if not types or (types, key.path) in done:
            continue
        done.add((types, key.path))
        verdicts = []
        path = NETPLAN_PATHS.get(key.path, key.path)
        where = path
        for device in types:
            verdict = BY_CODE.get(("netplan", path)) or judge(("network", device, "<id>", *path))
            if ("netplan", path) not in BY_CODE and judge.walked[-1:] == path[-1:]:
                where = judge.walked[3:]  # with the lists stepped into: routes[].to
            verdicts.append((device, verdict))
            judged.setdefault(device, []).append((key.path, verdict))
        rows.append(NetplanRow(key.section, key.path, tuple(verdicts), where))
    kept = {(device, path) for device, pairs in judged.items() for path, _ in collapse(pairs)}
    return [
        row
        for row in rows
        if row.verdicts[0][0] == "" or any((device, row.path) in kept for device, _ in row.verdicts)
    ]


def v1_rows(judge: Judge) -> dict[str, list[tuple[Path_, Verdict]]]:
    """cloud-init network-config v1, by entry type: the translator's key tables (``V1_KEYS``,
    ``SUBNET``, ``SUBNET_ROUTE``) and its bond and bridge parameter translations."""
    out: dict[str, list[tuple[Path_, Verdict]]] = {}
    for kind, paths in network_config_v1_keys().items():
        judged = []
        for path in paths:
            judged.append((path, _v1_verdict(judge, kind, path)))
        out[kind] = collapse(judged)
    return out


def _table_verdict(judge: Judge, table: Keys, key: str) -> Verdict:
    if key in table.keys:
        judge.visited.add((table.name, key))
    if key in table.ignored:
        return Verdict("warned", table.ignored[key])
    if key in table.unsupported:
        return Verdict("rejected", table.unsupported[key])
    if key in table.known:
        return Verdict("applied")
    return Verdict("rejected", "unknown key")


def _v1_verdict(judge: Judge, kind: str, path: Path_) -> Verdict:
    if kind == "":  # the document's own keys: the top level of the config's `network:`
        return judge(("network", *path))
    if len(path) == 1:
        return _table_verdict(judge, network_config.V1_KEYS[kind], path[0])
    if path[0] == "subnets":  # subnets[].KEY, subnets[].routes[].KEY
        if len(path) == 3:
            return _table_verdict(judge, network_config.SUBNET, path[2])
        return _table_verdict(judge, network_config.SUBNET_ROUTE, path[4])
    if path[0] == "params":
        problems = Problems("probe")
        translate = network_config._bond_params if kind == "bond" else network_config._bridge_params
        out = translate({path[1]: "1"}, ("params",), problems)
        if problems.warnings:
            return Verdict("warned", problems.warnings[0].message)
        return Verdict("applied", f"as netplan's `{', '.join(out)}`" if kind == "bond" or out else "")
    return Verdict("rejected", "unknown key")


# -- what the parsers' tables have beyond the formats' own lists -------------------------------------------

_NETPLAN_OVS = (
    "netplan-yaml.md lists it with the physical devices; corral's table has it for every device type"
)
ADDITIONS: Mapping[tuple[str, str], str] = {
    **{
        (f"network_netplan_{kind}", "openvswitch"): _NETPLAN_OVS
        for kind in ("bond", "bridge", "vlan", "dummy")
    },
    (
        "network_netplan",
        "openvswitch",
    ): "netplan's global Open vSwitch settings (netplan-yaml.md gives them in "
    "its text, not as a key of the top level)",
    ("network_netplan_nameservers", "addresses"): "netplan-yaml.md names it in `nameservers`' text",
    ("network_netplan_nameservers", "search"): "netplan-yaml.md names it in `nameservers`' text",
    ("network_netplan_bond_parameters", "all-slaves-active"): "netplan's older name of `all-members-active`, "
    "which netplan still reads (src/parse.c)",
    ("network_netplan_bond_parameters", "packets-per-slave"): "netplan's older name of `packets-per-member`, "
    "which netplan still reads (src/parse.c)",
    ("network_netplan_bond_parameters", "gratuitious-arp"): "netplan's old misspelling of `gratuitous-arp`, "
    "which netplan still reads (src/parse.c)",
    **{
        ("network_netplan_bridge_parameters", k): "bridge VLAN filtering: not a key of netplan at the commit "
        "kept (neither its docs nor src/parse.c); accepted with a warning"
        for k in ("vlan-filtering", "vlan-default-pvid", "vlans", "port-vlans")
    },
    ("network_v1_bridge", "mtu"): "cloud-init's schema gives `mtu` to every v1 device type but the bridge; "
    "its network_state reads it for a bridge too",
    ("network_v1_bridge", "mac_address"): "cloud-init's schema gives `mac_address` to every v1 device type "
    "but the bridge",
    (
        "network_v1_route",
        "prefix",
    ): "cloud-init reads `prefix` in place of `netmask` (cloudinit/net/network_state.py)",
    ("network_v1_subnet", "prefix"): "cloud-init reads `prefix` in place of `netmask` "
    "(cloudinit/net/network_state.py)",
    ("network_v1_subnet", "mtu"): "cloud-init's renderers read a subnet's `mtu` (cloudinit/net/netplan.py)",
    ("network_v1_subnet_route", "prefix"): "cloud-init reads `prefix` in place of `netmask`",
    ("network_rancher", "exclusive"): "corral's: every interface entry's `exclusive` default",
    ("network_rancher_interface", "dhcp6"): "corral's: DHCPv6 on the link",
    ("network_rancher_interface", "routes"): "corral's: routes in netplan's syntax",
    ("network_rancher_interface", "exclusive"): "corral's: the entry's links get only what it gives",
    ("network_dns", "domain"): "RancherOS's netconf never had it; corral names `search` instead",
}
"""(key table, key) -> why the table has a key its format's own list (RancherOS's schema and netconf types,
cloud-init's schemas, netplan-yaml.md) does not."""
CORRAL_TABLES: Mapping[str, str] = {
    "storage_mount": "a `mounts:` entry as a map (`{match, path, ...}`): corral's own form",
    "storage_mount_match": "a `mounts:` map entry's `match`: corral's own form",
    "swarm": "`corral.swarm`: Docker Swarm membership, corral's own key",
    "swarm_init": "`corral.swarm.init`: corral's own key",
    "swarm_join": "`corral.swarm.join`: corral's own key",
}
"""Key tables of corral's own keys, which no format has."""


def unlisted(judge: Judge) -> dict[tuple[str, str], Keys]:
    """The table keys no format's key reached (after the rows were made with ``judge``)."""
    return {
        (table.name, key): table
        for table in all_tables()
        if table.name not in CORRAL_TABLES
        for key in table.keys
        if (table.name, key) not in judge.visited
    }


# -- docs/compatibility.md --------------------------------------------------------------------------------

_HEADER = """\
# Compatibility: every RancherOS, cloud-init and netplan key

<!-- generated by `python -m supervisor.gen_compat`; do not edit by hand -->

Every key RancherOS, cloud-init and netplan know, each with what corral does with it:

- **applied**: corral acts on it (an applied key may still warn about one of its values that corral
  does not implement, such as netplan's `dhcp-identifier: duid`; netplan's `renderer`, `optional` and
  `critical` are applied in that corral already behaves as they ask);
- **warned**: accepted, and a warning names the key and what corral does instead, every time the config
  is loaded (boot, reload, `corral config validate`, `set`/`merge`); `corral status` and `corral config
  validate` list them; the value is not used;
- **rejected**: an error naming the key (at boot it costs its part of the config only: see
  [config.md](config.md#when-the-config-has-errors-boot-keeps-what-is-valid)).

A key under a rejected one, or under a warned one with the same message, is not listed again. `[]` is
each item of a list; `NAME` and `<id>` are names you choose. The keys are the formats' own lists (kept in
`tests/compat_keys/` and `tests/cloud_init_schema/`, SOURCES there); the verdicts come from corral's
config schema, its parsers' key tables and its table of keys known but not implemented
(`supervisor/compat.py`). What corral makes of real cloud-configs is in [corpus.md](corpus.md).
"""


def _para(text: str) -> str:
    return textwrap.fill(text, 105, break_long_words=False, break_on_hyphens=False) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: Iterable[tuple[str, str, str]]) -> str:
    lines = ["| Key | Verdict | What corral does |", "|---|---|---|"]
    lines += [f"| `{key}` | {verdict} | {_cell(note)} |" for key, verdict, note in rows]
    return "\n".join(lines) + "\n"


def _counts(kinds: Iterable[str]) -> str:
    counted = {kind: 0 for kind in ("applied", "warned", "rejected")}
    for kind in kinds:
        counted[kind] += 1
    return ", ".join(f"{n} {kind}" for kind, n in counted.items())


def _plain(rows: Sequence[tuple[Path_, Verdict]], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for path, verdict in rows:
        yield prefix + shown(path), verdict.kind, verdict.note


def _grouped(verdicts: Sequence[tuple[str, Verdict]]) -> tuple[str, str]:
    """One verdict and note for several device types: the same for all, or each group named."""
    groups: dict[Verdict, list[str]] = {}
    for device, verdict in verdicts:
        groups.setdefault(verdict, []).append(device)
    if len(groups) == 1:
        [verdict] = groups
        return verdict.kind, verdict.note
    kinds = "; ".join(f"{v.kind} ({', '.join(ds)})" for v, ds in groups.items())
    notes = "; ".join(f"{', '.join(ds)}: {v.note}" for v, ds in groups.items() if v.note)
    return kinds, notes


def render() -> str:
    """docs/compatibility.md's text."""
    return build()[0]


def build() -> tuple[str, Judge]:
    """docs/compatibility.md's text, and the judge that made it (which table keys it reached)."""
    judge = Judge()
    rancher = rancheros_rows(judge)
    cloud = cloud_init_rows(judge)
    netplan = netplan_rows(judge)
    v1 = v1_rows(judge)
    counts = {
        "RancherOS": _counts(v.kind for _, v in rancher),
        "cloud-init": _counts(v.kind for _, v in cloud),
        "netplan": _counts(r.verdicts[0][1].kind for r in netplan),
        "cloud-init network-config v1": _counts(v.kind for rows in v1.values() for _, v in rows),
    }
    parts = [_HEADER, "\n| Format | Keys listed |\n|---|---|\n"]
    parts += [f"| [{name}](#{_anchor(name)}) | {text} |\n" for name, text in counts.items()]
    parts.append("\n## RancherOS\n\n")
    parts.append(
        _para(
            "Every key of RancherOS's cloud-config schema (rancher/os `config/schema.go`, which "
            "RancherOS checked every cloud-config against) and its network interface and DNS keys "
            "(`pkg/netconf/types.go`). "
            "`rancher.` is RancherOS's spelling of `corral.` ([config.md](config.md#rancher-is-corral)); an "
            "applied key's corral name links its documentation."
        )
    )
    parts.append("\n" + _table(_plain(rancher)))
    parts.append("\n## cloud-init\n\n")
    parts.append(
        _para(
            "Every top-level key of cloud-init's cloud-config schema "
            "(`cloudinit/config/schemas/schema-cloud-config-v1.json`), and the keys under the ones "
            "corral applies ([config.md](config.md#cloud-config-modules))."
        )
    )
    parts.append("\n" + _table(_plain(cloud)))
    parts.append("\n## netplan\n\n")
    parts.append(
        _para(
            "Every key of netplan's reference (canonical/netplan `doc/netplan-yaml.md`), section by "
            "section, under the top-level `network:` (netplan v2, which is cloud-init's network-config "
            "v2, with or without the `network:` wrapper: see [networking.md](networking.md)). A device "
            "type corral skips (warned at the top level) is skipped with every key under it; where the "
            "device types a section applies to get different verdicts, the verdict names them."
        )
    )
    section = None
    for row in netplan:
        if row.section != section:
            section = row.section
            devices = ", ".join(d for d, _ in row.verdicts if d)
            parts.append(f"\n### {section}\n\n" + (f"Device types: {devices}.\n\n" if devices else ""))
            parts.append("| Key | Verdict | What corral does |\n|---|---|---|\n")
        kind, note = _grouped(row.verdicts)
        parts.append(f"| `{shown(row.where)}` | {kind} | {_cell(note)} |\n")
    parts.append("\n## cloud-init network-config v1\n\n")
    parts.append(
        _para(
            "Every key of cloud-init's network-config v1 schema "
            "(`cloudinit/config/schemas/schema-network-config-v1.json`), by `config` entry type. corral "
            "translates v1 into netplan v2 (`netconf/network_config.py`), so what a v1 key becomes is then "
            "netplan's verdict above."
        )
    )
    for kind, rows in v1.items():
        parts.append(f"\n### {'The document' if not kind else f'type: {kind}'}\n\n")
        parts.append(_table(_plain(rows)))
    parts.append("\n## Keys corral takes beyond these lists\n\n")
    parts.append(
        _para("Keys of corral's parsers' tables that none of the lists above has, and why each is there.")
    )
    parts.append("\n| Key | In | Verdict | Why |\n|---|---|---|---|\n")
    for (name, key), table in sorted(unlisted(judge).items()):
        kind = "warned" if key in table.ignored else "rejected" if key in table.unsupported else "applied"
        why = ADDITIONS.get((name, key), "not explained: add it to supervisor/gen_compat.py's ADDITIONS")
        parts.append(f"| `{key}` | `{name}` | {kind} | {_cell(why)} |\n")
    for name, why in sorted(CORRAL_TABLES.items()):
        parts.append(f"| every key | `{name}` | applied | {_cell(why)} |\n")
    return "".join(parts), judge


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.gen_compat", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python -m supervisor.gen_compat", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0
