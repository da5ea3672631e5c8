"""The shipped `console` unit: corral/console:latest (image/console.py, from Debian's packages) run by the
sandboxed supervisor's system dockerd, in the sandbox's own network namespace. ssh with a key from
`ssh_authorized_keys` (written by handlers/authorized_keys.py, read live by sshd), passwordless sudo,
password login with `corral.password=` from the command line, a key change applied without a restart,
a host name change that reaches the console's /etc/hosts and /etc/hostname live, and the host-command
wrappers. The serial getty can only be tried in the booted guest."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from image import console
from image.debs import DebsError
from integration.netns import unavailable
from integration.sandbox import CORRAL, Sandbox
from integration.test_units_docker import privileged_unavailable
from integration.units_helpers import (
    EXPECTED_ERRORS,
    inspect,
    system_docker_on,
    units,
    wait_for,
    wait_state,
)

pytestmark = pytest.mark.docker

UNIT_FILE = Path(__file__).resolve().parent.parent / "units/defaults/console.yml"
PASSWORD = "battery staple!"  # a space: the command line quotes it
CMDLINE = f'console=ttyS0 corral.password="{PASSWORD}" quiet'
TEST_CMDLINE = "/var/lib/corral/console/test-cmdline"  # in the console's mounted state directory


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


@pytest.fixture(scope="module")
def archive() -> Path:
    try:
        return console.ensure()
    except DebsError as exc:
        unavailable(f"cannot build {console.IMAGE}: {exc}")


def keypair(directory: Path, name: str) -> tuple[Path, str]:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True,
                   timeout=30)
    return key, (directory / f"{name}.pub").read_text().strip()


def console_unit() -> dict[str, Any]:
    """The shipped unit with the test hooks: the command line from a file, no getty (the host's ttyS0
    is not ours). Without every capability (a container here), privileged is replaced by what the
    console needs: setns into PID 1's namespaces."""
    body: dict[str, Any] = yaml.safe_load(UNIT_FILE.read_text())["console"]
    body["environment"] = [f"CORRAL_CONSOLE_CMDLINE={TEST_CMDLINE}", "CORRAL_CONSOLE_TTYS="]
    if privileged_unavailable():
        body.pop("privileged")
        body["cap_add"] = ["SYS_ADMIN", "SYS_PTRACE"]
    return body


def ssh(sb: Sandbox, *argv: str, key: Path | None = None, password_file: Path | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """ssh rancher@127.0.0.1 in the sandbox's network namespace, with a key or a password (askpass)."""
    opts = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10", "-o", "NumberOfPasswordPrompts=1"]
    env = dict(os.environ)
    if key is not None:
        opts += ["-o", "BatchMode=yes", "-o", "PasswordAuthentication=no", "-o", "IdentitiesOnly=yes",
                 "-i", str(key)]
    if password_file is not None:
        opts += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"]
        env.update(SSH_ASKPASS=str(password_file), SSH_ASKPASS_REQUIRE="force", DISPLAY="none")
    cmd = ["nsenter", "-t", str(sb.pid1), "-n", "--", "ssh", *opts, "rancher@127.0.0.1", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, check=False)


def read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} not seen on the tty; got {got!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            chunk = b""
        if not chunk:
            raise AssertionError(f"{needle!r} not seen before the tty closed; got {got!r}")
        got += chunk
    return got


def tty_login(sb: Sandbox, password: str) -> bytes:
    """The console's getty and login on a terminal (a pty of `system-docker exec -t`, standing in for
    ttyS0): log in as rancher with ``password``, run `id -un` and `sudo -n id -u`; the tty's output."""
    getty = "exec /usr/sbin/agetty --noclear -L 115200 $(tty | cut -c6-) vt100"
    argv = [CORRAL, "system-docker", "exec", "-it", "console", "sh", "-c", getty]
    env = dict(os.environ, CORRAL_SOCKET=str(sb.paths.control_socket))
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes the docker CLI on the pty
        os.execve(argv[0], argv, env)
    try:
        seen = read_until(fd, b"login: ")
        os.write(fd, b"rancher\r")
        seen += read_until(fd, b"Password: ")
        os.write(fd, password.encode() + b"\r")
        seen += read_until(fd, b"$ ")
        os.write(fd, b"id -un; sudo -n id -u; exit\r")
        seen += read_until(fd, b"\n0\r\n")
        return seen
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(fd)


def askpass(directory: Path, password: str) -> Path:
    script = directory / f"askpass-{len(list(directory.glob('askpass-*')))}"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(password)}\n")
    script.chmod(0o700)
    return script


