"""The network corpus: RancherOS configs (from its docs and tests, and configs people published) and
netplan v2 examples (netplan's examples/ and how-tos), each citing its source in its first line. Every
file parses, or fails with an error on the key its expectation names; the JSON Schema fragment meant
for the config schema accepts every file the parser accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from netconf.parse import parse_config
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator
from supervisor.config.yamlload import load_document

CORPUS = Path(__file__).parent / "netconf_corpus"
FILES = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.glob("*/*.yml"))
EXPECTED: dict[str, list[str] | None] = yaml.safe_load((CORPUS / "expected.yml").read_text())


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CORPUS / name).read_text()) or {}
    if "rancher" in doc:  # the config loader reads `rancher:` as `corral:`
        doc["corral"] = doc.pop("rancher")
    return dict(doc)


def test_corpus_is_big_enough_cited_and_fully_expected() -> None:
    assert len([f for f in FILES if f.startswith("rancher/")]) >= 15
    assert len([f for f in FILES if f.startswith("netplan/")]) >= 20
    assert set(FILES) == set(EXPECTED)
    for name in FILES:
        assert (CORPUS / name).read_text().startswith("# Source: "), name


@pytest.mark.parametrize("name", FILES)
def test_corpus_file(name: str) -> None:
    parsed = parse_config(load(name), name)
    expected = EXPECTED[name]
    if expected is None:
        assert parsed.ok, [str(e) for e in parsed.errors]
        assert parsed.config is not None
        return
    key, fragment = expected
    assert not parsed.ok and parsed.config is None
    assert all(e.file == name for e in parsed.errors)
    matching = [e for e in parsed.errors if e.key == key]
    assert matching, f"no error on {key!r}: {[str(e) for e in parsed.errors]}"
    assert any(fragment in e.message for e in matching), [str(e) for e in matching]


VALIDATOR = Validator(Schema())  # the shipped schema: its network part is generated from the parsers


@pytest.mark.parametrize("name", [n for n in FILES if EXPECTED[n] is None])
def test_schema_fragment_accepts_what_the_parser_accepts(name: str) -> None:
    text = (CORPUS / name).read_text()
    doc, errors = load_document(text, name)
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
