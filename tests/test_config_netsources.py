"""The network datasources (supervisor/config/netsources.py) against a real HTTP server on 127.0.0.1: an
EC2-style instance metadata service (IMDSv2 token, then the meta-data and user-data paths, as the EC2
docs give them) and a plain URL. Bounded retries (a few 503s, then the answer), nothing before the
network is up, what was fetched kept for the boot, and a server that is not there a warning."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supervisor.boot.datasources import network_datasources
from supervisor.config import ConfigStore
from supervisor.config.datasources import default_registry
from supervisor.config.netsources import Ec2Datasource, Retry, UrlDatasource
from supervisor.paths import Paths

TOKEN = "AQAEAtoken=="
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEc2TestKey ec2-key"
USER_DATA = "#cloud-config\ncorral:\n  log: {level: debug}\n"


class Metadata(BaseHTTPRequestHandler):
    """An instance metadata service: IMDSv2 (or IMDSv1 when ``v2`` is off); ``fail`` 503s first."""

    docs = {
        "/latest/meta-data/instance-id": "i-0123456789abcdef0",
        "/latest/meta-data/local-hostname": "ip-10-0-0-12.ec2.internal",
        "/latest/meta-data/public-keys/": "0=my-key",
        "/latest/meta-data/public-keys/0/openssh-key": KEY + "\n",
        "/latest/user-data": USER_DATA,
    }
    v2 = True
    fail = 0
    seen: list[str] = []

    def _send(self, code: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        self.seen.append(f"PUT {self.path}")
        if not self.v2:
            self._send(405)
        elif self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") and self.path == "/latest/api/token":
            self._send(200, TOKEN)
        else:
            self._send(400)

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if type(self).fail > 0:
            type(self).fail -= 1
            self._send(503)
        elif self.v2 and self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self._send(401)
        elif self.path in self.docs:
            self._send(200, self.docs[self.path])
        else:
            self._send(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Metadata]]]:
    handler = type("Handler", (Metadata,), {"seen": [], "fail": 0, "v2": True, "docs": dict(Metadata.docs)})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


FAST = Retry(attempts=3, timeout=2.0, pause=0.01)


def store(tmp_path: Path, spec: str, more: str = "") -> ConfigStore:
    registry = default_registry()
    for kind, cls in (("ec2", Ec2Datasource), ("url", UrlDatasource)):
        fast = type(f"Fast{cls.__name__}", (cls,), {"retry": FAST})
        registry.register(kind, fast)
    return ConfigStore(Paths.sandbox(tmp_path), cmdline_text=f"corral.cloud_init.datasources=[{spec}] {more}",
                       registry=registry)


def test_ec2_imdsv2(tmp_path: Path, server: tuple[str, type[Metadata]]) -> None:
    address, handler = server
    s = store(tmp_path, f"ec2:{address}")
    result = s.load()
    assert result.errors == [] and result.warnings == []
    assert s.get("hostname") == "ip-10-0-0-12.ec2.internal"
    assert s.get("ssh_authorized_keys") == [KEY]
    assert s.get("corral.log.level") == "debug"
    assert s.provenance["corral.log.level"] == f"http://{address}/latest/user-data"
    assert handler.seen[0] == "PUT /latest/api/token"
    assert result.notes == [f"ec2:{address}: http://{address}: user-data, hostname, 1 ssh key(s) "
                            "(instance-id i-0123456789abcdef0)"]
    # kept for the boot: a reload asks nothing again
    count = len(handler.seen)
    assert s.reload().ok and len(handler.seen) == count


def test_ec2_imdsv1_when_the_token_is_refused(tmp_path: Path, server: tuple[str, type[Metadata]]) -> None:
    address, handler = server
    handler.v2 = False
    s = store(tmp_path, f"ec2:http://{address}")
    assert s.load().errors == []
    assert s.get("hostname") == "ip-10-0-0-12.ec2.internal"


def test_ec2_retries_a_few_failures(tmp_path: Path, server: tuple[str, type[Metadata]]) -> None:
    address, handler = server
    handler.fail = 2  # two 503s, then the answers (3 attempts per request)
    s = store(tmp_path, f"ec2:{address}")
    result = s.load()
    assert result.warnings == []
    assert s.get("ssh_authorized_keys") == [KEY]


def test_ec2_gives_up_after_the_bounded_retries_and_the_boot_goes_on(
    tmp_path: Path, server: tuple[str, type[Metadata]]
) -> None:
    address, handler = server
    handler.fail = 100
    s = store(tmp_path, f"ec2:{address}", "corral.log.level=warning")
    result = s.load()
    assert result.errors == []
    assert [w.message for w in result.warnings] == [
        f"http://{address}: HTTP 503 Service Unavailable after 3 tries: skipped"]
    assert s.get("corral.log.level") == "warning"
    gets = [line for line in handler.seen if line.startswith("GET")]
    assert len(gets) == 3  # the token was given; instance-id tried 3 times
    handler.fail = 0
    assert s.reload().ok and s.get("hostname") == "ip-10-0-0-12.ec2.internal"  # not kept: tried again


def test_nothing_listening_is_a_warning(tmp_path: Path, server: tuple[str, type[Metadata]]) -> None:
    s = store(tmp_path, "ec2:127.0.0.1:9")  # discard: nothing listens there
    result = s.load()
    assert result.errors == []
    assert "after 3 tries: skipped" in result.warnings[0].message


def test_nothing_is_fetched_before_the_network_is_up(tmp_path: Path, server: tuple[str, type[Metadata]]
                                                     ) -> None:
    address, handler = server
    s = store(tmp_path, f"ec2:{address}")
    s.sources.network_ready = False
    result = s.load()
    assert result.errors == [] and result.warnings == [] and handler.seen == []
    assert result.notes == [f"ec2:{address}: waiting for the network"]
    assert s.sources.pending == [f"ec2:{address}"]
    s.sources.network_ready = True
    assert s.reload().ok and s.get("hostname") == "ip-10-0-0-12.ec2.internal"
    assert s.sources.pending == []


def test_url_datasource(tmp_path: Path, server: tuple[str, type[Metadata]]) -> None:
    address, handler = server
    handler.v2 = False
    s = store(tmp_path, f"url:http://{address}/latest/user-data")
    result = s.load()
    assert result.errors == [] and result.warnings == []
    assert s.get("corral.log.level") == "debug"
    missing = store(tmp_path / "b", f"url:http://{address}/nothing").load()
    assert [w.message for w in missing.warnings] == [f"http://{address}/nothing: HTTP 404: skipped"]


@pytest.mark.parametrize("spec", ["url:ftp://x/y", "url:", "ec2:http://", "ec2:host:port"])
def test_network_datasource_arguments_are_checked(tmp_path: Path, spec: str) -> None:
    errors = store(tmp_path, spec).reload().errors
    assert [(e.file, e.key) for e in errors] == [("cmdline", "corral.cloud_init.datasources[0]")]


def test_boot_reads_the_config_again_once_the_network_is_up(
    tmp_path: Path, server: tuple[str, type[Metadata]]
) -> None:
    """The network-datasources phase (supervisor/boot/datasources.py): a load only when one is pending."""
    address, _ = server
    s = store(tmp_path, f"ec2:{address}")
    s.sources.network_ready = False
    assert s.load().ok and s.sources.pending == [f"ec2:{address}"]
    loads: list[int] = []

    async def load() -> None:
        loads.append(1)
        await asyncio.to_thread(s.load)

    asyncio.run(network_datasources(s.sources, load))
    assert loads == [1] and s.get("hostname") == "ip-10-0-0-12.ec2.internal"
    asyncio.run(network_datasources(s.sources, load))  # nothing pending any more: no load
    assert loads == [1]
