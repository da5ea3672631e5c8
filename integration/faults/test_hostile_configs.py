"""Hostile configs against a real PID 1 (issue 14): documents generated from the shipped JSON Schema
(hypothesis-jsonschema), then made hostile (control characters, deep nesting, duplicate keys, tags,
alias bombs, cut text, huge numbers and sizes), go through `config validate`, `merge`, `set` and a
reload of a drop-in. Afterwards PID 1 answers `status`, and every rejection is a clear
``FILE: KEY: reason`` naming the input, never a traceback or an exception's name. Figures:
docs/reliability.md, section Config.

Nothing generated is applied: a document is merged (or reloaded as a drop-in) only when `validate`
rejected it, and then it must be rejected again; `set` gets only hostile values."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
hypothesis_jsonschema = pytest.importorskip("hypothesis_jsonschema")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from integration.faults import scale  # noqa: E402
from integration.faults.memory import MIB, assert_bounded, memory  # noqa: E402
from integration.netns import require_root  # noqa: E402
from integration.sandbox import Sandbox, sandbox_factory  # noqa: E402
from supervisor.config.schema import Schema  # noqa: E402
from supervisor.control.client import SyncClient  # noqa: E402
from supervisor.control.protocol import MAX_REQUEST, ControlError  # noqa: E402

EXAMPLES = scale(150, 3000)  # CI: about a minute
NAME = "hostile.yml"
# A clear problem: FILE: KEY: reason, the reason neither an exception's name nor a traceback.
# PID 1's RSS growth over the run: flat (docs/reliability.md). It was +19.5 MiB over 150 configs and
# +30.8 over 600, freed memory that pymalloc's pinned arenas and glibc kept; supervisor/allocator.py
# and the config worker's release give it back. A growth of 2 MiB fails, whatever the count.
MEMORY_BOUND = 2 * MIB
UNCLEAR = re.compile(r"Traceback|RecursionError|ReaderError|MemoryError|UnicodeError|KeyError|TypeError|"
                     r"AttributeError|Exception\b")


def flat_schema() -> dict[str, Any]:
    """The shipped schema with its local ``$ref``s written out (recursion cut at a few levels): the
    generator does not resolve 2020-12 ``$defs`` itself."""
    schema = Schema().copy()
    defs = schema.get("$defs", {})

    def inline(node: Any, depth: int) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                if depth > 4:
                    return {}
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return inline({**copy.deepcopy(defs[ref.rsplit("/", 1)[1]]), **rest}, depth + 1)
            return {k: inline(v, depth) for k, v in node.items() if k not in ("$defs", "$schema", "$id")}
        if isinstance(node, list):
            return [inline(v, depth) for v in node]
        return node

    flat: dict[str, Any] = inline(schema, 0)
    return flat


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _at(text: str, where: float) -> int:
    return int(where * len(text))


MUTATIONS: dict[str, Callable[[str, float], str]] = {
    "as generated": lambda t, w: t,
    "control character": lambda t, w: t[:_at(t, w)] + "\x07\x00\x1b"[int(w * 3) % 3] + t[_at(t, w):],
    "deep nesting": lambda t, w: t + "x-deep: " + "[" * (65 + int(w * 3000)) + "\n",
    "deep maps": lambda t, w: t + "x-deep: " + "{a: " * (65 + int(w * 500)) + "\n",
    "duplicate key": lambda t, w: "hostname: a\n" + t + "hostname: b\n",
    "python tag": lambda t, w: t + "x-tag: !!python/object/apply:os.system ['true']\n",
    "alias bomb": lambda t, w: t + "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"x-{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)),
    "cut": lambda t, w: t[:_at(t, w)] + "\n: [{",
    "huge integer": lambda t, w: t + "x-int: " + "9" * (5000 + int(w * 50_000)) + "\n",
    "too many keys": lambda t, w: t + "".join(f"x-k{i}: 1\n" for i in range(10_001)),
    "too large": lambda t, w: t + "x-pad: '" + "a" * (1 << 20) + "'\n",
    "not a map": lambda t, w: "- " + t.replace("\n", "\n  "),
    "two documents": lambda t, w: t + "---\nhostname: b\n",
}


def clear(problem: str, file: str) -> bool:
    """``FILE: KEY: reason``, naming ``file``, with no exception's name in it."""
    return problem.startswith(f"{file}: ") and problem.count(": ") >= 2 and not UNCLEAR.search(problem)


class Tally:
    def __init__(self) -> None:
        self.attempted = self.rejected = self.accepted = self.lost = 0
        self.problems: list[str] = []

    def lose(self, what: str) -> None:
        self.lost += 1
        self.problems.append(what[:1500])


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    require_root()
    factory = sandbox_factory(tmp_path_factory.mktemp("hostile"))
    sandbox: Sandbox = next(factory)()
    sandbox.wait_ready()
    yield sandbox
    with contextlib.suppress(StopIteration):
        next(factory)


