"""The `corral` CLI's commands that only forward a request to PID 1 (config get/set/unset/merge/export,
units ...) import no more than the socket's client: PID 1 parses and validates, so the CLI needs neither
jsonschema nor the config store nor the domain checks. Loading them made every `corral config merge`
0.3 s slower to reach PID 1 (docs/benchmarks.md, "N units against docker-compose"). Each command runs in
a fresh interpreter against a stand-in control socket that answers like PID 1, and the modules it loaded
are checked; `config validate`, which runs the checks here, shows that the check sees them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

HEAVY = (
    "jsonschema", "referencing", "supervisor.config.store", "supervisor.config.validate",
    "supervisor.config.schema", "supervisor.domain_checks", "units.loader", "structlog", "asyncio",
)  # fmt: skip
"""What a forwarding command must not import."""

APPLIED = {"generation": 2, "changed": ["hostname"]}
UNIT = {"name": "web", "state": "running", "restarts": 0}
RESULTS: dict[str, Any] = {
    "config.get": "edge-1", "config.set": APPLIED, "config.unset": APPLIED, "config.merge": APPLIED,
    "config.export": "#cloud-config\nhostname: edge-1\n", "reload": APPLIED, "units.list": [UNIT],
    "units.up": UNIT, "units.down": UNIT, "units.restart": UNIT,
}  # fmt: skip
"""What the stand-in PID 1 answers to each command."""

# The CLI in a fresh interpreter; its last line of output is the modules it loaded.
RUN = """
import json, sys
from supervisor.cli.main import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(name for name, module in sys.modules.items() if module is not None)]))
"""


def _serve(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn, conn.makefile("rwb") as f:
            request = json.loads(f.readline())
            reply = {"ok": True, "result": RESULTS.get(request["cmd"])}
            f.write(json.dumps(reply).encode() + b"\n")
            f.flush()


@pytest.fixture
def control_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "control.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    thread = threading.Thread(target=_serve, args=(server,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(5)


def _imports(sock: Path, *argv: str) -> tuple[int, str, set[str]]:
    out = subprocess.run([sys.executable, "-c", RUN, "--socket", str(sock), *argv], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    *printed, last = out.stdout.strip().splitlines()
    code, modules = json.loads(last)
    return code, "\n".join(printed), set(modules)


@pytest.mark.parametrize("argv", [
    ("config", "get", "hostname"),
    ("config", "set", "hostname", "edge-1"),
    ("config", "unset", "hostname"),
    ("config", "merge", "{file}"),
    ("config", "export"),
    ("units", "list"),
    ("units", "up", "web"),
    ("service", "restart", "web"),
], ids=" ".join)  # fmt: skip
def test_a_forwarding_command_imports_no_validation(control_socket: Path, tmp_path: Path,
                                                    argv: tuple[str, ...]) -> None:
    document = tmp_path / "my.yml"
    document.write_text("#cloud-config\nhostname: edge-1\n")
    code, printed, modules = _imports(control_socket, *(a.format(file=document) for a in argv))
    assert code == 0, printed
    assert printed  # it got PID 1's answer and printed it
    assert sorted(modules & set(HEAVY)) == []


def test_validate_runs_the_checks_here_and_the_check_sees_them(control_socket: Path, tmp_path: Path) -> None:
    document = tmp_path / "my.yml"
    document.write_text("#cloud-config\nhostname: edge-1\n")
    code, printed, modules = _imports(control_socket, "config", "validate", str(document))
    assert (code, printed) == (0, f"{document}: valid")
    assert {"jsonschema", "supervisor.config.store", "supervisor.domain_checks"} <= modules
