"""Boot the corral OS image in QEMU and drive it from tests: serial console, ssh, QMP.

``boot(workdir, GuestSpec(...))`` starts QEMU with the same command line ``corral-image run`` uses
(``image.run``), but with the serial console on pipes: a reader thread copies every byte QEMU prints to
``serial.log`` (kept, and attached to the report of a failed test) and to memory, where
:meth:`Guest.wait_serial` looks for patterns. A boot must print ``corral <version> ready`` within a hard
timeout; a boot that does not (about 1 boot in 60 froze during the first container start under TCG) is
killed, its log kept as ``serial-attempt1.log``, and tried once more.

Commands run in the guest over ssh: the console container's sshd, reached through QEMU's user-net
``hostfwd`` on 127.0.0.1, as ``rancher`` with a key this module generates and passes in the cloud-config
(``ssh_authorized_keys``); ``rancher`` runs ``sudo`` without a password. The config reaches the guest as
``corral-image run --config`` does it: an uncompressed cpio segment appended to a copy of the initrd.

Everything lives under the test's directory; QEMU is killed by pid at teardown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from image import qmp as qmp_mod
from image import run as run_mod
from integration.firmware import disk_machine, iso_machine

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_OUT = REPO_ROOT / ".cache" / "image" / "out"
READY = re.compile(rb"corral (\S+) ready")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # the console's colours, left out of report tails
USER = "rancher"
PASSWORD = "corral-test-pw"  # the serial login's password, given on the kernel command line
SHELL_PROMPT = re.compile(rb"\$ ")  # the console's busybox sh, as rancher ("~ $ ")
# Under TCG on a shared 2-core machine: "ready" came at about 30 s; allow for a slow CI neighbour.
BOOT_TIMEOUT = float(os.environ.get("CORRAL_GUEST_BOOT_TIMEOUT", "300"))
ATTEMPTS = 2
SSH_TIMEOUT = 60.0
BUILD_TIMEOUT = 1800.0


class GuestError(AssertionError):
    """The guest did not do what was expected; the message carries the serial log's tail."""


# ---- the image -------------------------------------------------------------------------------------


def unavailable_reason() -> str | None:
    """Why guest tests cannot run here (None when they can)."""
    if shutil.which(run_mod.QEMU) is None:
        return f"{run_mod.QEMU} missing (apt-get install qemu-system-x86)"
    for tool in ("ssh", "ssh-keygen", "cpio", "mkfs.ext4"):
        if shutil.which(tool) is None:
            return f"{tool} missing (scripts/install-system-deps.sh installs it)"
    return None


def build_image(out: Path = IMAGE_OUT) -> tuple[Path | None, str]:
    """``python -m image build -o OUT`` (from cache it takes seconds) -> (out dir, "") or (None, why).
    With ``CORRAL_GUEST_IMAGE=DIR`` set, DIR (a build output made elsewhere) is used as it is."""
    given = os.environ.get("CORRAL_GUEST_IMAGE")
    if given:
        out = Path(given).resolve()
        missing = [n for n in ("vmlinuz", "initrd") if not (out / n).is_file()]
        return (None, f"CORRAL_GUEST_IMAGE={given}: no {', '.join(missing)} there") if missing else (out, "")
    argv = [sys.executable, "-m", "image", "build", "-o", os.fspath(out)]
    try:
        done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"`{shlex.join(argv)}` did not finish in {BUILD_TIMEOUT:g}s"
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        return None, f"`{shlex.join(argv)}` failed ({done.returncode}):\n{tail}"
    missing = [n for n in ("vmlinuz", "initrd") if not (out / n).is_file()]
    if missing:
        return None, f"`{shlex.join(argv)}` left no {', '.join(missing)} in {out}"
    return out, ""