def test_console_ssh_keys_sudo_password_and_host_commands(sandbox: Any, archive: Path,
                                                           tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "good")
    other, other_public = keypair(tmp_path, "other")

    def setup(directory: Path) -> None:
        preload = directory / "var/lib/corral/preload"
        preload.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive, preload / "console.tar")
        state = directory / TEST_CMDLINE.lstrip("/")
        state.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / "cmdline", state)  # what the console would read in /proc/cmdline

    cfg = {"ssh_authorized_keys": [public],
           "corral": {"shutdown_grace": 2, "services": {"console": console_unit()}}}
    sb: Sandbox = sandbox(cfg, cmdline=CMDLINE, setup=setup)
    sb.wait_ready(120)
    wait_state(sb, "console", "running", timeout=60)
    keys_file = sb.dir / "var/lib/corral/console/authorized_keys"
    assert public in keys_file.read_text() and oct(keys_file.stat().st_mode & 0o777) == "0o644"

    # A key from the config: in, and root through passwordless sudo.
    first = wait_for("sshd accepts the configured key", lambda: (r := ssh(sb, "sudo -n id -u", key=key))
                     .returncode == 0 and r, timeout=60, every=0.5)
    assert first.stdout.strip() == "0", first
    who = ssh(sb, "id -un; id -Gn", key=key)
    assert who.stdout.split()[0] == "rancher" and "sudo" in who.stdout.split()[1:], who

    # Another key: refused.
    refused = ssh(sb, "true", key=other)
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused

    # The password from the command line; a wrong one is refused.
    good = ssh(sb, "id -un", password_file=askpass(tmp_path, PASSWORD))
    assert good.returncode == 0 and good.stdout.strip() == "rancher", good
    bad = ssh(sb, "id -un", password_file=askpass(tmp_path, "battery"))
    assert bad.returncode == 255 and "Permission denied" in bad.stderr, bad
    # ... and on a terminal through the getty and login (the serial console's path, on a pty).
    seen = tty_login(sb, PASSWORD)
    assert b"corral console" in seen and b"rancher\r\n0\r\n" in seen, seen  # the motd; then id, sudo

    # The host-command wrappers: `docker` runs the host's docker CLI (the image has none) in PID 1's
    # namespaces (the sandbox's supervisor).
    listing = ssh(sb, "ls /usr/local/bin; command -v docker", key=key)
    assert listing.stdout.split()[:3] == ["corral", "docker", "system-docker"], listing
    own = ssh(sb, "test -e /usr/bin/docker || echo none here", key=key)
    assert own.stdout.strip() == "none here"
    for command in ("sudo docker --version", "docker --version"):  # rancher without sudo: the wrapper uses it
        version = ssh(sb, command, key=key)
        assert version.returncode == 0 and version.stdout.startswith("Docker version"), version

    # A config change: the new key works at once, the old one no longer; the console is not restarted.
    sb.cli("config", "set", "ssh_authorized_keys", json.dumps([other_public]))
    wait_for("the new key works", lambda: ssh(sb, "true", key=other).returncode == 0, timeout=30, every=0.5)
    assert ssh(sb, "true", key=key).returncode == 255
    assert units(sb)["console"]["restarts"] == 0

    # The host name: the console's /etc/hosts and /etc/hostname are links to the files corral keeps in the
    # state directory (handlers/hostname.py), so a change reaches them live and sudo resolves the new name.
    assert ssh(sb, "readlink /etc/hosts; readlink /etc/hostname", key=other).stdout.split() == [
        "/var/lib/corral/console/hosts", "/var/lib/corral/console/hostname"]
    sb.cli("config", "set", "hostname", "console-renamed")
    renamed = "console-renamed\nconsole-renamed\n127.0.1.1\tconsole-renamed\n"
    names = "hostname; cat /etc/hostname; grep ^127.0.1.1 /etc/hosts; sudo true"
    view = wait_for("the console names the new host name",
                    lambda: (r := ssh(sb, names, key=other)).stdout == renamed and r, timeout=30, every=0.5)
    assert view.stderr == "", view  # no "sudo: unable to resolve host"
    assert units(sb)["console"]["restarts"] == 0

    # Homes persist in the host's /home (under the sandbox's prefix); host keys in the state directory.
    assert (sb.dir / "home/rancher/.ssh").is_dir()
    host_key = sb.dir / "var/lib/corral/console/ssh/ssh_host_ed25519_key.pub"
    fingerprint = host_key.read_text()
    assert ssh(sb, "echo kept > note", key=other).returncode == 0

    # A stop ends sshd cleanly (console-init passes SIGTERM on: exit 0, not 137 for a SIGKILL); after a
    # start the same host key, the same home, the password and keys again.
    sb.cli("units", "down", "console")
    assert inspect(sb, "console")["State"]["ExitCode"] == 0
    sb.cli("units", "up", "console")
    wait_state(sb, "console", "running", timeout=60)
    wait_for("ssh after the restart", lambda: ssh(sb, "cat note", key=other).stdout.strip() == "kept",
             timeout=60, every=0.5)
    assert host_key.read_text() == fingerprint
    again = ssh(sb, "id -un", password_file=askpass(tmp_path, PASSWORD))
    assert again.returncode == 0 and again.stdout.strip() == "rancher", again

    assert sb.stop() == 0
    logged = json.dumps(sb.journal()) + sb.console_text()
    assert PASSWORD not in logged and "battery" not in logged  # the password never reaches a log
    assert "rancher's password set" in logged
    sb.assert_clean_journal(EXPECTED_ERRORS)


