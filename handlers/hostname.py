"""Owns the host name (``hostname:`` in the config) in every place that names it: the kernel's
(``sethostname``), the host's ``/etc/hostname`` and ``/etc/hosts``, and the console's copies of both,
``/var/lib/corral/console/hostname`` and ``/var/lib/corral/console/hosts`` (the console mounts that
directory, and its ``/etc/hosts`` and ``/etc/hostname`` are links to them: see docs/console.md).

Level-triggered, like the other reconcilers: at boot (the ``hostname`` phase, before the system dockerd
and DHCP, which sends the name) and on every config change it reads what is there (the kernel's name, the
four files), ``plan`` (pure) lists the steps that make it what the config asks for, and they are run in
order; files are written atomically, and only when they differ. When the kernel's name changes, the hosts
files first name the old and the new name, then the kernel takes the new one, and only ``LINGER`` seconds
later do the files name only the new one: ``sudo``, which reads the kernel's name and then looks it up,
finds it at every instant, also when it read the old name just before the change (seen in a TCG guest
under load, where the two are far apart).

The name was validated by the config's schema (RFC 1123 labels, at most 64 characters, the kernel's
limit): the one validation of it. It is never given to a shell or a program."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from handlers.authorized_keys import CONSOLE_DIR
from supervisor.atomic import write_atomic
from supervisor.events import ConfigChanged, Event
from supervisor.paths import Paths

log = structlog.get_logger("handlers.hostname")

CONFIG_KEY = "hostname"
MODE = 0o644
HOSTS_HEADER = "# The host's names: written by corral from `hostname:` in its config, at each change\n"
LOCAL_ADDRESS = "127.0.1.1"  # Debian's address for the host's own name
LINGER = 3.0  # seconds the old name stays in the hosts files after the kernel took the new one


@dataclass(frozen=True)
class Files:
    """Where the name is written (under the Paths prefix)."""

    hosts: Path
    hostname: Path
    console_hosts: Path
    console_hostname: Path

    @classmethod
    def under(cls, paths: Paths) -> Files:
        console = paths.under(CONSOLE_DIR)
        return cls(hosts=paths.under("/etc/hosts"), hostname=paths.under("/etc/hostname"),
                   console_hosts=console / "hosts", console_hostname=console / "hostname")

    def all(self) -> tuple[Path, ...]:
        return (self.hosts, self.hostname, self.console_hosts, self.console_hostname)


@dataclass(frozen=True)
class WriteFile:
    path: Path
    content: bytes


@dataclass(frozen=True)
class SetKernelName:
    name: str
    was: str


@dataclass(frozen=True)
class Linger:
    """Wait before the next step (the old name's grace in the hosts files)."""

    seconds: float


Step = WriteFile | SetKernelName | Linger


def names_of(name: str) -> list[str]:
    """``edge-1.example.com`` -> ``["edge-1.example.com", "edge-1"]`` (the full name first, as Debian's
    /etc/hosts has it); a name without a dot is itself."""
    short = name.split(".", 1)[0]
    return [name] if short == name else [name, short]


def hosts_file(name: str, also: str = "") -> bytes:
    """The /etc/hosts that names ``name`` (and ``also``, the name being replaced, while the kernel still
    has it) on 127.0.1.1, besides localhost."""
    names = names_of(name)
    if also and _usable(also):
        names += [n for n in names_of(also) if n not in names]
    return (HOSTS_HEADER
            + "127.0.0.1\tlocalhost\n"
            + f"{LOCAL_ADDRESS}\t{' '.join(names)}\n"
            + "::1\tlocalhost ip6-localhost ip6-loopback\n"
            + "ff02::1\tip6-allnodes\n"
            + "ff02::2\tip6-allrouters\n").encode()


def hostname_file(name: str) -> bytes:
    return f"{name}\n".encode()


def _usable(name: str) -> bool:
    """Whether a name the kernel has (anything ``sethostname`` took, e.g. ``(none)`` before the first
    boot) can stand in a hosts line: one field, no comment."""
    return bool(name) and name.split() == [name] and "#" not in name


def plan(desired: str, kernel: str, observed: Mapping[Path, bytes | None], files: Files,
         linger: float = LINGER) -> list[Step]:
    """The steps, in order, that make the kernel's name ``desired`` and every file name it, given the
    kernel's name and the files' contents (None: missing). Nothing to do: an empty list. A name the
    kernel had (not ``(none)`` before the first boot) stays in the hosts files ``linger`` seconds after
    the kernel took the new one."""
    steps: list[Step] = []
    now = dict(observed)
    if kernel != desired:
        bridge = hosts_file(desired, also=kernel)
        for path in (files.hosts, files.console_hosts):
            if now.get(path) != bridge:
                steps.append(WriteFile(path, bridge))
                now[path] = bridge
        steps.append(SetKernelName(desired, kernel))
        if linger > 0 and _usable(kernel) and kernel != "(none)":
            steps.append(Linger(linger))
    final = {files.hosts: hosts_file(desired), files.console_hosts: hosts_file(desired),
             files.hostname: hostname_file(desired), files.console_hostname: hostname_file(desired)}
    steps += [WriteFile(path, content) for path, content in final.items() if now.get(path) != content]
    return steps


@dataclass(frozen=True)
class Kernel:
    """The kernel's host name (of PID 1's UTS namespace: the sandbox has its own)."""

    get: Callable[[], str] = socket.gethostname
    set: Callable[[str], None] = socket.sethostname


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _read_all(files: Files) -> dict[Path, bytes | None]:
    return {path: _read(path) for path in files.all()}


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, content, MODE)


class HostnameKeeper:
    """The reconciler (driven by ``handlers.runner.HandlerRunner``; the boot phase calls it once first)."""

    name = "hostname"
    kinds: tuple[type[Event], ...] = (ConfigChanged,)
    config_keys: tuple[str, ...] | None = (CONFIG_KEY,)

    def __init__(self, paths: Paths, config: Callable[[], Mapping[str, Any]],
                 kernel: Kernel | None = None, linger: float = LINGER) -> None:
        self.files = Files.under(paths)
        self.config = config
        self.kernel = kernel or Kernel()
        self.linger = linger
        self.writes = 0

    async def reconcile(self, full: bool) -> None:
        desired = self.config().get(CONFIG_KEY)
        if not isinstance(desired, str) or not desired:  # the shipped defaults always give one
            return
        observed = await asyncio.to_thread(_read_all, self.files)
        written: list[str] = []
        for step in plan(desired, self.kernel.get(), observed, self.files, self.linger):
            if isinstance(step, SetKernelName):
                self.kernel.set(step.name)
                log.info("hostname set", hostname=step.name, was=step.was)
            elif isinstance(step, Linger):
                await asyncio.sleep(step.seconds)
            else:
                await asyncio.to_thread(_write, step.path, step.content)
                self.writes += 1
                written.append(str(step.path))
        if written:
            log.info("hostname files written", hostname=desired, files=sorted(set(written)))