def build_iso(out: Path) -> tuple[Path | None, str]:
    """``python -m image build --iso -o OUT`` (the image itself from cache, as :func:`build_image` made it)
    -> (the ISO, "") or (None, why). With ``CORRAL_GUEST_IMAGE`` set, the ISO is made beside that build
    by ``image.build.add_iso`` (the build itself is used as it is)."""
    from image import build, iso, manifest

    missing = iso.missing_tools()
    if missing:
        return None, "--iso needs " + ", ".join(missing) + " (scripts/install-system-deps.sh installs them)"
    if os.environ.get("CORRAL_GUEST_IMAGE"):
        data = manifest.read(out / "manifest.json")
        if data is None:
            return None, f"CORRAL_GUEST_IMAGE: no manifest.json in {out}"
        try:
            build.add_iso(data, out)
        except (iso.IsoError, OSError) as exc:
            return None, str(exc)
        return out / iso.ISO_NAME, ""
    argv = [sys.executable, "-m", "image", "build", "--iso", "-o", os.fspath(out)]
    try:
        done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, f"`{shlex.join(argv)}` did not finish in {BUILD_TIMEOUT:g}s"
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        return None, f"`{shlex.join(argv)}` failed ({done.returncode}):\n{tail}"
    if not (out / iso.ISO_NAME).is_file():
        return None, f"`{shlex.join(argv)}` left no {iso.ISO_NAME} in {out}"
    return out / iso.ISO_NAME, ""


def image_version(out: Path) -> str | None:
    """corral's version from the build's manifest (what the ready line names), if it says."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("corral_version") or manifest.get("corral", {})
    return version if isinstance(version, str) else None


# ---- keys, ports, disks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshKey:
    private: Path
    public: str


def make_ssh_key(directory: Path) -> SshKey:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    if not private.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "corral-guest-test",
                        "-f", os.fspath(private)], check=True, timeout=30)
    return SshKey(private, private.with_suffix(".pub").read_text().strip())


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (QEMU binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ext4(path: Path, label: str, size: int = 32 << 20, files: dict[str, str] | None = None) -> Path:
    """A raw image file holding an ext4 filesystem labelled ``label`` (made on the host, no mount)."""
    run_mod.make_disk(path, size)
    argv = ["mkfs.ext4", "-q", "-F", "-L", label]
    stage = None
    if files:
        stage = path.with_name(path.name + ".d")
        stage.mkdir()
        for name, text in files.items():
            (stage / name).write_text(text)
        argv += ["-d", os.fspath(stage)]
    subprocess.run([*argv, os.fspath(path)], check=True, capture_output=True, timeout=60)
    if stage is not None:
        shutil.rmtree(stage)
    return path


# ---- the serial console ------------------------------------------------------------------------------


class SerialLog:
    """Everything QEMU's serial port printed: appended to ``path`` and kept in memory for matching."""

    def __init__(self, stream: Any, path: Path) -> None:
        self.path = path
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self._file = open(path, "ab")  # noqa: SIM115 -- closed by the reader thread
        self._thread = threading.Thread(target=self._pump, args=(stream,), name=f"serial:{path}", daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        try:
            while True:
                chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(4096)
                if not chunk:
                    break
                self._file.write(chunk)
                self._file.flush()
                with self._cond:
                    self._buf += chunk
                    self._cond.notify_all()
        finally:
            self._file.close()
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    @property
    def size(self) -> int:
        with self._cond:
            return len(self._buf)

    def text(self, start: int = 0) -> str:
        with self._cond:
            return self._buf[start:].decode(errors="replace")

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines, without terminal escapes (for messages and reports)."""
        return "\n".join(ANSI.sub("", line) for line in self.text().splitlines()[-lines:])

    def wait_for(self, pattern: bytes | re.Pattern[bytes], timeout: float, start: int = 0,
                 alive: Callable[[], bool] = lambda: True) -> re.Match[bytes]:
        """The first match of ``pattern`` at or after byte ``start``; GuestError after ``timeout``, or as
        soon as the output ended (QEMU exited) or ``alive()`` says no."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = rx.search(self._buf, start)
                if m is not None:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GuestError(f"{rx.pattern!r} not on the serial console within {timeout:g}s")
                if self._closed or not alive():
                    raise GuestError(f"{rx.pattern!r} not on the serial console: QEMU's output ended")
                self._cond.wait(min(left, 1.0))

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)


# ---- one guest --------------------------------------------------------------------------------------


