"""schema.json's generated part: the domain parsers' key tables, written in by supervisor.gen_schema."""

from __future__ import annotations

import json
from pathlib import Path

from netconf import netplan, rancher
from storage import rules
from supervisor import gen_schema


def test_shipped_schema_is_what_the_parsers_key_tables_generate() -> None:
    """schema.json's network and storage definitions are generated from the parsers' ``Keys`` tables,
    never edited by hand: regenerating the committed file changes nothing."""
    path = gen_schema.schema_path()
    text = path.read_text()
    assert gen_schema.generate(text) == text, "out of date: run python -m supervisor.gen_schema"
    assert gen_schema.main(["--check"]) == 0
    doc = json.loads(text)
    for name, definition in {**rancher.SCHEMA_DEFS, **netplan.SCHEMA_DEFS, **rules.SCHEMA_DEFS}.items():
        assert doc["$defs"][name] == {"$comment": gen_schema.GENERATED, **definition}, name


def test_schema_generation_replaces_stale_definitions_and_keeps_the_rest(tmp_path: Path) -> None:
    text = gen_schema.schema_path().read_text()
    doc = json.loads(text)
    doc["$defs"]["network_rancher_interface"]["properties"].pop("mtu")  # a key added to a parser only
    doc["$defs"]["network_gone"] = {"$comment": gen_schema.GENERATED, "type": "object"}  # a table removed
    doc["$defs"]["file_mode"]["description"] = "written by hand"
    stale = tmp_path / "schema.json"
    stale.write_text(json.dumps(doc))
    assert gen_schema.main(["--check", "--path", str(stale)]) == 1
    assert gen_schema.main(["--path", str(stale)]) == 0
    fresh = json.loads(stale.read_text())
    assert "mtu" in fresh["$defs"]["network_rancher_interface"]["properties"]
    assert "network_gone" not in fresh["$defs"]
    assert fresh["$defs"]["file_mode"]["description"] == "written by hand"
    assert gen_schema.main(["--check", "--path", str(stale)]) == 0


def test_the_layout_puts_what_fits_on_one_line() -> None:
    short = {"a": {"type": "string"}, "b": [1, 2]}
    assert gen_schema.render(short) == '{"a": {"type": "string"}, "b": [1, 2]}'
    long = {"key": {"description": "x" * 120, "type": "string"}}
    assert gen_schema.render(long) == (
        '{\n  "key": {\n    "description": "' + "x" * 120 + '",\n    "type": "string"\n  }\n}'
    )
