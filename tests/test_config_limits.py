"""Every config input is bounded (bytes, nesting, keys, values) with an error naming the limit, a
failure of the loader itself is the document's error (never a traceback), and the config worker runs
config work off the loop, one at a time, with a bounded queue."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from supervisor.cli.main import main, not_utf8
from supervisor.config import ConfigStore, layers, yamlload
from supervisor.config.layers import check_text
from supervisor.config.schema import Schema
from supervisor.config.validate import Validator
from supervisor.config.worker import ConfigWorker, WorkerBusy
from supervisor.config.yamlload import MAX_BYTES, MAX_KEYS, MAX_NODES, parse_yaml
from supervisor.paths import Paths

VALIDATOR = Validator(Schema())


def test_a_document_with_too_many_keys_stops_at_the_limit() -> None:
    text = "".join(f"k{i}: 1\n" for i in range(90_000))  # ~0.9 MB, as in issue 14
    _, _, errors = parse_yaml(text, "big.yml")
    assert len(errors) == 1
    assert errors[0].file == "big.yml" and errors[0].key == "(document)"
    assert f"more than {MAX_KEYS} keys (the limit of one document)" in errors[0].message
    assert errors[0].line is not None and errors[0].line <= MAX_KEYS + 1  # stopped there, not at the end


def test_a_document_with_too_many_values_stops_at_the_limit() -> None:
    _, _, errors = parse_yaml("a: [" + "1," * (MAX_NODES + 10) + "]\n", "list.yml")
    assert f"more than {MAX_NODES} values (the limit of one document)" in errors[0].message


def test_just_under_the_key_limit_is_read() -> None:
    text = "".join(f"k{i}: v\n" for i in range(MAX_KEYS))
    value, _, errors = parse_yaml(text, "f")
    assert errors == [] and len(value) == MAX_KEYS


def test_a_set_value_over_the_byte_limit_is_an_error() -> None:
    _, _, errors = parse_yaml("x" * (MAX_BYTES + 1), "<set>")
    assert "too large" in errors[0].message and str(MAX_BYTES) in errors[0].message


def test_nesting_past_the_limit_in_any_form_is_an_error() -> None:
    for text in ["[" * 2000, "a: " + "[" * 2000 + "]" * 2000, "a: " + "{a: " * 2000, "- " * 2000]:
        _, _, errors = parse_yaml(text, "deep.yml")
        assert "nested more than 64 levels deep" in errors[0].message, text[:10]


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), MemoryError(),
                                 RuntimeError("boom")])
def test_a_failure_of_the_loader_is_the_documents_error(monkeypatch: pytest.MonkeyPatch,
                                                        exc: BaseException) -> None:
    def explode(*args: object) -> None:
        raise exc

    monkeypatch.setattr(yamlload.StrictLoader, "get_single_data", explode)
    _, _, errors = parse_yaml("a: 1\n", "drop.yml")
    assert [(e.file, e.key) for e in errors] == [("drop.yml", "(document)")]
    assert errors[0].message.startswith(f"cannot be read: {type(exc).__name__}")

    monkeypatch.setattr(layers, "load_document", explode)
    layer, errors = check_text("a: 1\n", "drop.yml", VALIDATOR)
    assert layer is None
    assert str(errors[0]).startswith(f"drop.yml: (document): cannot be read: {type(exc).__name__}")


def test_a_failure_of_the_validator_is_the_documents_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RecursionError("deep")

    monkeypatch.setattr(Validator, "validate", explode)
    layer, errors = check_text("hostname: h\n", "f.yml", VALIDATOR)
    assert layer is None and str(errors[0]) == "f.yml: (document): cannot be read: RecursionError: deep"


def test_an_integer_over_the_digit_limit_is_an_error_naming_the_limit() -> None:
    _, _, errors = parse_yaml("a: " + "9" * 5000 + "\n", "f.yml")
    assert [str(e) for e in errors] == [
        "f.yml: (document): an integer with more than 4300 digits (the limit)"]


def test_control_characters_are_errors_with_line_and_column() -> None:
    for char in "\x00\x07\x1b":
        _, _, errors = parse_yaml(f"hostname: a{char}b\n", "f.yml")
        assert f"line 1, column 12: unacceptable character #x{ord(char):04x}" in errors[0].message


def test_the_worker_runs_off_the_loop_one_at_a_time() -> None:
    async def scenario() -> None:
        worker = ConfigWorker(max_waiting=2)
        loop_thread = threading.get_ident()
        seen: list[int] = []
        running = 0
        most = 0
        gate = threading.Event()

        def job() -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            gate.wait(10)
            seen.append(threading.get_ident())
            running -= 1
            return len(seen)

        tasks = [asyncio.create_task(worker.run_input(job)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert worker.pending == 3
        with pytest.raises(WorkerBusy, match="2 config requests are already waiting"):
            await worker.run_input(job)
        gate.set()
        assert sorted(await asyncio.gather(*tasks)) == [1, 2, 3]
        assert most == 1 and loop_thread not in seen and len(set(seen)) == 1
        assert worker.pending == 0
        worker.shutdown()

    asyncio.run(scenario())


def test_a_cancelled_waiting_request_never_runs() -> None:
    async def scenario() -> None:
        worker = ConfigWorker()
        gate = threading.Event()
        ran: list[str] = []
        first = asyncio.create_task(worker.run(lambda: gate.wait(10)))
        second = asyncio.create_task(worker.run(lambda: ran.append("second")))
        await asyncio.sleep(0.05)
        second.cancel()
        await asyncio.sleep(0.05)  # the cancellation reaches the waiting job
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second
        await worker.run(lambda: None)
        assert ran == []
        worker.shutdown()

    asyncio.run(scenario())


def test_non_utf8_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    arg = b"a\xffb".decode("utf-8", "surrogateescape")  # as Python hands such an argv over
    assert not_utf8(["config", "set", "hostname", arg]) == (
        "argument 4 is not UTF-8 text (byte 0xff at position 2); give arguments as UTF-8")
    assert not_utf8(["config", "set", "hostname", "héllo"]) is None
    assert main(["config", "set", "hostname", arg]) == 2
    err = capsys.readouterr().err
    assert err == "corral: argument 4 is not UTF-8 text (byte 0xff at position 2); give arguments as UTF-8\n"


def test_key_paths_are_bounded(tmp_path: Path) -> None:
    store = ConfigStore(Paths(tmp_path))
    deep = "corral." + "x." * 100 + "y"
    assert store.set(deep, "1")[0].message == "nested more than 64 levels deep"
    assert store.set("[" * 3000, "1")[0].message == "a key path is at most 1000 characters (the limit)"
    assert store.unset("a" * 1001)[0].message == "a key path is at most 1000 characters (the limit)"
    with pytest.raises(ValueError, match="at most 1000 characters"):
        store.get("a" * 1001)


def test_the_worker_gives_memory_back_once_after_a_burst_on_its_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the last request of a burst (none waiting), the worker collects and trims the C heap, on its
    thread: freed parse memory goes back to the kernel instead of staying in PID 1 (issue 17)."""
    from supervisor.config import worker as worker_mod

    released: list[tuple[int, int]] = []  # (thread, jobs done by then)
    done: list[int] = []
    monkeypatch.setattr(worker_mod, "release", lambda: released.append((threading.get_ident(), len(done))))

    async def scenario() -> None:
        worker = ConfigWorker()
        gate = threading.Event()

        def job() -> None:
            gate.wait(10)
            done.append(threading.get_ident())

        tasks = [asyncio.create_task(worker.run_input(job)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert released == []  # nothing while the burst runs
        gate.set()
        await asyncio.gather(*tasks)
        for _ in range(100):
            if worker.releases:
                break
            await asyncio.sleep(0.01)
        assert worker.releases == 1
        assert released == [(done[0], 3)]  # the worker's thread, after the three jobs
        await worker.run(lambda: None)
        await worker.run(lambda: None)
        for _ in range(100):
            if worker.releases == 3:
                break
            await asyncio.sleep(0.01)
        assert worker.releases == 3  # one after each request that came alone
        worker.shutdown()

    asyncio.run(scenario())


def test_a_change_and_its_reload_are_one_burst_released_once_after_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`config set/unset/merge` is two requests (the change, the reload): inside ``burst`` the worker
    gives memory back once, after both, not between them, where the collection held PID 1's loop and the
    reload waited behind it (bench/units_compose.py)."""
    from supervisor.config import worker as worker_mod

    order: list[str] = []
    monkeypatch.setattr(worker_mod, "release", lambda: order.append("release"))

    async def scenario() -> None:
        worker = ConfigWorker()
        async with worker.burst():
            await worker.run_input(lambda: order.append("change"))
            await asyncio.sleep(0.05)  # time enough for a release to run, were one submitted
            await worker.run(lambda: order.append("reload"))
            await asyncio.sleep(0.05)
            assert order == ["change", "reload"]
        for _ in range(500):
            if worker.releases:
                break
            await asyncio.sleep(0.01)
        assert order == ["change", "reload", "release"]
        async with worker.burst():  # a burst whose change fails before any request: released all the same
            pass
        for _ in range(500):
            if worker.releases == 2:
                break
            await asyncio.sleep(0.01)
        assert worker.releases == 2
        worker.shutdown()

    asyncio.run(scenario())


def test_release_empties_the_free_lists_and_trims_the_c_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor import clib
    from supervisor.config import worker as worker_mod

    calls: list[str] = []
    monkeypatch.setattr(worker_mod.gc, "collect", lambda generation=2: calls.append(f"collect {generation}"))
    monkeypatch.setattr(clib, "malloc_trim", lambda: calls.append("trim") or True)
    worker_mod.release()
    assert calls == ["collect 2", "trim"]  # a full collection: only that one empties the free lists


def test_malloc_trim_is_glibcs() -> None:
    from supervisor import clib

    assert clib.malloc_trim() in (True, False)  # callable here; the answer is whether pages went back


@pytest.mark.parametrize("command", ["config_set", "config_unset", "config_merge"])
def test_config_set_unset_and_merge_release_once_after_their_reload(
    monkeypatch: pytest.MonkeyPatch, command: str,
) -> None:
    """The control commands make their change and its reload one burst of the worker (one release)."""
    from typing import Any, cast

    from supervisor.commands.core import Commands
    from supervisor.commands.host import Host
    from supervisor.config import worker as worker_mod

    order: list[str] = []
    monkeypatch.setattr(worker_mod, "release", lambda: order.append("release"))

    class Store:
        last_edit_warnings: list[Any] = []

        def set(self, key: str, value: str) -> list[Any]:
            order.append("change")
            return []

        def unset(self, key: str) -> list[Any]:
            order.append("change")
            return []

        def merge(self, text: str, filename: str | None) -> list[Any]:
            order.append("change")
            return []

    class Sup:
        def __init__(self) -> None:
            self.config = Store()
            self.config_worker = ConfigWorker()

        async def reload(self) -> dict[str, Any]:
            await asyncio.sleep(0.05)  # time enough for a release to run, were one submitted already
            await self.config_worker.run(lambda: order.append("reload"))
            return {"applied": True, "generation": 2, "changed": ["hostname"]}

    async def scenario() -> None:
        sup = Sup()
        args = {"key": "hostname", "value": "a", "yaml": "hostname: a", "filename": None}
        assert await getattr(Commands(cast(Host, sup)), command)(args) == {"generation": 2,
                                                                          "changed": ["hostname"]}
        for _ in range(500):
            if sup.config_worker.releases:
                break
            await asyncio.sleep(0.01)
        assert order == ["change", "reload", "release"]
        sup.config_worker.shutdown()

    asyncio.run(scenario())


def test_freeze_moves_what_lives_at_ready_out_of_later_collections() -> None:
    """Once PID 1 is ready the worker collects and freezes its heap (gc.freeze): later collections, the
    release's and the loop's, walk only what came after (issue 17: the release held the loop 100-300 ms)."""
    import gc

    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only a collection frees it

    kept = Node()
    seen_before = any(o is kept for o in gc.get_objects())

    async def scenario() -> tuple[int, int]:
        worker = ConfigWorker()
        try:
            first = await worker.freeze()
            again = await worker.freeze()  # once: later objects would include a request's leftovers
            return first, again
        finally:
            worker.shutdown()

    try:
        first, again = asyncio.run(scenario())
        assert first == again > 10_000  # this process's modules and objects (some die since: fewer now)
        assert gc.get_freeze_count() > 10_000
        assert seen_before and not any(o is kept for o in gc.get_objects())  # the collector skips it
        later = Node()
        assert any(o is later for o in gc.get_objects())  # what comes after is collected as before
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual
