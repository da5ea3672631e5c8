"""Offline `corral config validate` against `corral config merge` into a real PID 1, for every file of
tests/validate_corpus: the same verdict and the same messages (file, key path, reason).

The sandbox keeps the shipped units included (as a host does; the system dockerd is off, so none runs)
so that its config checks see what the offline check sees. After a file that merges, the user's
config is emptied and reloaded, so every file meets the same config. Messages are compared with the
file named as FILE: offline names the file given, merge names `<merge>` (the document as given) or
the sandbox's cloud-config.yml (the merged result); the sandbox's directory prefix is dropped from
paths (its units directory)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.netns import require_root
from integration.sandbox import CORRAL, Sandbox, sandbox_factory
from storage.rules import parse_storage
from supervisor.control.protocol import one_line

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "validate_corpus"
FILES = sorted(p for p in CORPUS.rglob("*.yml") if p.name != "expected.yml")


def name(path: Path) -> str:
    return path.relative_to(CORPUS).as_posix()


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    require_root()
    factory = sandbox_factory(tmp_path_factory.mktemp("validate"))
    start = next(factory)
    sandbox: Sandbox = start(default_units=True)
    sandbox.wait_ready()
    yield sandbox
    with contextlib.suppress(StopIteration):
        next(factory)


def offline(path: Path, tmp_path: Path) -> dict[str, Any]:
    """`corral config validate -o json FILE` with no supervisor to talk to."""
    env = dict(os.environ, CORRAL_SOCKET=str(tmp_path / "no-supervisor.sock"))
    run = subprocess.run([CORRAL, "config", "validate", "-o", "json", str(path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode in (0, 1), run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    assert run.returncode == (0 if result["valid"] else 1)
    return result


def harmless(path: Path) -> None:
    """A valid file is applied for real in the sandbox: it may not mount a device that exists or turn
    the system dockerd on (tests/validate_corpus/SOURCES)."""
    doc = yaml.safe_load(path.read_text()) or {}
    parsed = parse_storage({"mounts": doc.get("mounts")})
    assert parsed.rules is not None, name(path)
    for rule in parsed.rules.mounts:
        # a bind's source is under the sandbox's directory; an NFS server is out of reach of its network
        # namespace (lo only); a device must be one of the corpus's labels, or a path this host lacks
        # (cloud-init's sdc/xvdh); entries that only warn are not rules
        harmless_device = (rule.match.label or "").startswith("corral-corpus-") or (
            rule.match.device is not None and not rule.match.device_is_glob
            and not Path(rule.match.device).exists())
        assert rule.kind in ("bind", "nfs") or harmless_device, f"{name(path)}: {rule.key}"
    corral = doc.get("corral") or doc.get("rancher") or {}
    assert (corral.get("system_docker") or {}).get("enabled") is not True, name(path)


def reset(sb: Sandbox) -> None:
    (sb.paths.config_dir / "cloud-config.yml").write_text("#cloud-config\n")
    (sb.paths.config_dir / "private.yml").unlink(missing_ok=True)
    sb.request("reload")
    assert sb.request("status")["config"]["errors"] == []


@pytest.mark.parametrize("path", FILES, ids=name)
def test_offline_validate_agrees_with_merge_into_pid1(sb: Sandbox, path: Path, tmp_path: Path) -> None:
    verdict = offline(path, tmp_path)
    if verdict["valid"]:
        harmless(path)

    merged = sb.cli("config", "merge", str(path), check=False)

    assert (merged.returncode == 0) is verdict["valid"], (merged.stderr, verdict)
    if verdict["valid"]:
        reset(sb)
        return
    assert merged.returncode == 1 and merged.stdout == ""

    def norm(text: str) -> str:
        for given in (str(sb.paths.config_dir / "cloud-config.yml"), str(sb.paths.config_dir / "private.yml"),
                      "<merge>", str(path)):
            text = text.replace(given, "FILE")
        return text.replace(str(sb.dir), "")

    answer = merged.stderr.strip().removeprefix("corral: ")
    assert "…" not in answer, "the reply was cut at the control socket's reason limit"
    expected = one_line("; ".join(f"{e['file']}: {e['key']}: {e['message']}" for e in verdict["errors"]))
    assert norm(answer) == norm(expected)


@pytest.mark.parametrize("path", FILES, ids=name)
def test_validate_through_the_supervisor_gives_the_same_verdict(
    sb: Sandbox, path: Path, tmp_path: Path
) -> None:
    """The control command config.validate (what a client of the socket may use) and the CLI agree."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: the control protocol carries text; the CLI reports it before sending")
    verdict = offline(path, tmp_path)
    through = sb.request("config.validate", yaml=text, filename=str(path))

    def shown(result: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [(e["file"], e["key"], e["message"].replace(str(sb.dir), "")) for e in result["errors"]]

    assert through["valid"] is verdict["valid"]
    assert shown(through) == shown(verdict)
