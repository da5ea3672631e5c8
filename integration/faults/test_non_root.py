"""Fault run: every control command, tried by a user who is not root, against a real PID 1 (issue 14:
"non-root attempts at every command"). The socket's file mode is loosened on purpose (0666, reached
through a hard link in a directory anyone may enter), so that only the peer-credential check stands
between the user and the command: each one must be refused before it runs, PID 1 must keep running
with its config unchanged (``poweroff``, ``config.set`` and ``units.down`` among them), and the CLI run
as that user must say why with exit code 3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from integration.sandbox import Sandbox
from supervisor.control.catalogue import COMMANDS
from supervisor.control.protocol import PERMISSION_DENIED

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]

# One connection per command, each request as a client would send it; prints {command: reply}.
PEER = """
import json, socket, sys
replies = {}
for cmd in json.loads(sys.argv[2]):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
    except OSError as exc:
        replies[cmd] = {"connect": exc.errno}
        continue
    try:
        s.sendall(json.dumps({"cmd": cmd, "args": {}}).encode() + b"\\n")
        replies[cmd] = json.loads(s.makefile("rb").readline() or b"null")
    except OSError as exc:
        replies[cmd] = {"send": exc.errno}
    finally:
        s.close()
print(json.dumps(replies))
"""


def as_nobody(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True,
                          timeout=120, cwd="/", env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                      **(env or {})})


def test_every_command_refused_to_a_user_who_is_not_root(sandbox: Any, tmp_path: Path) -> None:
    sb: Sandbox = sandbox({"hostname": "root-only"})
    sb.wait_ready()
    generation = sb.request("status")["config"]["generation"]
    # A way in for the other user: a hard link to the socket in a directory anyone may enter, and the
    # socket's own mode opened up. Only SO_PEERCRED is left to refuse.
    door = Path("/tmp") / f"corral-door-{os.getpid()}-{tmp_path.name}"
    door.mkdir(mode=0o711)
    try:
        link = door / "control.sock"
        os.link(sb.paths.control_socket, link)
        os.chmod(link, 0o666)
        peer = as_nobody([sys.executable, "-c", PEER, str(link), json.dumps(sorted(COMMANDS))])
        assert peer.returncode == 0, peer.stderr
        replies: dict[str, Any] = json.loads(peer.stdout)
        assert set(replies) == set(COMMANDS)
        wrong = {cmd: reply for cmd, reply in replies.items()
                 if reply != {"ok": False, "error": PERMISSION_DENIED}}
        assert not wrong, wrong
        cli = as_nobody([sys.executable, "-m", "supervisor.cli", "config", "set", "hostname", "taken"],
                        env={"CORRAL_SOCKET": str(link)})
        assert cli.returncode == 3 and PERMISSION_DENIED in cli.stderr, cli
    finally:
        for entry in door.iterdir():
            entry.unlink()
        door.rmdir()
    # Nothing ran: PID 1 is up, its config untouched, and each refusal is in the journal.
    status = sb.request("status")
    assert status["state"] == "ready" and status["config"]["generation"] == generation, status
    assert sb.request("config.get", key="hostname") == "root-only"
    refused = [r for r in sb.journal() if r.get("event") == "control connection refused"]
    assert len(refused) >= len(COMMANDS) and {r.get("uid") for r in refused} == {NOBODY}, refused[:3]
    assert sb.stop() == 0
