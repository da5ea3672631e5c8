"""`corral logs` as docs/journal.md and `corral logs --help` show it, against a real PID 1 over two boots,
with the system dockerd and a unit `docker` that prints what the real dockerd 20.10 prints: every example
runs, and what it prints is what its options select from the journal files."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Follow, Sandbox
from integration.units_helpers import EXPECTED_ERRORS, config, system_docker_on, unit, wait_for, with_busybox
from supervisor.cli import logs as logs_cli
from supervisor.cli.main import build_parser
from supervisor.journal.query import compile_grep
from supervisor.journal.records import LEVELS, ts_epoch

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests/logs_corpus/dockerd-20.10.log"
CORPUS_LINES = len(CORPUS.read_text().splitlines())
# A unit named like the user's dockerd that prints, once per start, what the real dockerd printed.
# The corpus is copied into the sandbox's own /var/lib: a bind source on the host would be moved under the
# sandbox's directory when it lies below /tmp etc. (handlers/units/desired.py's SANDBOX_ROOTS), and docker
# would then make an empty directory of it (a checkout under /tmp failed so).
CORPUS_IN_SANDBOX = "var/lib/logs-corpus/dockerd.log"
CHATTER = unit(["sh", "-c", "cat /corpus/dockerd.log; trap 'exit 0' TERM; sleep 600 & wait"],
               volumes=[f"/{CORPUS_IN_SANDBOX}:/corpus/dockerd.log:ro"], restart="always")


def with_corpus(directory: Path) -> None:
    """Sandbox setup: busybox, and the corpus in the sandbox's /var/lib."""
    with_busybox(directory)
    target = directory / CORPUS_IN_SANDBOX
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(CORPUS.read_bytes())


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def documented_examples() -> list[str]:
    """The `corral logs` lines of docs/journal.md's code blocks and of `corral logs --help`."""
    found = [command for command, _ in logs_cli.EXAMPLES]
    in_block = False
    for line in (REPO / "docs/journal.md").read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("corral logs"):
            found.append(line.split(" # ")[0].split(" | ")[0].strip())
    return found


def unit_output(sb: Sandbox, boot: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sb.journal() if r.get("unit") == "docker" and "stream" in r
            and (boot is None or r["boot"] == boot)]


def boots_of(sb: Sandbox) -> list[str]:
    boots: list[str] = []
    for record in sb.journal():
        if "boot" in record and record["boot"] not in boots:
            boots.append(record["boot"])
    return boots


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def selects(query: dict[str, Any], boots: list[str]) -> Any:
    """Whether a record passes the filters of ``query`` (the request the CLI sends)."""
    pattern = compile_grep(query["grep"]) if query["grep"] else None
    units = set(query["unit"] or ())

    def test(r: dict[str, Any]) -> bool:
        epoch = ts_epoch(r["ts"])
        assert epoch is not None
        return (LEVELS[r["level"]] >= LEVELS[query["level"]]
                and (not units or r.get("unit") in units)
                and (query["since"] is None or epoch >= query["since"] - 1)
                and (query["until"] is None or epoch <= query["until"] + 1)
                and (pattern is None or pattern.search(r["event"]) is not None)
                and (query["boot"] is None or r.get("boot") == boots[query["boot"] - 1]))

    return test


def check(sb: Sandbox, command: str, boots: list[str]) -> list[dict[str, Any]]:
    """Run ``command`` as text and as JSON; the JSON records must be what its options select: every
    matching record stored before it ran (the newest N of them with -n), in order, and nothing else."""
    argv = shlex.split(command)[2:]
    args = build_parser().parse_args(["logs", *argv])
    query = logs_cli.query_args(args, args.units)
    text = sb.cli("logs", *argv).stdout
    assert " boot=" not in text
    before = [r for r in sb.journal() if selects(query, boots)(r)]
    json_argv = argv if args.output == "json" else [*argv, "-o", "json"]
    out = json_lines(sb.cli("logs", *json_argv).stdout)
    after = [r for r in sb.journal() if selects(query, boots)(r)]
    assert all(selects(query, boots)(r) for r in out), command
    oldest_first = out[::-1] if query["reverse"] else out
    if query["reverse"] and len(out) > 1:
        assert out[0]["ts"] >= out[-1]["ts"], command
    assert after[: len(before)] == before  # the journal only grew meanwhile
    if not oldest_first:
        assert not before, command
        return out
    start = after.index(oldest_first[0])
    assert after[start: start + len(oldest_first)] == oldest_first, command  # in order, none left out
    end = start + len(oldest_first)
    assert end >= len(before), command  # the newest stored before it ran are there
    if query["limit"] is not None:
        assert len(out) == min(query["limit"], end), command
    else:
        assert start == 0, command
    return out