@dataclass
class GuestSpec:
    """What to boot. ``config`` is a cloud-config (as a dict) to which the ssh key is added;
    ``state_disk`` is a size (a fresh zeroed disk per attempt) or the path of an existing image."""

    config: dict[str, Any] = field(default_factory=dict)
    append: str = ""
    state_disk: str | Path | None = None
    disks: Sequence[str] = ()
    images: Sequence[Path] = ()  # existing disk images (an ISO...), attached after ``disks``, as made
    nics: int = 0
    memory: str = os.environ.get("CORRAL_GUEST_MEMORY", run_mod.DEFAULT_MEMORY)
    boot_timeout: float = BOOT_TIMEOUT
    out: Path = IMAGE_OUT
    # Boot the firmware from this hybrid ISO (``corral-image build --iso``) instead of -kernel/-initrd: as
    # a CD-ROM, or a copy of it as a plain disk (what ``dd`` to a USB stick gives). No config reaches
    # such a guest (the ISO's grub.cfg is fixed), so no ssh either: the serial console only.
    iso: Path | None = None
    iso_as: str = "cdrom"  # or "disk"
    uefi: bool = False  # OVMF (a copy of its variables per boot) instead of SeaBIOS
    # QEMU (and ssh to its forwarded port) run inside this network namespace; more QEMU arguments (a tap
    # NIC on that namespace's bridge: integration/fleet.py).
    netns: str | None = None
    qemu_args: Sequence[str] = ()
    # Boot the firmware from this disk (an installed disk's qcow2 overlay, integration/installed.py):
    # no -kernel/-initrd, no config given (the installed disk holds its own).
    boot_disk: Path | None = None


