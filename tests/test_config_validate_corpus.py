"""`corral config validate`, offline: the verdict on every file of tests/validate_corpus is the one boot
and reload give for it (as the user's cloud-config.yml and as a datasource's user-data, which is where
`make run CONFIG=` puts it), with the same messages; exit codes; bounded, decoded input.

integration/test_config_validate_sandbox.py checks the same corpus against `config merge` into a real
sandboxed PID 1."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.cli.main import main
from supervisor.config.errors import ConfigError
from supervisor.config.store import ConfigStore
from supervisor.config.yamlload import MAX_BYTES, read_config_file
from supervisor.domain_checks import config_store
from supervisor.paths import Paths

CORPUS = Path(__file__).parent / "validate_corpus"
FILES = sorted(p for p in CORPUS.rglob("*.yml") if p.name != "expected.yml")
EXPECTED: dict[str, list[list[str]] | None] = yaml.safe_load((CORPUS / "expected.yml").read_text())
CORRAL = str(Path(sys.executable).with_name("corral"))


def name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def corral(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The CLI in this process, with a control socket that does not exist: nothing may need it."""
    monkeypatch.setenv("CORRAL_SOCKET", str(tmp_path / "no-supervisor.sock"))

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def verdict_of(store: ConfigStore, path: Path) -> list[ConfigError]:
    """The errors a boot reports for the file: the verdict's, and with them those found once the parts
    with errors are on the defaults (what the verdict's ``boot`` part says a boot keeps)."""
    text, errors = read_config_file(path)
    if text is None:
        return errors
    result = store.verdict(text, str(path))
    return result.salvage.errors if result.salvage is not None else result.errors


def test_corpus_is_big_enough_and_every_file_has_an_expectation() -> None:
    assert len(FILES) >= 30
    assert {name(p) for p in FILES} == set(EXPECTED)
    valid = [n for n, e in EXPECTED.items() if e is None]
    assert len(valid) >= 10 and len(EXPECTED) - len(valid) >= 20
    for kind in ("domain/unit-", "domain/net-", "domain/storage-", "yaml/", "keys/"):
        assert any(n.startswith(kind) and EXPECTED[n] for n in EXPECTED), kind
    assert any("did you mean" in e[1] for errors in EXPECTED.values() for e in errors or [])


def test_every_file_from_a_public_repository_is_in_sources() -> None:
    sources = (CORPUS / "SOURCES").read_text()
    for path in FILES:
        if path.parent.name in ("rancheros", "cloud-init"):
            assert f"\n  {path.name} " in sources, path.name


@pytest.mark.parametrize("path", FILES, ids=name)
def test_offline_validate_gives_the_expected_verdict(corral: Any, path: Path) -> None:
    expected = EXPECTED[name(path)]
    r = corral("config", "validate", "-o", "json", str(path))
    result = r.json()
    assert r.code == (0 if expected is None else 1), r.out
    assert result["valid"] is (expected is None)
    got = [(e["key"], e["message"]) for e in result["errors"]]
    assert len(got) == len(expected or []), got
    for (key, message), (want_key, fragment) in zip(got, expected or [], strict=True):
        assert key == want_key and fragment in message, (key, message)
    assert all(e["file"] == str(path) for e in result["errors"])
    text = corral("config", "validate", str(path))
    assert text.code == r.code
    if expected is None:
        assert text.out == f"{path}: valid\n"
    else:  # one `FILE: key: message` line per error, never a traceback
        assert text.out.splitlines() == [f"{path}: {k}: {m}" for k, m in got]
    assert "Traceback" not in text.err


@pytest.mark.parametrize("path", FILES, ids=name)
def test_boot_and_reload_give_the_same_verdict_as_cloud_config_yml(tmp_path: Path, path: Path) -> None:
    """The file as the user's cloud-config.yml, loaded as at boot: the same errors, naming that file."""
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    target = paths.config_dir / "cloud-config.yml"
    target.write_bytes(path.read_bytes())
    booted = config_store(paths, "").load()

    offline = verdict_of(config_store(paths, ""), path)
    assert [(e.key, e.message, e.line) for e in booted.errors] == [
        (e.key, e.message, e.line) for e in offline
    ]
    assert all(e.file == str(target) for e in booted.errors)
    assert all(e.file == str(path) for e in offline)


