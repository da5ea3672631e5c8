"""PID 1's reload: whatever makes it fail shows in `corral status` (degraded, errors) until a good one,
and the last good config stays in force; a reload never dies as a task with a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.app import Options, Supervisor
from supervisor.journal import Journal
from supervisor.paths import Paths


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    """Made before any loop runs, as PID 1 makes it (it reads the shipped defaults)."""
    made = Supervisor(Options(paths=Paths(tmp_path), cmdline=""), Journal())
    yield made
    made.config_worker.shutdown()


async def test_a_reload_that_raises_is_reported_and_cleared_by_a_good_one(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await sup.reload())["applied"] is True

    def broken() -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(sup.config, "reload", broken)
    result = await sup.reload()
    assert result["applied"] is False and result["changed"] == []
    assert result["errors"] == [
        "config: (document): reload failed: RecursionError: maximum recursion depth exceeded"]
    assert result["salvaged"] == ["(whole config): 1 error(s); on the last good config"]
    sup.state.ready = True
    status = sup.status()
    assert status["state"] == "degraded" and "config" in status["degraded"]
    assert status["config"]["errors"] == result["errors"]
    monkeypatch.undo()
    assert (await sup.reload())["applied"] is True
    status = sup.status()
    assert status["state"] == "ready" and status["degraded"] == {} and status["config"]["errors"] == []


async def test_a_services_include_url_is_fetched_once_the_network_is_up_and_its_units_taken(
    sup: Supervisor, tmp_path: Path
) -> None:
    """Added by a config change (or there at boot), a URL is fetched in the background once per boot,
    and the units of its copy come into force with the reload the fetch asks for."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from units.loader import Loaded

    class Zfs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.strip("/").removesuffix(".yml")
            body = f"{name}:\n  image: busybox\n  labels: {{io.rancher.os.scope: system}}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Zfs)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/zfs.yml"
        conf = sup.paths.config_dir
        await asyncio.to_thread(conf.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(
            (conf / "cloud-config.yml").write_text, f"rancher:\n  services_include:\n    {url}: true\n")
        sup.config.sources.network_ready = False  # as at boot, before the network phase: not yet
        assert "corral.services_include" in (await sup.reload())["changed"]
        assert sup.unit_urls.seen == set()
        sup.config.sources.network_ready = True
        sup.unit_urls.start(sup.setting("services_include", {}))  # what boot does once the network is up
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "unit-urls"]
        await task
        units = sup.config.parsed("units")
        assert isinstance(units, Loaded) and units.units["zfs"].source == url
        assert sup.unit_urls.start(sup.setting("services_include", {})) is None  # once per boot
        assert sup.unit_urls.seen == {url}
        assert [t for t in asyncio.all_tasks() if t.get_name() == "unit-urls" and not t.done()] == []
        other = url.replace("zfs.yml", "other.yml")  # a config change adds one: fetched when it comes
        await asyncio.to_thread((conf / "cloud-config.yml").write_text,
                                f"rancher:\n  services_include:\n    {url}: true\n    {other}: true\n")
        assert "corral.services_include" in (await sup.reload())["changed"]
        assert sup.unit_urls.seen == {url, other}
        [task] = [t for t in asyncio.all_tasks() if t.get_name() == "unit-urls"]
        await task
        units = sup.config.parsed("units")
        assert isinstance(units, Loaded) and {"zfs", "other"} <= set(units.units)
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_the_schema_check_passes_for_the_shipped_schema_and_a_broken_one_degrades_the_boot(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PID 1's store is made without the schema's own check (off the way to the system dockerd); the
    check runs once ready was said (supervisor/boot/schema.py): the shipped schema passes, a broken one is
    said and degrades the boot."""
    import jsonschema

    from supervisor.boot.schema import check_config_schema

    await check_config_schema(sup.config.schema, sup.state.degrade)
    assert sup.state.degraded == {}

    def broken(schema: object) -> None:
        raise jsonschema.SchemaError("'strng' is not valid under any of the given schemas")

    monkeypatch.setattr(jsonschema.Draft202012Validator, "check_schema", broken)
    await check_config_schema(sup.config.schema, sup.state.degrade)
    assert "'strng' is not valid" in sup.state.degraded["schema"]


async def test_the_schema_check_and_the_heap_freeze_wait_for_the_ready_line(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are seconds of CPU under TCG: they run once ready was said (off the user dockerd's start),
    or after AFTER_READY_WAIT without it, never before."""
    import asyncio

    from supervisor import app

    done: list[str] = []

    async def check(schema: object, degrade: object) -> None:
        done.append("schema")

    async def freeze() -> int:
        done.append("freeze")
        return 0

    monkeypatch.setattr(app, "check_config_schema", check)
    monkeypatch.setattr(sup.config_worker, "freeze", freeze)
    said = asyncio.Event()
    task = asyncio.create_task(app._after_ready(sup, said))
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == []  # ready not said yet
    said.set()
    await asyncio.wait_for(task, 5)
    assert done == ["schema", "freeze"]

    monkeypatch.setattr(app, "AFTER_READY_WAIT", 0.01)  # no ready line at all: they run anyway
    done.clear()
    await asyncio.wait_for(app._after_ready(sup, asyncio.Event()), 5)
    assert done == ["schema", "freeze"]


async def test_after_ready_does_nothing_once_a_shutdown_began(
    sup: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown closes the config worker: the freeze must not be asked of it then (CI saw "cannot
    schedule new futures after shutdown" as a failed task in the journal of a sandbox told to reboot)."""
    import asyncio

    from supervisor import app

    done: list[str] = []

    async def check(schema: object, degrade: object) -> None:
        done.append("schema")

    async def freeze() -> int:
        done.append("freeze")
        return 0

    monkeypatch.setattr(app, "check_config_schema", check)
    monkeypatch.setattr(sup.config_worker, "freeze", freeze)
    said = asyncio.Event()
    said.set()
    sup.state.stopping = True
    await asyncio.wait_for(app._after_ready(sup, said), 5)
    assert done == []