class Guest:
    """A running QEMU with the image; see the module's docstring."""

    def __init__(self, workdir: Path, spec: GuestSpec, key: SshKey) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        self.key = key
        self.ssh_port = free_port()
        self.qmp_socket = workdir / "qmp.sock"
        config = dict(spec.config)
        keys = list(config.get("ssh_authorized_keys", []))
        config["ssh_authorized_keys"] = [*keys, key.public]
        config_file = workdir / "user-data.yml"
        config_file.write_text("#cloud-config\n" + yaml.safe_dump(config, sort_keys=False))
        if spec.iso is not None:
            self.machine = iso_machine(workdir, spec, self.ssh_port, self.qmp_socket)
        elif spec.boot_disk is not None:
            self.machine = disk_machine(workdir, spec, self.ssh_port, self.qmp_socket)
        else:
            self.machine = self._kernel_machine(workdir, spec, config_file)
        if spec.qemu_args:
            self.machine = dataclasses.replace(self.machine, extra_args=(*self.machine.extra_args,
                                                                         *spec.qemu_args))
        self.argv = [*self._in_netns(), *run_mod.qemu_argv(self.machine)]
        (workdir / "qemu.argv").write_text(shlex.join(self.argv) + "\n")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        assert self.proc.stdout is not None
        self.serial = SerialLog(self.proc.stdout, workdir / "serial.log")
        self.version: str | None = None
        self.ready_seconds: float | None = None

    def _kernel_machine(self, workdir: Path, spec: GuestSpec, config_file: Path) -> run_mod.Machine:
        state: str | None = None
        if spec.state_disk is not None:
            state = os.fspath(spec.state_disk)
        opts = run_mod.Options(out=spec.out, run_dir=workdir, disks=list(spec.disks), state_disk=state,
                               nics=spec.nics, append=f"corral.password={PASSWORD} {spec.append}".strip(),
                               config=config_file, ssh_port=self.ssh_port, memory=spec.memory,
                               qmp=self.qmp_socket, serial="stdio")
        machine = run_mod.prepare(opts)
        if spec.images:
            given = tuple(run_mod.Disk(Path(p).resolve(), f"corral-image{i}")
                          for i, p in enumerate(spec.images))
            machine = dataclasses.replace(machine, disks=(*machine.disks, *given))
        return machine

    def _in_netns(self) -> list[str]:
        return ["ip", "netns", "exec", self.spec.netns] if self.spec.netns else []

    # ---- state --------------------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float | None = None) -> str:
        """Wait for ``corral <version> ready``; returns the version."""
        m = self.serial.wait_for(READY, timeout or self.spec.boot_timeout, alive=self.alive)
        self.version = m.group(1).decode()
        self.ready_seconds = time.monotonic() - self.started
        (self.dir / "boot.json").write_text(json.dumps({"version": self.version,
                                                         "ready_seconds": round(self.ready_seconds, 1)}))
        return self.version

    def wait_exit(self, timeout: float) -> int:
        """QEMU's exit status once it ends by itself (poweroff with -no-reboot)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise GuestError(f"QEMU still running {timeout:g}s later\n{self.serial.tail()}") from exc
        self.stop()  # closes the pipes
        return rc

    def stop(self) -> None:
        """End QEMU now (QMP quit, then SIGKILL by pid): the guest is not shut down."""
        if self.alive():
            with contextlib.suppress(Exception):
                qmp_mod.run(self.qmp_socket, "quit", timeout=5)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.serial.join()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def report_sections(self) -> list[tuple[str, str]]:
        """For the report of a failed test: the serial log's tail (the whole log stays in the file)."""
        return [(f"guest serial console ({self.serial.path})", self.serial.tail(120))]

    # ---- serial console -----------------------------------------------------------------------------
    def serial_write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_serial(self, pattern: bytes | re.Pattern[bytes], timeout: float = 60,
                    start: int = 0) -> re.Match[bytes]:
        try:
            return self.serial.wait_for(pattern, timeout, start, alive=self.alive)
        except GuestError as exc:
            raise GuestError(f"{exc}\n--- serial console (tail) ---\n{self.serial.tail()}") from None

    def serial_login(self, user: str = USER, password: str = PASSWORD, timeout: float = 120) -> str:
        """Log in on the serial console's getty (login and PAM are slow under TCG); returns what the
        console printed from the password to the shell's first prompt (motd, the shell's warnings)."""
        start = self.serial.size
        self.serial_write("\n")
        self.wait_serial(rb"login: ", timeout=60, start=start)
        start = self.serial.size
        self.serial_write(f"{user}\n")
        self.wait_serial(re.compile(rb"[Pp]assword: "), timeout=timeout, start=start)
        start = self.serial.size
        self.serial_write(f"{password}\n")
        self.wait_serial(SHELL_PROMPT, timeout=timeout, start=start)
        return self.serial.text(start)

    def serial_type(self, text: str, expect: bytes | re.Pattern[bytes] = b"",
                    timeout: float = 60) -> re.Match[bytes] | None:
        """Type ``text`` on the serial console (a command line ending in "\\n", or control bytes such as
        "\\x03", Ctrl-C) and, when ``expect`` is given, wait for it in what the console prints after."""
        start = self.serial.size
        self.serial_write(text)
        return self.wait_serial(expect, timeout=timeout, start=start) if expect else None

    # ---- ssh ----------------------------------------------------------------------------------------
    def ssh_argv(self, command: str, key: SshKey | None = None) -> list[str]:
        return [*self._in_netns(), "ssh", "-F", "none", "-i", os.fspath((key or self.key).private),
                "-p", str(self.ssh_port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=10",
                f"{USER}@127.0.0.1", command]

    def ssh(self, command: str, check: bool = True, timeout: float = 120,
            input: str | bytes | None = None, key: SshKey | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` (a shell command line in the guest) as ``rancher`` over ssh (with ``key``, by
        default the one the guest's config lists)."""
        data = input.encode() if isinstance(input, str) else input
        try:
            raw = subprocess.run(self.ssh_argv(command, key), input=data, capture_output=True,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise GuestError(f"ssh {command!r}: no answer in {timeout:g}s\n{self.serial.tail(40)}") from exc
        done = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                           raw.stderr.decode(errors="replace"))
        if check and done.returncode != 0:
            raise GuestError(f"ssh {command!r} exited {done.returncode}\nstdout: {done.stdout[-3000:]}\n"
                             f"stderr: {done.stderr[-3000:]}")
        return done

    def wait_ssh(self, timeout: float = SSH_TIMEOUT) -> float:
        """Retry until sshd lets us in (the console unit is up before "ready", but its sshd may need a
        moment more to listen); seconds taken."""
        start = time.monotonic()
        last = ""
        while time.monotonic() - start < timeout:
            if not self.alive():
                break
            done = self.ssh("true", check=False, timeout=30)
            if done.returncode == 0:
                return time.monotonic() - start
            last = done.stderr.strip()
            time.sleep(1)
        raise GuestError(f"ssh to the guest failed for {timeout:g}s: {last}\n--- serial console (tail) ---\n"
                         f"{self.serial.tail(40)}")

    def sudo(self, command: str, check: bool = True, timeout: float = 120,
             input: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
        return self.ssh(f"sudo {command}", check=check, timeout=timeout, input=input)

    def host(self, command: str, check: bool = True, timeout: float = 120,
             input: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
        """``command`` in the OS's own namespaces (PID 1's), not the console container's: its files, its
        mounts and its tools (busybox, util-linux)."""
        return self.sudo(f"nsenter -t 1 -m -u -i -n -p -- {command}", check=check, timeout=timeout,
                         input=input)

    def corral(self, *args: str, timeout: float = 120) -> Any:
        """``sudo corral ARGS -o json`` in the guest, parsed."""
        out = self.sudo(shlex.join(["corral", *args, "-o", "json"]), timeout=timeout).stdout
        return json.loads(out)

    def journal(self) -> list[dict[str, Any]]:
        """Every journal record since boot (``corral logs -p debug -n HUGE -o json``: debug records too)."""
        out = self.sudo("corral logs -p debug -n 1000000 -o json", timeout=120).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def wait_until(self, check: Callable[[], Any], timeout: float = 60, what: str = "condition",
                   interval: float = 0.5) -> Any:
        """Call ``check`` until it returns something truthy (errors count as not yet)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
                last = value
            except Exception as exc:  # not yet
                last = exc
            time.sleep(interval)
        raise GuestError(f"{what}: not within {timeout:g}s (last: {last!r})\n{self.serial.tail(60)}")

    # ---- QMP ----------------------------------------------------------------------------------------
    def qmp(self, action: str, *args: Any, timeout: float = 60) -> Any:
        """``image.qmp.Guest.<action>(*args)`` over this guest's QMP socket."""
        return qmp_mod.run(self.qmp_socket, action, *args, timeout=timeout)


def boot(workdir: Path, spec: GuestSpec, key: SshKey, attempts: int = ATTEMPTS) -> Guest:
    """Boot until "ready" (hard timeout), trying again once after a boot that froze or died."""
    workdir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        guest = Guest(workdir, spec, key)
        try:
            guest.wait_ready()
            return guest
        except GuestError as exc:
            guest.stop()
            kept = workdir / f"serial-attempt{attempt}.log"
            os.replace(guest.serial.path, kept)
            failures.append(f"attempt {attempt}: {exc} (serial log: {kept})\n{_tail(kept)}")
        except BaseException:
            guest.stop()
            raise
    raise GuestError("the guest did not boot to ready:\n" + "\n\n".join(failures))


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(ANSI.sub("", line) for line in path.read_text(errors="replace").splitlines()[-lines:])


class GuestFactory:
    """``make(spec=None, name=None) -> Guest`` booted to ready (the ``make_guest`` fixture); :meth:`stop_all`
    ends them all; :meth:`report_sections` gives their serial logs for a failed test's report."""

    def __init__(self, workdir: Path, key: SshKey, out: Path = IMAGE_OUT) -> None:
        self.workdir = workdir
        self.key = key
        self.out = out
        self.guests: list[Guest] = []

    def __call__(self, spec: GuestSpec | None = None, name: str | None = None) -> Guest:
        """Boot ``spec`` (its ``out`` replaced by the factory's image) to ready."""
        d = self.workdir / (name or f"guest{len(self.guests)}")
        g = boot(d, dataclasses.replace(spec or GuestSpec(), out=self.out), self.key)
        self.guests.append(g)
        return g

    def report_sections(self) -> list[tuple[str, str]]:
        return [s for g in self.guests for s in g.report_sections()]

    def stop_all(self) -> None:
        for g in self.guests:
            g.stop()


@contextlib.contextmanager
def guest_factory(workdir: Path, key: SshKey, out: Path = IMAGE_OUT) -> Iterator[GuestFactory]:
    """A :class:`GuestFactory` whose guests are all stopped afterwards."""
    factory = GuestFactory(workdir, key, out)
    try:
        yield factory
    finally:
        factory.stop_all()