def test_console_image_is_reproducible_and_holds_what_the_console_runs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    try:
        console.unpack_packages(root)
    except DebsError as exc:
        unavailable(f"cannot fetch {console.IMAGE}'s packages: {exc}")
    first = console.write_archive(tmp_path / "a.tar", root)
    second = console.write_archive(tmp_path / "b.tar", root)
    assert first == second and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as outer:
        layer_name = next(n for n in outer.getnames() if n.endswith("/layer.tar"))
        layer_file = outer.extractfile(layer_name)
        assert layer_file is not None
        with tarfile.open(fileobj=io.BytesIO(layer_file.read())) as layer:
            members = {m.name: m for m in layer.getmembers()}
    for path in ("usr/sbin/sshd", "usr/bin/ssh-keygen", "usr/sbin/agetty", "usr/bin/login", "usr/bin/nsenter",
                 "usr/sbin/chpasswd", "usr/bin/tini", "usr/lib/corral/console-init", "etc/ssh/sshd_config",
                 "usr/libexec/sudo/sudoers.so", "usr/lib/x86_64-linux-gnu/security/pam_unix.so",
                 "usr/lib/x86_64-linux-gnu/libcrypto.so.3"):
        assert path in members, path
    assert members["usr/bin/sudo"].mode & 0o4000  # setuid root, as Debian ships it
    assert members["usr/bin/sudo"].uid == 0
    assert members["usr/local/bin/corral"].linkname == "../../lib/corral/host-command"
    assert members["usr/bin/sh"].linkname == "busybox"
    assert not [n for n in members if n.startswith(("usr/share/doc", "usr/share/man", "usr/bin/perl"))]
    size = (tmp_path / "a.tar").stat().st_size
    print(f"console image: {size / 2**20:.1f} MiB, {len(members)} entries")
    assert size < 40 * 2**20