def test_every_documented_example_against_a_real_pid1_over_two_boots(sandbox: Any) -> None:
    cfg = config({"docker": CHATTER}, log={"level": "debug"})
    first: Sandbox = sandbox(cfg, setup=with_corpus)
    first.wait_ready(90)
    wait_for("the unit's output", lambda: len(unit_output(first)) >= CORPUS_LINES, 60)
    first.cli("poweroff")
    assert first.wait_exit(60) == 0
    sb: Sandbox = sandbox(setup=with_corpus, again=first)  # a reboot: the same files
    sb.wait_ready(90)
    boots = boots_of(sb)
    assert len(boots) == 2 and all(len(b) == 12 for b in boots)
    wait_for("the unit's output again", lambda: len(unit_output(sb, boots[1])) >= CORPUS_LINES, 60)
    sb.cli("config", "set", "hostname", "edge-1")

    examples = documented_examples()
    assert len(examples) >= 20
    outputs: dict[str, list[dict[str, Any]]] = {}
    for command in examples:
        if " -f" not in command:
            outputs[command] = check(sb, command, boots)

    # what the examples say they show, in this journal
    assert len(outputs["corral logs -n 100"]) == 100
    assert len(outputs["corral logs -r -n 20"]) == 20
    everything = outputs["corral logs"]
    assert all(r["level"] != "debug" for r in everything)  # stored (log.level debug), not shown
    assert {r["boot"] for r in everything} == set(boots)
    assert {r["boot"] for r in outputs["corral logs -b"]} == {boots[1]}
    assert {r["boot"] for r in outputs["corral logs -b -1"]} == {boots[0]}
    warnings = outputs["corral logs -p warning"]
    assert {r["level"] for r in warnings} == {"warning"}
    assert any(r["event"] == "Your kernel does not support cgroup blkio weight" for r in warnings)
    debug = outputs["corral logs -u docker -p debug"]
    grpc = [r for r in debug if r.get("module") == "grpc"]
    assert grpc and all(r["level"] == "debug" and r["stream"] for r in grpc)
    assert not [r for r in everything if r.get("module") == "grpc"]
    both = outputs["corral logs -u docker -u network"]
    assert both and {r["unit"] for r in both} == {"docker"}  # no network unit here
    assert any(r["event"] == "config changed" for r in outputs["corral logs --since -5m"])
    assert outputs["corral logs --since -1h30m --until -1h"] == []
    started = outputs["corral logs -g 'unit (started|stopped)'"]
    assert {(r["event"], r["unit"]) for r in started} == {("unit started", "docker")}
    assert {r["boot"] for r in started} == set(boots)
    since_2024 = outputs["corral logs --since 2024-05-01T12:00:00Z"]
    assert since_2024[: len(everything)] == everything
    # the system dockerd's own output, through the same decision
    system = json_lines(sb.cli("logs", "-u", "system-docker", "-p", "debug", "-o", "json").stdout)
    assert [r for r in system
            if r.get("module") == "grpc" and r["level"] == "debug" and r["logger"] == "dockerd"]
    assert not [r for r in json_lines(sb.cli("logs", "-u", "system-docker", "-o", "json").stdout)
                if r.get("module") == "grpc"]
    # `corral logs -n 50` right after the boot is not chatter
    assert not [r for r in outputs["corral logs -n 50"] if r.get("module") == "grpc"]

    # the -f examples: the backlog, then live records; Ctrl-C ends them
    with Follow(sb, "logs", "-f", "-o", "json") as follow:
        backlog = [json.loads(follow.until("")) for _ in range(10)]
        assert len(backlog) == 10 and all(r["level"] != "debug" for r in backlog)
        sb.cli("config", "set", "hostname", "edge-2")
        live = json.loads(follow.until("edge-2"))
        assert live["boot"] == boots[1]
        assert follow.stop() == 130
    with Follow(sb, "logs", "-f", "-u", "docker", "-p", "warning", "-o", "json") as follow:
        for _ in range(10):
            record = json.loads(follow.until(""))
            assert record["unit"] == "docker" and record["level"] == "warning"
        restarted_at = time.time()
        sb.cli("units", "restart", "docker")  # it prints dockerd's lines again: warnings among them
        record = json.loads(follow.until("blkio weight"))
        assert record["unit"] == "docker" and record["level"] == "warning"
        assert (ts_epoch(record["ts"]) or 0) >= restarted_at - 1
        assert follow.stop() == 130
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
