"""Config input against a real PID 1 (issue 14): big documents are parsed off the loop (status answers
while eight 1 MB validates run), a reload that fails (a drop-in the loader cannot read) shows in
`corral status` until a good one, and bad bytes are clear errors with a line, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from integration.sandbox import CORRAL, Sandbox
from supervisor.config.yamlload import MAX_KEYS
from supervisor.control.client import request_sync

BIG = "".join(f"k{i}: 1\n" for i in range(90_000))  # ~0.9 MB, 90,000 keys (issue 14's document)


def wait_status(sb: Sandbox, predicate: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = sb.request("status")
        if predicate(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_status_answers_while_big_validates_run(sandbox: Any) -> None:
    sb: Sandbox = sandbox()
    sb.wait_ready()
    verdicts: list[Any] = []
    done = threading.Event()

    def validate() -> None:
        reply = request_sync(sb.paths.control_socket, "config.validate", yaml=BIG, filename="big.yml")
        verdicts.append(reply)

    threads = [threading.Thread(target=validate) for _ in range(8)]
    for t in threads:
        t.start()
    def wait_all() -> None:
        for t in threads:
            t.join()
        done.set()

    waiter = threading.Thread(target=wait_all)
    waiter.start()
    answered_meanwhile = 0
    while not done.is_set():
        status = sb.request("status")  # the loop answers: the validates run on the config worker
        assert status["state"] == "ready"
        if not done.is_set():
            answered_meanwhile += 1
    waiter.join()
    assert answered_meanwhile >= 1
    assert len(verdicts) == 8
    for verdict in verdicts:
        assert verdict["valid"] is False
        assert [(e["file"], e["key"]) for e in verdict["errors"]] == [("big.yml", "(document)")]
        assert f"more than {MAX_KEYS} keys (the limit of one document)" in verdict["errors"][0]["message"]
    assert sb.request("status")["state"] == "ready"
    sb.assert_clean_journal()


def test_a_failed_reload_shows_in_status_until_a_good_one(sandbox: Any) -> None:
    sb: Sandbox = sandbox({"hostname": "good"})
    first = sb.wait_ready()
    generation = first["config"]["generation"]
    dropin = sb.paths.config_dir / "cloud-config.d" / "50-bad.yml"
    for text, reason in [("a: " + "[" * 2000 + "\n", "(document): nested more than 64 levels deep (line 1)"),
                         ("hostname: a\x07b\n", "(document): YAML syntax error at line 1, column 12: "
                                                "unacceptable character #x0007")]:
        dropin.write_text(text)
        sb.signal(signal.SIGHUP)
        status = wait_status(sb, lambda s, r=reason: any(r in e for e in s["config"]["errors"]))
        assert status["state"] == "degraded"
        assert "config" in status["degraded"]
        assert [e.split(": ", 1)[0] for e in status["config"]["errors"]] == [str(dropin)]
        assert reason in status["config"]["errors"][0]
        assert status["config"]["generation"] == generation and status["hostname"] == "good"
        r = sb.cli("reload", check=False)
        assert r.returncode == 1 and f"{dropin}: {reason}" in r.stderr and "Traceback" not in r.stderr
    dropin.unlink()
    sb.signal(signal.SIGHUP)
    status = wait_status(sb, lambda s: s["state"] == "ready")
    assert status["state"] == "ready" and status["degraded"] == {} and status["config"]["errors"] == []
    sb.assert_clean_journal(expected_errors=("config error",))


def test_bad_bytes_are_clear_errors_never_tracebacks(sandbox: Any) -> None:
    sb: Sandbox = sandbox()
    sb.wait_ready()
    env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))

    def corral(*argv: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([CORRAL, *argv], env=env, input=stdin, capture_output=True, timeout=60)

    r = corral("config", "set", "hostname", "a\x1bb")
    assert r.returncode == 1
    assert r.stderr.decode() == ("corral: <set>: hostname: YAML syntax error at line 1, column 2: "
                                 "unacceptable character #x001b: special characters are not allowed\n")
    r = corral("config", "set", "hostname", "a\x00b".replace("\x00", "\x01"))
    assert r.returncode == 1 and b"<set>: hostname: YAML syntax error" in r.stderr
    r = corral("config", "set", "hostname", b"a\xffb")
    assert (r.returncode, r.stderr) == (2, b"corral: argument 4 is not UTF-8 text (byte 0xff at position 2); "
                                           b"give arguments as UTF-8\n")
    r = corral("config", "merge", "-", stdin=b"hostname: a\xffb\n")
    assert r.returncode == 1
    assert r.stderr == (b"corral: <stdin>: (document): not UTF-8 text: byte 0xff at line 1, column 12 "
                        b"(invalid start byte); save the file as UTF-8\n")
    r = corral("config", "merge", "-", stdin=b"a: " + b"[" * 2000 + b"\n")
    assert r.returncode == 1
    assert r.stderr == b"corral: <stdin>: (document): nested more than 64 levels deep (line 1)\n"
    r = corral("config", "validate", "-", stdin=BIG.encode())
    assert r.returncode == 1 and f"more than {MAX_KEYS} keys".encode() in r.stdout
    assert sb.request("status")["state"] == "ready"
    sb.assert_clean_journal()


def test_set_and_merge_say_what_they_ignore(sandbox: Any, tmp_path: Path) -> None:
    """A change that corral takes but ignores in part says so to whoever made it: RancherOS's boolean
    dropped by ``set``, a key corral does not implement brought in by ``merge`` (new to the config in
    force), on stderr and in the JSON reply; a plain change has no warnings."""
    sb: Sandbox = sandbox()
    sb.wait_ready()
    r = sb.cli("config", "set", "rancher.state.wait", "true")
    assert "warning: " in r.stderr and "RancherOS's boolean is ignored" in r.stderr, r.stderr
    merged = tmp_path / "ros.yml"
    merged.write_text("rancher:\n  autoformat:\n    enabled: true\n")
    r = sb.cli("config", "merge", "-o", "json", str(merged))
    reply = json.loads(r.stdout)
    assert any("autoformat" in w for w in reply["warnings"]), reply
    again = json.loads(sb.cli("config", "merge", "-o", "json", str(merged)).stdout)
    assert "warnings" not in again, again  # in force already: status lists it, the reply does not
    plain = json.loads(sb.cli("config", "set", "-o", "json", "hostname", "plain").stdout)
    assert "warnings" not in plain, plain
    sb.assert_clean_journal()
