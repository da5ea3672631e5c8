"""Drive a sandboxed supervisor (a real PID 1 in its own namespaces) from tests."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from supervisor import sandbox as sandbox_mod
from supervisor.control.client import request_sync, stream_sync
from supervisor.paths import Paths

CORRAL = str(Path(sys.executable).with_name("corral"))
# Sandboxes start without the system dockerd unless a test asks (it costs a second at boot and stop).
SYSTEM_DOCKER_DEFAULT = False
# ... and without the user's dockerd (the `docker` unit, on by default) unless a test asks for it.
USER_DOCKER_DEFAULT = False


class Sandbox:
    def __init__(self, directory: Path, config: dict[str, Any] | None = None, cmdline: str = "",
                 emergency_shell: str | None = None, setup: Callable[[Path], None] | None = None,
                 default_units: bool = False) -> None:
        """``default_units``: keep the shipped units (docker, console) included as on a real host;
        they are never started while the system dockerd is off, but the config checks see them."""
        self.dir = directory
        config_file = None
        if config is not None:
            config_file = directory.parent / f"{directory.name}-config.yml"
            config_file.write_text("#cloud-config\n" + yaml.safe_dump(config))
        self.paths: Paths = sandbox_mod.prepare(directory, config_file, cmdline)
        if setup is not None:
            setup(directory)
        dropins = self.paths.config_dir / "cloud-config.d"
        dropins.mkdir(parents=True, exist_ok=True)
        enabled = "true" if SYSTEM_DOCKER_DEFAULT else "false"
        dropin = dropins / "00-test-system-docker.yml"
        dropin.write_text(f"corral:\n  system_docker:\n    enabled: {enabled}\n")
        if not default_units:
            user_docker = "true" if USER_DOCKER_DEFAULT else "false"
            (dropins / "00-test-user-docker.yml").write_text(
                f"corral:\n  services_include:\n    docker: {user_docker}\n    console: false\n")
        self.console = directory / "console.log"
        self._console_file = open(self.console, "ab")  # noqa: SIM115
        # PID 1 runs under the loop guard (supervisor/loopguard.py): a blocking call on its loop fails.
        # (The benches measure PID 1 as it ships: they set CORRAL_LOOP_GUARD=0, bench/__init__.py.)
        env = dict(os.environ, CORRAL_LOOP_GUARD=os.environ.get("CORRAL_LOOP_GUARD", "1"))
        self.proc = subprocess.Popen(sandbox_mod.argv(directory, emergency_shell), stdin=subprocess.DEVNULL,
                                     env=env,
                                     stdout=self._console_file, stderr=self._console_file,
                                     start_new_session=True)
        self.returncode: int | None = None

    # ---- waiting -------------------------------------------------------------------------------
    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"sandbox exited {self.proc.returncode}:\n{self.console_text()}")
            if self.paths.control_socket.exists():
                try:
                    last = self.request("status")
                    if last["state"] in ("ready", "degraded") and _archives_done(last):
                        return dict(last)
                except Exception as exc:  # not serving yet
                    last = exc
            time.sleep(0.05)
        raise AssertionError(f"sandbox not ready in {timeout}s (last: {last}):\n{self.console_text()}")

    @property
    def pid1(self) -> int:
        """The supervisor's pid as the host sees it (the child of unshare)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            if children:
                return int(children[0])
            time.sleep(0.01)
        raise AssertionError("unshare has no child")

    # ---- talking ---------------------------------------------------------------------------------
    def request(self, cmd: str, **args: Any) -> Any:
        return request_sync(self.paths.control_socket, cmd, **args)

    def logs(self, **args: Any) -> list[dict[str, Any]]:
        """Journal records through the control socket (the `logs` stream, ended after the stored ones)."""
        return list(stream_sync(self.paths.control_socket, "logs", **args))

    def cli(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, CORRAL_SOCKET=str(self.paths.control_socket))
        result = subprocess.run([CORRAL, *argv], env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"corral {' '.join(argv)} exited {result.returncode}: {result.stderr}")
        return result

    def nsenter(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside the sandbox's namespaces (its processes become the sandbox's)."""
        cmd = ["nsenter", "-t", str(self.pid1), "-p", "-m", "-n", "-u", "-i", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)

    def signal(self, signum: int) -> None:
        os.kill(self.pid1, signum)

    # ---- journal -------------------------------------------------------------------------------
    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def journal(self) -> list[dict[str, Any]]:
        records = []
        log_dir = self.paths.log_dir
        rotated = log_dir.glob("current.jsonl.*") if log_dir.exists() else []
        files = sorted(rotated, key=lambda p: -int(p.suffix[1:]))
        for path in [*files, log_dir / "current.jsonl"]:
            if path.exists():
                records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return records

    def wait_journal(self, predicate: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.journal():
                if predicate(record):
                    return record
            time.sleep(0.05)
        raise AssertionError(f"no matching journal record in {timeout}s")

    def assert_clean_journal(self, expected_errors: tuple[str, ...] = ()) -> None:
        """No tracebacks, no error lines but the expected ones (cloud-init's clean-boot check)."""
        bad = []
        for record in self.journal():
            failed = record.get("level") in ("error", "critical") or "traceback" in record
            if failed and not any(fragment in json.dumps(record) for fragment in expected_errors):
                bad.append(record)
        assert not bad, "unexpected errors in the journal:\n" + "\n".join(json.dumps(r) for r in bad)

    # ---- ending --------------------------------------------------------------------------------
    def wait_exit(self, timeout: float = 60) -> int:
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self) -> int:
        if self.proc.poll() is None:
            try:
                self.signal(signal.SIGTERM)
                self.proc.wait(30)
            except (subprocess.TimeoutExpired, AssertionError, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._console_file.close()
        self.returncode = self.proc.returncode
        return self.returncode


class Follow:
    """A following CLI (`logs -f`, `events -f`) whose output lines a thread collects. Use it in a
    ``with``: it is killed at the end if still running."""

    def __init__(self, sb: Sandbox, *argv: str) -> None:
        env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))
        self.argv = argv
        self.proc = subprocess.Popen([CORRAL, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def next_line(self, timeout: float) -> str | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        self.seen.append(line)
        return line

    def until(self, fragment: str, timeout: float = 15) -> str:
        """Read lines until one contains ``fragment``; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.next_line(0.2)
            if line is not None and fragment in line:
                return line
        raise AssertionError(f"corral {' '.join(self.argv)}: {fragment!r} not seen; got:\n"
                             + "".join(self.seen[-20:]))

    def stop(self, grace: float = 20) -> int:
        """SIGINT, as Ctrl-C; the exit code. Fails when the CLI is still running ``grace`` s later."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"corral {' '.join(self.argv)}: still running {grace} s after SIGINT"
                                 ) from None
        self._reader.join(5)
        while self.next_line(0) is not None:  # keep what it printed last in `seen`
            pass
        return code

    def __enter__(self) -> Follow:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def sandbox_factory(tmp_path: Path) -> Iterator[Any]:
    """Yields ``start(config=None, cmdline="", emergency_shell=None, ..., again=None) -> Sandbox``; stops
    them all after. ``again``: a sandbox that has exited, to boot again in its directory (its config,
    state and journal kept, as across a reboot)."""
    started: list[Sandbox] = []

    def start(config: dict[str, Any] | None = None, cmdline: str = "", emergency_shell: str | None = None,
              setup: Callable[[Path], None] | None = None, name: str = "sb", default_units: bool = False,
              again: Sandbox | None = None) -> Sandbox:
        if again is not None and again.proc.poll() is None:
            raise AssertionError("boot a sandbox again only once it has exited")
        directory = again.dir if again is not None else tmp_path / f"{name}{len(started)}"
        sb = Sandbox(directory, config, cmdline, emergency_shell, setup, default_units=default_units)
        started.append(sb)
        return sb

    yield start
    for sb in started:
        if sb.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, AssertionError, FileNotFoundError):
                os.kill(sb.pid1, signal.SIGKILL)  # killing a PID namespace's init ends the namespace
            sb.proc.wait(10)
        sb._console_file.close()


def _archives_done(status: dict[str, Any]) -> bool:
    """The system dockerd's image archives are done with (its `images` phase only starts their loads,
    and the units go on beside them), or they will not be soon: no system dockerd, or not answering."""
    docker = status.get("system_docker")
    return docker is None or docker.get("state") != "up" or docker.get("preload") is not None