def call(sb: Sandbox, cmd: str, **args: Any) -> Any:
    return SyncClient(sb.paths.control_socket, timeout=60).request(cmd, **args)


def rejected(sb: Sandbox, cmd: str, file: str, tally: Tally, **args: Any) -> None:
    """``cmd`` must be refused, each problem clear and naming ``file`` (or the socket's own refusal of a
    request over its size limit, when ``file`` is that refusal)."""
    try:
        call(sb, cmd, **args)
    except ControlError as exc:
        reason = exc.reason
        if reason.startswith("config has errors, the rest is applied ("):  # a reload: its errors follow
            reason = reason.split("): ", 1)[-1]
        if file == "request too long":
            if not reason.startswith(file):
                tally.lose(f"{cmd}: {reason}")
            return
        # The reason joins the problems with "; " (which a message may hold too) and is cut at the
        # protocol's MAX_REASON: the first problem is checked whole; validate's are checked one by one.
        if not clear(reason, file):
            tally.lose(f"{cmd}: unclear: {reason}")
        return
    tally.lose(f"{cmd}: accepted what validate rejected ({args!r:.300})")


@pytest.mark.timeout(300 + EXAMPLES * 10)
def test_hostile_configs_are_rejected_clearly_and_pid1_lives(sb: Sandbox) -> None:
    tally = Tally()
    dropin = sb.paths.config_dir / "cloud-config.d" / "90-hostile.yml"

    def reload_file(text: str) -> None:
        """``text`` as a drop-in: the reload fails clearly, status says so, and clears once it is gone."""
        dropin.write_text(text, encoding="utf-8", errors="surrogateescape")
        rejected(sb, "reload", str(dropin), tally)
        status = call(sb, "status")
        if status["state"] != "degraded" or not status["config"]["errors"]:
            tally.lose(f"status after a failed reload: {status['state']} {status['config']}")
        dropin.unlink()
        call(sb, "reload")

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(doc=hypothesis_jsonschema.from_schema(flat_schema()), mutation=st.sampled_from(sorted(MUTATIONS)),
           where=st.floats(0, 1), reload=st.booleans())
    def one(doc: Any, mutation: str, where: float, reload: bool) -> None:
        text = MUTATIONS[mutation](dump(doc), where)
        tally.attempted += 1
        if len(json.dumps(text).encode()) + 200 > MAX_REQUEST:  # the socket refuses it before any parse
            rejected(sb, "config.validate", "request too long", tally, yaml=text, filename=NAME)
            tally.rejected += 1
            reload_file(text)
            return
        verdict = call(sb, "config.validate", yaml=text, filename=NAME)
        problems = [f"{e['file']}: {e['key']}: {e['message']}" for e in verdict["errors"]]
        if verdict["valid"]:
            tally.accepted += 1  # a valid config is not applied here (it could touch the host)
        else:
            tally.rejected += 1
            unclear = [p for p in problems if not clear(p, NAME)]
            if unclear:
                tally.lose(f"validate ({mutation}): unclear: {unclear[0]}")
            rejected(sb, "config.merge", NAME, tally, yaml=text, filename=NAME)
            if reload:
                reload_file(text)
        if mutation != "as generated":
            value = MUTATIONS[mutation]("a", where)
            if len(value.encode()) <= (1 << 20) - 1000:
                with contextlib.suppress(AssertionError):
                    rejected(sb, "config.set", "<set>", tally, key="hostname", value=value)
        status = call(sb, "status")  # PID 1 alive and answering after each
        assert status["pid"] == 1

    before = memory(sb.pid1)
    try:
        one()
    finally:
        print(f"hostile configs: attempted {tally.attempted}, rejected {tally.rejected}, "
              f"valid {tally.accepted}, lost {tally.lost}")
    assert not tally.problems, "\n".join(sorted(set(tally.problems))[:20])
    # The config worker gives the last burst's memory back after its reply (supervisor/config/worker.py),
    # on its one thread: a request behind that release returns once it has run. Read before it, the
    # figure held the last document's garbage whenever the release was slower than the next read (a
    # loaded machine; more often since PID 1 is smaller and has less freed heap for it to reuse).
    call(sb, "config.validate", yaml="hostname: after-the-release\n", filename=NAME)
    assert_bounded(before, memory(sb.pid1), MEMORY_BOUND, f"{tally.attempted} hostile configs")
    status = call(sb, "status")
    assert status["state"] == "ready", json.dumps(status["config"])
    assert sb.proc.poll() is None
