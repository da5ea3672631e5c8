"""The compatibility corpus (tests/compat_corpus): real RancherOS and cloud-init cloud-configs, each with
the verdict corral gives it (expected.yml), and the Must-show of issue 13: no file is rejected for a key
RancherOS or cloud-init accept. The files corral still rejects are strict xfails, named with the keys
(still_rejected.yml), so the gap is measured and the list shrinks as corral accepts more.

After a change that makes corral accept more: `python -m tests.compat_corpus --update`, and review the
diff of expected.yml and still_rejected.yml."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import tests.compat_corpus.__main__ as regenerate
from supervisor.cli.main import main as corral
from tests.compat_corpus import (
    ACCEPT,
    CORPUS,
    DOC,
    EFFECT,
    NOT_REQUIRED,
    REJECT,
    counts,
    doc_text,
    expected_text,
    files,
    judge,
    load_expected,
    load_still_rejected,
    no_effect,
    reserved,
    schema_keys,
    silently_ignored,
    sources,
    still_rejected,
    still_rejected_text,
    summary,
    used_keys,
    verdicts,
    warned,
)

FILES = files()
EXPECTED = load_expected()
STILL_REJECTED = load_still_rejected()
REPOSITORIES = ("rancher/os", "rancher/docs", "cnrancher/os-tests", "canonical/cloud-init")
OWN = {"SOURCES", "expected.yml", "still_rejected.yml", "__init__.py", "__main__.py"}


def test_the_corpus_is_big_cited_and_every_file_is_expected() -> None:
    assert len(FILES) >= 150
    assert len(FILES) == len(set(FILES))
    on_disk = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in OWN and "__pycache__" not in p.parts
    }
    assert on_disk == set(FILES)
    for source in sources():
        assert source.repository in REPOSITORIES, source
        origin, _, kept = source.file.partition("/")  # kept at its path, under a directory per origin
        assert origin == source.repository.replace("/", "-").removeprefix("canonical-"), source
        if source.block is None:
            assert kept == source.path, source
        else:  # a page's code block: named after the page and the block
            assert kept == f"{source.path}.block{source.block}.yml", source
        assert re.fullmatch(r"[0-9a-f]{40}", source.commit), source
    assert set(EXPECTED) == set(FILES)
    for origin, least in (("rancher-os/", 50), ("rancher-docs/", 10), ("cnrancher-os-tests/", 20)):
        assert sum(f.startswith(origin) for f in FILES) >= least, origin
    assert sum(f.startswith("cloud-init/") for f in FILES) >= 50


@pytest.mark.parametrize("name", FILES)
def test_every_file_gets_its_expected_verdict(name: str) -> None:
    assert judge(name) == EXPECTED[name]


def _must_accept() -> list[Any]:
    params = []
    for name in FILES:
        if name in NOT_REQUIRED:
            continue
        marks = []
        if name in STILL_REJECTED:
            reason = "still rejected for " + ", ".join(STILL_REJECTED[name])
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _must_accept())
def test_a_file_rancheros_or_cloud_init_accepts_is_accepted(name: str) -> None:
    """The Must-show. A strict xfail that passes means a file is accepted now: regenerate."""
    assert judge(name).verdict == ACCEPT


def _accepted() -> list[Any]:
    params = []
    for name in FILES:
        if EXPECTED[name].verdict != ACCEPT:
            continue
        ignored = EXPECTED[name].ignored
        marks = []
        if ignored:
            marks.append(pytest.mark.xfail(strict=True, reason="silently ignores " + ", ".join(ignored)))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("name", _accepted())
def test_nothing_an_accepted_file_says_is_silently_ignored(name: str) -> None:
    """Each key an accepted file uses has an effect or a warning: those that do not yet are strict xfails
    (the keys in expected.yml's ``ignored``)."""
    verdict = judge(name)
    assert verdict.verdict == ACCEPT and not verdict.ignored


def test_still_rejected_lists_exactly_the_rejected_files_that_must_be_accepted() -> None:
    assert still_rejected(EXPECTED) == STILL_REJECTED
    assert set(NOT_REQUIRED) <= set(FILES)
    assert all(EXPECTED[name].verdict == REJECT for name in NOT_REQUIRED)


def test_every_key_of_the_schema_says_whether_it_has_an_effect() -> None:
    """A key the schema gains is reserved there, or classified in EFFECT: an effect, or why it has none."""
    assert set(EFFECT) | reserved() | warned() == schema_keys()
    assert not set(EFFECT) & reserved() and not set(EFFECT) & warned()
    assert {"users", "ntp", "corral.docker"} <= warned()
    assert no_effect("users") and no_effect("nonsense")
    assert [no_effect(k) for k in ("bootcmd", "write_files", "runcmd", "corral.sysctl")] == [None] * 4
    assert no_effect("hostname") is None and no_effect("corral.services") is None


def test_a_key_without_an_effect_is_silently_ignored_unless_a_warning_names_it() -> None:
    from supervisor.config.errors import ConfigError

    text = "#cloud-config\nhostname: a\nrunmcd: [x]\nrancher: {sysctl: {a: '1'}, debug: true}\nx-anchor: 1\n"
    assert silently_ignored(text, []) == ("runmcd",)  # runmcd: not even a schema key; sysctl is applied
    warned = [ConfigError("f", 'rancher.sysctl["a"]', "not applied"), ConfigError("f", "runmcd", "ignored")]
    assert silently_ignored(text, warned) == ()


def test_the_verdict_is_the_one_corral_config_validate_gives(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CORRAL_SOCKET", str(tmp_path / "no-supervisor.sock"))
    kinds = {
        "rejected": next(n for n in FILES if EXPECTED[n].verdict == REJECT),
        "warned": next(n for n in FILES if EXPECTED[n].warnings),
        "accepted": next(n for n in FILES if EXPECTED[n].verdict == ACCEPT and not EXPECTED[n].warnings),
    }
    for name in kinds.values():
        capsys.readouterr()
        code = corral(["config", "validate", "-o", "json", str(CORPUS / name)])
        reply = json.loads(capsys.readouterr().out)
        want = EXPECTED[name]
        assert code == (0 if want.verdict == ACCEPT else 1)
        assert tuple(dict.fromkeys(e["key"] for e in reply["errors"])) == want.errors
        assert tuple(dict.fromkeys(w["key"] for w in reply["warnings"])) == want.warnings


def test_the_counts_the_docs_show_and_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    judged = verdicts()
    assert counts(judged) == counts(EXPECTED)
    assert doc_text(DOC.read_text(), judged) == DOC.read_text()  # docs/corpus.md's table
    with capsys.disabled():
        print("\n" + summary(judged))


def test_update_rewrites_the_expectations_and_a_stale_one_is_shown_as_a_diff(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    expected, rejected, doc = tmp_path / "expected.yml", tmp_path / "still_rejected.yml", tmp_path / "doc.md"
    doc.write_text(DOC.read_text().replace("| all |", "| stale |"))
    monkeypatch.setattr(regenerate, "EXPECTED", expected)
    monkeypatch.setattr(regenerate, "STILL_REJECTED", rejected)
    monkeypatch.setattr(regenerate, "DOC", doc)
    assert regenerate.main(["--update"]) == 0
    assert doc.read_text() == DOC.read_text()
    assert expected.read_text() == expected_text(verdicts()) == (CORPUS / "expected.yml").read_text()
    assert rejected.read_text() == still_rejected_text(verdicts())
    assert rejected.read_text() == (CORPUS / "still_rejected.yml").read_text()
    assert regenerate.main([]) == 0
    # a stale list (it names a file that is no longer rejected, or none are left) is shown as a diff
    body = rejected.read_text()
    rejected.write_text(body.replace("{}\n", "") + "gone.yml: [mounts]\n")
    capsys.readouterr()
    assert regenerate.main([]) == 1
    out = capsys.readouterr().out
    assert "-gone.yml" in out and "compat corpus: " in out


def test_an_empty_key_sets_nothing_so_nothing_of_it_is_ignored() -> None:
    # RancherOS's docs give `rancher:` with all of it commented out above the keys that matter
    assert used_keys({"rancher": None, "write_files": [{"path": "/x"}], "runcmd": []}) == ["write_files"]
    assert used_keys({"rancher": {"sysctl": {"a": "1"}}}) == ["corral.sysctl"]
