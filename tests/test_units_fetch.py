"""``services_include`` of a URL (units/fetch.py) against a real HTTP server on 127.0.0.1: the unit file
fetched, kept and loaded (its problems naming the URL); the server gone, the copy kept before used; bad
YAML and a body over the limit refused, naming the URL, the copy left as it was; the retries on the
shared backoff; a changed copy reloads the config and the units are taken again (the same config)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from supervisor.config.netsources import Http, Retry
from supervisor.config.store import ConfigStore
from supervisor.config.yamlload import MAX_BYTES
from supervisor.domain_checks import domain_checks
from supervisor.paths import Paths
from units.fetch import fetch_unit_file, fetch_unit_urls
from units.loader import Loaded, load_units
from units.unitfiles import cached_copy, included_urls

ZFS = """zfs:
  image: ${REGISTRY_DOMAIN}/rancher/os-zfs:v0.7.13-1${SUFFIX}
  labels:
    io.rancher.os.scope: system
    io.rancher.os.detach: "false"
"""
DEFAULTS = {"REGISTRY_DOMAIN": "docker.io", "ARCH": "amd64", "SUFFIX": "", "KERNEL_VERSION": "6.1.0"}
QUICK = Retry(attempts=2, timeout=5.0, pause=0.01)


class Files(BaseHTTPRequestHandler):
    docs: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.docs.get(self.path)
        self.send_response(404 if body is None else 200)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[ThreadingHTTPServer, str]]:
    Files.docs = {"/zfs.yml": ZFS.encode()}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def load(url: str, fetched: Path) -> Loaded:
    config = {"corral": {"services_include": {url: True}}}
    return load_units(config, unit_dirs=[], defaults=DEFAULTS, fetched_dir=fetched)


def test_fetched_kept_and_loaded_then_the_copy_when_the_server_is_gone(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path) -> None:
    httpd, base = server
    url = f"{base}/zfs.yml"
    fetched = tmp_path / "units-fetched"
    before = load(url, fetched)
    assert before.ok and before.units == {}
    assert [w.key for w in before.warnings] == [f'corral.services_include["{url}"]']
    assert "not fetched yet: nothing runs from it" in before.warnings[0].message

    outcome = fetch_unit_file(url, fetched, Http(QUICK))
    assert (outcome.level, outcome.event, outcome.changed, outcome.units) == (
        "info", "unit file fetched", True, ("zfs",))
    assert cached_copy(fetched, url).read_text() == ZFS
    loaded = load(url, fetched)
    assert loaded.ok and loaded.warnings == []
    assert loaded.units["zfs"].image == "docker.io/rancher/os-zfs:v0.7.13-1"
    assert loaded.units["zfs"].source == url  # its problems and its definition name the URL
    again = fetch_unit_file(url, fetched, Http(QUICK))
    assert (again.event, again.changed) == ("unit file fetched (unchanged)", False)

    httpd.shutdown()
    httpd.server_close()
    gone = fetch_unit_file(url, fetched, Http(QUICK))
    assert (gone.level, gone.event, gone.changed) == (
        "warning", "unit file not fetched; using the copy fetched before", False)
    assert url in gone.detail and "after 2 tries" in gone.detail
    assert load(url, fetched).units.keys() == {"zfs"}


def test_a_unit_files_own_errors_name_the_url(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path) -> None:
    _, base = server
    Files.docs["/bad-unit.yml"] = b"web:\n  image: x\n  restart: sometimes\n"
    url = f"{base}/bad-unit.yml"
    assert fetch_unit_file(url, tmp_path, Http(QUICK)).changed
    loaded = load(url, tmp_path)
    assert [(e.file, e.key) for e in loaded.errors] == [(url, "web.restart")]


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"web: [unclosed\n", "YAML syntax error"), (b"- a\n- b\n", "a unit file is a map"),
     (b"x" * (MAX_BYTES + 1), "too"), (b"web:\n  image: \xff\n", "not UTF-8")],
    ids=["bad-yaml", "not-a-map", "too-big", "not-utf8"],
)
def test_bad_or_too_big_is_refused_naming_the_url_and_the_copy_stays(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path, body: bytes, why: str) -> None:
    _, base = server
    url = f"{base}/zfs.yml"
    assert fetch_unit_file(url, tmp_path, Http(QUICK)).changed
    Files.docs["/zfs.yml"] = body
    outcome = fetch_unit_file(url, tmp_path, Http(QUICK))
    assert (outcome.level, outcome.event) == ("error", "unit file refused; using the copy fetched before")
    assert outcome.detail.startswith(f"{url}: ") and why in outcome.detail
    assert cached_copy(tmp_path, url).read_text() == ZFS
    fresh = fetch_unit_file(url, tmp_path / "none", Http(QUICK))
    assert fresh.event == "unit file refused; nothing runs from it" and not (tmp_path / "none").exists()


def test_not_there_is_a_warning_and_nothing_runs(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path) -> None:
    _, base = server
    outcome = fetch_unit_file(f"{base}/nope.yml", tmp_path, Http(QUICK))
    assert (outcome.level, outcome.event) == ("warning", "unit file not fetched; nothing runs from it")
    assert "HTTP 404" in outcome.detail


def test_retries_are_bounded_and_paused_by_the_shared_backoff(tmp_path: Path) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there: refused
    pauses: list[float] = []
    http = Http(Retry(attempts=4, timeout=2.0, pause=1.0), sleep=pauses.append)
    outcome = fetch_unit_file(f"http://127.0.0.1:{port}/x.yml", tmp_path, http)
    assert outcome.event == "unit file not fetched; nothing runs from it"
    assert "after 4 tries" in outcome.detail
    assert pauses == [1.0, 2.0, 4.0]


def test_a_url_that_is_not_http_is_refused(tmp_path: Path) -> None:
    outcome = fetch_unit_file("http://", tmp_path, Http(QUICK))
    assert outcome.level == "error" and "http:// or https:// URL with a host" in outcome.detail


def test_included_urls() -> None:
    includes = {"https://a/x.yml": True, "http://b/y.yml": False, "zfs": True, "https://c/z.yml": True}
    assert included_urls(includes) == ["https://a/x.yml", "https://c/z.yml"]
    assert included_urls(None) == []


async def test_fetching_logs_each_url_and_reloads_only_when_a_copy_changed(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path) -> None:
    _, base = server
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)

    urls = [f"{base}/zfs.yml", f"{base}/nope.yml"]
    with structlog.testing.capture_logs() as logs:
        await fetch_unit_urls(urls, tmp_path, reload, Http(QUICK))
    assert [(e["event"], e["log_level"], e["url"]) for e in logs] == [
        ("unit file fetched", "info", urls[0]),
        ("unit file not fetched; nothing runs from it", "warning", urls[1]),
    ]
    assert reloads == [1]
    await fetch_unit_urls(urls[:1], tmp_path, reload, Http(QUICK))
    assert reloads == [1]  # unchanged: no reload


def test_a_reload_takes_the_fetched_copy_under_the_same_config(
        server: tuple[ThreadingHTTPServer, str], tmp_path: Path) -> None:
    """The config does not change when a copy does: the store takes the units again all the same."""
    _, base = server
    url = f"{base}/zfs.yml"
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / "cloud-config.yml").write_text(
        f"#cloud-config\nrancher:\n  services_include:\n    {url}: true\n")
    store = ConfigStore(paths, cmdline_text="", checks=domain_checks(paths))
    first = store.load()
    assert first.errors == [] and any(url in w.key for w in first.warnings)
    units = store.parsed("units")
    assert isinstance(units, Loaded) and "zfs" not in units.units
    generation = store.generation
    assert fetch_unit_file(url, paths.fetched_units_dir, Http(QUICK)).changed
    assert store.reload().changed == ["corral.services", "corral.services_include"]
    assert store.generation == generation + 1
    units = store.parsed("units")
    assert isinstance(units, Loaded) and units.units["zfs"].source == url
    assert not any(url in w.key for w in store.last_warnings)
    assert store.reload().changed == []  # nothing new: the same generation
    assert store.generation == generation + 1
