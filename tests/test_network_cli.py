"""`corral net ...` against a real control server with fake handlers."""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from supervisor.cli.main import build_parser, main
from supervisor.cli.net import render_status
from supervisor.control.protocol import ControlError
from supervisor.control.server import ControlServer

STATUS: dict[str, Any] = {
    "format": "rancher",
    "links": [
        {"name": "lo", "index": 1, "kind": None, "mtu": 65536, "state": "up", "carrier": True,
         "managed": False, "rule": None, "addresses": [], "routes": [], "dhcp": [],
         "drift": {"pending": [], "corrected": 0, "last": [], "last_at": None}},
        {"name": "eth0", "index": 2, "kind": "veth", "mtu": 1500, "state": "up", "carrier": True,
         "managed": True,
         "rule": {"id": "eth*", "key": 'corral.network.interfaces["eth*"]', "exclusive": False},
         "addresses": [{"address": "198.18.0.2/24", "dynamic": False, "owned": True},
                       {"address": "198.18.60.50/24", "dynamic": True, "owned": False}],
         "routes": [
             {"to": "0.0.0.0/0", "via": "198.18.0.1", "metric": 0, "table": 254, "proto": 4, "owned": True},
             {"to": "198.18.0.0/24", "via": None, "metric": 0, "table": 254, "proto": 2, "owned": False},
         ],
         "dhcp": [{"link": "eth0", "family": 4, "state": "running", "lease": {
             "address": "198.18.60.50/24", "server": "198.18.60.1", "expires": time.time() + 3600}}],
         "drift": {"pending": ["add route 198.18.7.0/24 dev eth0"], "corrected": 2,
                   "last": ["add address 198.18.0.2/24 to eth0"], "last_at": 1.0}},
        {"name": "docker0", "index": 3, "kind": "bridge", "mtu": 1500, "state": "up", "carrier": False,
         "managed": False, "rule": None, "addresses": [{"address": "172.17.0.1/16", "dynamic": False,
                                                         "owned": False}],
         "routes": [], "dhcp": [], "drift": {"pending": [], "corrected": 0, "last": [], "last_at": None}},
    ],
    "dns": {"path": "/etc/resolv.conf", "wanted": None,
            "written": {"nameservers": ["198.18.60.53"], "search": ["corp.example"]}},
    "pending": ["add route 198.18.7.0/24 dev eth0"],
    "try": {"deadline": time.time() + 60, "remaining": 59.5, "text": "..."},
    "rounds": 12,
    "source": {"messages": 345, "overflows": 1},
}  # fmt: skip


def status_now() -> dict[str, Any]:
    """STATUS with the lease expiring an hour from now: the CLI prints the time left, and the module
    may have been imported minutes before the test runs (in a full run)."""
    status = copy.deepcopy(STATUS)
    status["links"][1]["dhcp"][0]["lease"]["expires"] = time.time() + 3600
    return status


DOC = "corral:\n  network:\n    interfaces:\n      eth0: {address: 198.18.1.2/24}\n"


class FakeNet:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def register(self, server: ControlServer) -> None:
        for name in ("net.status", "net.plan", "net.apply", "net.try", "net.confirm"):
            server.register(name, self._handler(name))

    def _handler(self, name: str) -> Any:
        async def handle(args: dict[str, Any]) -> Any:
            self.calls.append((name, args))
            if name == "net.status":
                return status_now()
            if name == "net.plan":
                return {"changes": ["add address 198.18.1.2/24 to eth0"] if args.get("yaml") else [],
                        "format": "rancher"}
            if name == "net.apply":
                return {"applied": ["set br0 up"], "failed": ["create bond bond0: EOPNOTSUPP: nope"]}
            if name == "net.try":
                return {"applied": ["add address 198.18.1.2/24 to eth0"], "failed": [], "deadline": 1.0}
            raise ControlError("no network try is pending")

        return handle


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeNet, Path]]:
    directory = Path(tempfile.mkdtemp(prefix="corral-net-cli-"))
    net = FakeNet()
    server = ControlServer(directory / "control.sock")
    net.register(server)
    with capture_logs():
        await server.start()
        yield net, server.socket_path
        await server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def doc() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="corral-net-doc-"))
    path = directory / "change.yml"
    path.write_text(DOC)
    yield path
    shutil.rmtree(directory, ignore_errors=True)


async def corral(capsys: pytest.CaptureFixture[str], sock: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["--socket", str(sock), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_status_text_and_json(fake: tuple[FakeNet, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await corral(capsys, fake[1], "net", "status")
    assert code == 0
    assert "  eth0     veth    eth*  up     yes      1500" in out
    assert "  address 198.18.0.2/24*" in out and "  address 198.18.60.50/24 dynamic" in out
    assert "  route 0.0.0.0/0 via 198.18.0.1 metric 0*" in out and "198.18.0.0/24" not in out
    assert "  dhcpv4 running: lease 198.18.60.50/24 from 198.18.60.1, expires in 59m" in out
    assert "  drift corrected: 2 change(s); last: add address 198.18.0.2/24 to eth0" in out
    assert "  pending: add route 198.18.7.0/24 dev eth0" in out
    assert "docker0: (not managed: left alone)" in out
    assert "dns: 198.18.60.53 search corp.example (/etc/resolv.conf)" in out
    assert "try: pending, rolled back in 59.5s unless confirmed" in out
    assert "netlink: 345 messages, 1 overflows, 12 reconciles" in out
    code, out, _ = await corral(capsys, fake[1], "net", "status", "-o", "json")
    assert code == 0 and '"rounds": 12' in out


async def test_plan_apply_try_confirm(fake: tuple[FakeNet, Path], doc: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    net, sock = fake
    text = DOC
    assert (await corral(capsys, sock, "net", "plan"))[1] == "nothing to change\n"
    code, out, _ = await corral(capsys, sock, "net", "plan", str(doc))
    assert code == 0 and out == "add address 198.18.1.2/24 to eth0\n"
    assert net.calls[-1] == ("net.plan", {"yaml": text})
    code, out, err = await corral(capsys, sock, "net", "apply")
    assert code == 1 and "set br0 up" in out and "FAILED: create bond bond0" in out
    assert "1 change(s) failed" in err
    code, out, _ = await corral(capsys, sock, "--timeout", "7", "net", "try", "--timeout", "45", str(doc))
    assert code == 0 and "within 45 s" in out
    assert net.calls[-1] == ("net.try", {"yaml": text, "timeout": 45.0})
    code, _, err = await corral(capsys, sock, "net", "confirm")
    assert code == 1 and "no network try is pending" in err


def test_try_timeout_does_not_replace_the_global_one(doc: Path) -> None:
    args = build_parser().parse_args(["--timeout", "7", "net", "try", "--timeout", "45", str(doc)])
    assert args.timeout == 7.0 and args.try_timeout == 45.0
    args = build_parser().parse_args(["net", "try", str(doc)])
    assert args.timeout == 30.0 and args.try_timeout == 120.0


def test_render_status_without_dns_or_try() -> None:
    text = render_status({**STATUS, "dns": {"path": "/x/resolv.conf", "written": None}, "try": None})
    assert "dns: /x/resolv.conf not written by corral" in text and "try:" not in text
