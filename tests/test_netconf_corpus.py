"""The network corpus: RancherOS configs (from its docs and tests, and configs people published),
netplan v2 files (netplan's examples/ and the YAML of its docs) and cloud-init network-config v1 and v2
(cloud-init's doc examples, docs and test artifacts; NoCloud's wrapper-less files), each citing its
source in its first line and in SOURCES. Every file gets the verdict expected.yml gives it:

- ``{error: [key, fragment]}``: rejected, with an error on that key whose message holds the fragment;
  never for a key netplan or cloud-init accept (no "unknown key" or "not supported" error);
- ``strict: [key, fragment]``: the config loader's strict YAML reading refuses it (a duplicate key),
  though a lenient reader (PyYAML's, cloud-init's) takes the last value and the parser accepts that;
- otherwise accepted, with exactly the ``warnings`` listed (``[key, fragment]`` each) and the ``plan``
  summary: what corral would do on a machine with one NIC for each ethernet the file names.

The JSON Schema fragment meant for the config schema accepts every file the parser accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from netconf.model import NetworkConfig, Parsed
from netconf.network_config import to_netplan
from netconf.observed import Link, Observed
from netconf.ops import (
    AddAddress,
    AddRoute,
    CreateLink,
    Enslave,
    Op,
    RenameLink,
    RunHook,
    SetIPv6,
    SetMtu,
    SetUp,
    StartDhcp,
    WriteDns,
)
from netconf.parse import parse_config
from netconf.plan import plan
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator
from supervisor.config.yamlload import load_document

CORPUS = Path(__file__).parent / "netconf_corpus"
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.yml"))
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yml").read_text())


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CORPUS / name).read_text()) or {}
    if "rancher" in doc:  # the config loader reads `rancher:` as `corral:`
        doc["corral"] = doc.pop("rancher")
    return dict(doc)


def parse(name: str) -> Parsed:
    """A cloud-init file as a datasource hands it over (``to_netplan``, then under ``network:``);
    the others as a config file."""
    doc = load(name)
    if not name.startswith("cloud-init/"):
        return parse_config(doc, name)
    netplan, problems = to_netplan(doc, name)
    if problems.errors or netplan is None:
        return Parsed(None, tuple(problems.errors), tuple(problems.warnings))
    parsed = parse_config({"network": netplan}, name)
    return Parsed(parsed.config, parsed.errors, (*problems.warnings, *parsed.warnings))


def machine(config: NetworkConfig) -> tuple[Link, ...]:
    """A NIC for each ethernet rule: named as it matches (a glob's first name), with its MAC and
    driver."""
    links = [Link(1, "lo", up=True, mtu=65536)]
    for i, rule in enumerate(r for r in config.interfaces if r.kind == "link"):
        name = re.sub(r"[*?]", "0", re.sub(r"\[(.).*?\]", r"\1", rule.match.name or f"nic{i}"))
        mac = rule.match.mac if rule.match.mac and "*" not in rule.match.mac else f"52:54:00:00:01:{i:02x}"
        driver = re.sub(r"[*?]", "", rule.match.drivers[0]) if rule.match.drivers else "virtio_net"
        if all(link.name != name and link.mac != mac for link in links):
            links.append(Link(len(links) + 1, name, mac=mac, driver=driver))
    return tuple(links)


def summary(op: Op) -> str:
    """One operation in a few words."""
    match op:
        case CreateLink(name, kind, options, refs):
            args = " ".join(f"{k}={v}" for k, v in (*options, *refs))
            return f"create {kind} {name}" + (f" {args}" if args else "")
        case RenameLink(name, new_name):
            return f"rename {name} {new_name}"
        case Enslave(link, master):
            return f"enslave {link} to {master}"
        case SetMtu(link, mtu):
            return f"mtu {link} {mtu}"
        case SetIPv6(link, key, value):
            return f"ipv6 {link} {key}={value}"
        case AddAddress(link, address):
            return f"address {link} {address}"
        case AddRoute(link, route):
            words = [f"route {link} {route.to}"]
            words += [f"via {route.via}"] if route.via is not None else []
            words += [f"metric {route.metric}"] if route.metric not in (0, 1024) else []
            words += [f"table {route.table}"] if route.table != 254 else []
            words += ["onlink"] if route.on_link else []
            return " ".join(words)
        case StartDhcp(link, family, options):
            metric = f" metric {options.route_metric}" if options.route_metric else ""
            return f"dhcp{family} {link}{metric}"
        case WriteDns(nameservers, search):
            domains = f" search {' '.join(search)}" if search else ""
            return f"dns {' '.join(map(str, nameservers))}{domains}"
        case RunHook(argv, phase, link):
            return f"hook {phase} {link or ''} {' '.join(argv)}".replace("  ", " ")
    return type(op).__name__.lower() + " " + str(getattr(op, "link", ""))


def plan_summary(config: NetworkConfig) -> list[str]:
    ops = plan(config, Observed(links=machine(config)))
    return [summary(op) for op in ops if not isinstance(op, SetUp)]


def test_corpus_is_big_enough_cited_and_fully_expected() -> None:
    assert len([f for f in FILES if f.startswith("rancher/")]) >= 15
    assert len([f for f in FILES if f.startswith("netplan/")]) >= 80
    assert len([f for f in FILES if f.startswith("cloud-init/")]) >= 20
    assert set(FILES) == set(EXPECTED)
    sources = (CORPUS / "SOURCES").read_text()
    for name in FILES:
        first = (CORPUS / name).read_text().split("\n", 1)[0]
        assert first.startswith("# Source: "), name
        assert f"{name}: {first.removeprefix('# Source: ')}" in sources, name


@pytest.mark.parametrize("name", FILES)
def test_corpus_file(name: str) -> None:
    parsed = parse(name)
    expected = EXPECTED[name]
    if "error" in expected:
        key, fragment = expected["error"]
        assert not parsed.ok and parsed.config is None
        assert all(e.file == name for e in parsed.errors)
        matching = [e for e in parsed.errors if e.key == key]
        assert matching, f"no error on {key!r}: {[str(e) for e in parsed.errors]}"
        assert any(fragment in e.message for e in matching), [str(e) for e in matching]
        if not name.startswith("rancher/"):  # never for a key netplan or cloud-init accepts
            assert not any(
                ("unknown key" in e.message and "..." not in e.key)  # a doc's placeholder is no key
                or "not supported" in e.message
                for e in parsed.errors
            ), [str(e) for e in parsed.errors]
        return
    assert parsed.ok, [str(e) for e in parsed.errors]
    assert parsed.config is not None
    got = [(w.key, w.message) for w in parsed.warnings]
    want = expected.get("warnings") or []
    assert [k for k, _ in got] == [k for k, _ in want], [f"{k}: {m}" for k, m in got]
    for (_, message), (_, fragment) in zip(got, want, strict=True):
        assert fragment in message
    assert plan_summary(parsed.config) == expected["plan"]


VALIDATOR = Validator(Schema())  # the shipped schema: its network part is generated from the parsers


@pytest.mark.parametrize(
    "name", [n for n in FILES if "error" not in EXPECTED[n] and ("network" in load(n) or "corral" in load(n))]
)
def test_schema_fragment_accepts_what_the_parser_accepts(name: str) -> None:
    text = (CORPUS / name).read_text()
    doc, errors = load_document(text, name)
    if "strict" in EXPECTED[name]:  # YAML the config loader refuses (a duplicate key): said so
        key, fragment = EXPECTED[name]["strict"]
        assert any(e.key == key and fragment in e.message for e in errors), [str(e) for e in errors]
        return
    assert doc is not None and not errors
    data = dict(doc.data)
    data.pop("hostname", None)
    if "rancher" in data:
        data["rancher"] = {"network": data["rancher"]["network"]}
    assert VALIDATOR.validate(type(doc)(doc.source, data, doc.nodes)) == []


def test_schema_fragment_rejects_a_typo_with_the_key() -> None:
    doc, _ = load_document(
        "corral:\n  network:\n    interfaces:\n      eth0:\n        adress: 10.0.0.2/24\n", "x"
    )
    assert doc is not None
    errors = VALIDATOR.validate(doc)
    assert [e.key for e in errors] == ["corral.network.interfaces.eth0.adress"]


def test_kernel_command_line_keys_reach_the_parser() -> None:
    """tinkerbell's RancherOS boot line, through the config's command-line reader and the fragment."""
    from supervisor.config.cmdline import parse_cmdline
    from supervisor.config.layers import check_document

    line = "console=ttyS1 rancher.network.interfaces.eth0.dhcp=true rancher.network.interfaces.eth2.dhcp=true"
    doc, errors = parse_cmdline(line, VALIDATOR.schema)
    assert errors == []
    layer, errors = check_document(doc, VALIDATOR)
    assert errors == [] and layer is not None
    parsed = parse_config(layer.data, "cmdline")
    assert parsed.config is not None
    assert [(r.id, r.dhcp4) for r in parsed.config.interfaces] == [("eth0", True), ("eth2", True)]