@pytest.mark.parametrize("path", FILES, ids=name)
def test_boot_gives_the_same_verdict_for_the_file_as_seed_user_data(tmp_path: Path, path: Path) -> None:
    """`make run CONFIG=FILE` delivers FILE as the user-data of the image's seed datasource."""
    paths = Paths.sandbox(tmp_path)
    seed = paths.under("/etc/corral/seed")
    seed.mkdir(parents=True)
    (seed / "user-data").write_bytes(path.read_bytes())
    booted = config_store(paths, "corral.cloud_init.datasources=[file:/etc/corral/seed]").load()

    offline = verdict_of(config_store(paths, ""), path)
    assert [(e.key, e.message) for e in booted.errors] == [(e.key, e.message) for e in offline]
    assert all(e.file == str(seed / "user-data") for e in booted.errors)


# -- exit codes and input ----------------------------------------------------------------------------


def test_without_a_supervisor_validate_and_schema_work_as_a_program(tmp_path: Path) -> None:
    env = dict(os.environ, CORRAL_SOCKET=str(tmp_path / "none.sock"))
    good, bad = CORPUS / "valid/full.yml", CORPUS / "domain/unit-after-missing.yml"

    def run(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([CORRAL, *argv], env=env, capture_output=True, input=stdin, timeout=60)

    assert run("config", "validate", str(good)).returncode == 0
    r = run("config", "validate", str(bad))
    assert r.returncode == 1
    assert r.stdout.decode() == (
        f"{bad}: corral.services.web.labels[\"io.corral.after\"]: unit 'web' is ordered after 'db', "
        "which is not a unit\n"
    )
    r = run("config", "validate", "-", stdin=b"hostnme: x\n")
    assert (r.returncode, r.stdout.decode()) == (
        1, "<stdin>: hostnme: unknown key; did you mean 'hostname'? (line 1)\n"
    )  # fmt: skip
    assert run("config", "validate").returncode == 2  # usage: FILE is missing
    assert run("config", "validate", "--bogus", str(good)).returncode == 2
    assert run("config", "validate", "--socket", "/nowhere", str(good)).returncode == 0  # taken, unused
    r = run("config", "schema")
    assert r.returncode == 0 and json.loads(r.stdout)["$schema"].endswith("2020-12/schema")
    assert run("status").returncode == 3  # what needs the supervisor still says it is not there


def test_a_file_that_cannot_be_read_exits_1_naming_it(corral: Any, tmp_path: Path) -> None:
    r = corral("config", "validate", str(tmp_path / "absent.yml"))
    assert (r.code, r.out) == (1, "")
    assert r.err == f"corral: cannot read {tmp_path / 'absent.yml'}: No such file or directory\n"
    r = corral("config", "validate", str(tmp_path))  # opened, but not readable: a problem with the file
    assert (r.code, r.out) == (1, f"{tmp_path}: (document): cannot read: Is a directory\n")


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(corral: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"#cloud-config\nx-pad: '" + b"a" * MAX_BYTES + b"'\n")
    r = corral("config", "validate", str(big))
    assert r.code == 1
    assert r.out == f"{big}: (document): too large: a config document is at most {MAX_BYTES} bytes (1 MiB)\n"
    fits = tmp_path / "fits.yml"
    fits.write_bytes(b"x-pad: '" + b"a" * (MAX_BYTES - 20) + b"'\n")
    assert corral("config", "validate", str(fits)).code == 0


def test_stdin_is_bounded_and_decoded_like_a_file(
    corral: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Stdin(io.StringIO):
        def __init__(self, data: bytes) -> None:
            super().__init__()
            self.buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin(b"hostname: caf\xe9\n"))
    r = corral("config", "validate", "-")
    assert r.code == 1
    assert r.out.startswith("<stdin>: (document): not UTF-8 text: byte 0xe9 at line 1, column 14")
    monkeypatch.setattr(sys, "stdin", Stdin(b"a" * (MAX_BYTES + 5)))
    assert "too large" in corral("config", "validate", "-").out


def test_warnings_do_not_fail_and_go_to_stderr(corral: Any) -> None:
    path = CORPUS / "rancheros/test_21-integration.yml"
    r = corral("config", "validate", str(path))
    assert (r.code, r.out) == (0, f"{path}: valid\n")
    assert r.err == f"warning: {path}: mounts[0]: swap entries are not supported by corral; ignored\n"
    result = corral("config", "validate", "-o", "json", str(path)).json()
    assert result["valid"] is True and [w["key"] for w in result["warnings"]] == ["mounts[0]"]
