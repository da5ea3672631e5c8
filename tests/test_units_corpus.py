"""The unit corpus: every invalid unit file is rejected whole with an error naming the file, the unit
and the key; every valid file loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from units.loader import build_units, load_units
from units.unitfiles import parse_unit_text

CORPUS = Path(__file__).parent / "units_corpus"
INVALID = sorted((CORPUS / "invalid").glob("*.yml"))
VALID = sorted((CORPUS / "valid").glob("*.yml"))
EXPECTED: dict[str, list[str]] = yaml.safe_load((CORPUS / "expected-invalid.yml").read_text())
ENVIRONMENT = {"HTTP_PROXY": "http://proxy:3128", "CONSOLE_KEYMAP": "us", "CONSOLE_FONT": "lat9w"}


def load(path: Path) -> tuple[dict[str, object], list[str], list[object]]:
    raws, errors = parse_unit_text(path.read_text(), str(path))
    units, _graph, more = build_units(raws, ENVIRONMENT)
    all_errors = [*errors, *more]
    return dict(units), [r.name for r in raws], all_errors


def test_corpus_is_big_enough_and_every_file_has_an_expectation() -> None:
    assert len(INVALID) >= 20
    assert {p.name for p in INVALID} == set(EXPECTED)
    assert len(VALID) >= 3


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_unit_file_is_rejected_naming_unit_and_key(case: Path) -> None:
    key, fragment = EXPECTED[case.name]
    config = {"corral": {"services_include": {case.stem: True}, "environment": ENVIRONMENT}}
    loaded = load_units(config, unit_dirs=[case.parent])
    errors = loaded.errors

    assert errors, f"{case.name} was accepted"
    assert loaded.units == {} and loaded.graph is None  # rejected whole
    assert loaded.files == [case]
    matching = [e for e in errors if e.key == key]
    assert matching, f"no error on {key!r}: {[str(e) for e in errors]}"
    assert any(fragment in e.message for e in matching), [str(e) for e in matching]
    assert all(e.file == str(case) for e in errors)
    if key != "(document)":
        unit = key.removeprefix("services.").split(".")[0].split("[")[0] or key.strip('[]"')
        assert all(unit in str(e) for e in matching)
    assert all(e.line is not None for e in matching)


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.name)
def test_valid_unit_file_loads(case: Path) -> None:
    units, names, errors = load(case)
    assert errors == []
    assert set(units) == set(names) and units
