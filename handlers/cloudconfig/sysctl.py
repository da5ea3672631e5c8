"""``corral.sysctl`` (RancherOS's ``rancher.sysctl``): kernel parameters, kept as the config says.

Pure: ``parse_sysctl`` checks each name (dot-separated parts of letters, digits and ``_-:@+``; never
``/`` or ``..``, so a name cannot leave ``/proc/sys``) and value (one line); a bad one is a warning
naming the key, and is skipped. ``plan`` lists the writes that make ``/proc/sys`` say what the config
says (values compared with their whitespace normalised, as the kernel prints them: ``4096 87380`` is
``4096\t87380``). Effect: ``SysctlKeeper`` reads and writes ``<root>/<name with dots as slashes>``,
level-triggered: at boot (the ``sysctl`` phase, early), at each change of ``corral.sysctl`` and when a
network link comes or changes (``net.ipv4.conf.eth1.*`` exists once eth1 does). A name
the kernel does not have, or a value it refuses, is a warning naming the key (and ``corral status``
lists them as degraded ``sysctl``), never a boot failure.

In the sandbox (PID 1 in its own network namespace, sharing the host's kernel) only ``net.*`` names are
applied: those are the sandbox's own namespace's. Every other is the host's kernel's, and is skipped with
a warning."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from supervisor.config.errors import ConfigError, Problems, Source
from supervisor.events import ConfigChanged, Event
from supervisor.events.netlink import LinkChanged

log = structlog.get_logger("handlers.sysctl")

CONFIG_KEY = "corral.sysctl"
PROC_SYS = Path("/proc/sys")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_:@+-]*(\.[A-Za-z0-9_][A-Za-z0-9_:@+-]*)*")
MAX_NAME = 256
PER_NETNS = "net."
SANDBOX_SKIP = "not applied in the sandbox: it shares the host's kernel, and only net.* names are its own"


@dataclass(frozen=True)
class Parsed:
    settings: tuple[tuple[str, str], ...]  # (name, value), in the config's order
    errors: tuple[ConfigError, ...]
    warnings: tuple[ConfigError, ...]


def parse_sysctl(config: Mapping[str, Any], source: Source = "config") -> Parsed:
    problems = Problems(source)
    corral = config.get("corral")
    table = corral.get("sysctl") if isinstance(corral, Mapping) else None
    settings: list[tuple[str, str]] = []
    for name, value in (table or {}).items() if isinstance(table, Mapping) else ():
        where = ("corral", "sysctl", str(name))
        if not isinstance(name, str) or len(name) > MAX_NAME or not NAME.fullmatch(name):
            problems.warn(where, "not a sysctl name (dot-separated parts of letters, digits, '_', '-'; "
                                 "no '/' or '..'): skipped")
            continue
        text = str(value).strip() if not isinstance(value, bool) else str(int(value))
        if "\n" in text or "\r" in text or not text:
            problems.warn(where, "a sysctl value is one line of text: skipped")
            continue
        settings.append((name, text))
    return Parsed(tuple(settings), tuple(problems.errors), tuple(problems.warnings))


def file_of(root: Path, name: str) -> Path:
    return root.joinpath(*name.split("."))


def same(desired: str, observed: str) -> bool:
    return desired.split() == observed.split()


@dataclass(frozen=True)
class Write:
    name: str
    value: str


@dataclass(frozen=True)
class Skip:
    name: str
    reason: str


def plan(settings: tuple[tuple[str, str], ...], observed: Mapping[str, str | None],
         sandbox: bool) -> list[Write | Skip]:
    """What to do for each setting, given what ``/proc/sys`` says now (None: no such name)."""
    steps: list[Write | Skip] = []
    for name, value in settings:
        if sandbox and not name.startswith(PER_NETNS):
            steps.append(Skip(name, SANDBOX_SKIP))
        elif observed.get(name) is None:
            steps.append(Skip(name, "the kernel has no such sysctl"))
        elif not same(value, observed[name] or ""):
            steps.append(Write(name, value))
    return steps


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _write(path: Path, value: str) -> None:
    """One write(2) of the value, as sysctl(8) does (the kernel's refusal is this write's error)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


class SysctlKeeper:
    """The reconciler. ``problems`` (name -> reason) is what is not applied now."""

    name = "sysctl"
    # a link that comes (a NIC found late, a bond, a VLAN) brings its net.*.conf.<link>.* names
    kinds: tuple[type[Event], ...] = (ConfigChanged, LinkChanged)
    config_keys: tuple[str, ...] | None = (CONFIG_KEY,)

    def __init__(self, settings: Callable[[], tuple[tuple[str, str], ...]], *, sandbox: bool,
                 root: Path = PROC_SYS, report: Callable[[dict[str, str]], None] | None = None) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.root = root
        self.report = report
        self.problems: dict[str, str] = {}
        self.writes = 0

    async def reconcile(self, full: bool) -> None:
        settings = self.settings()
        observed = {name: await asyncio.to_thread(_read, file_of(self.root, name))
                    for name, _ in settings if not (self.sandbox and not name.startswith(PER_NETNS))}
        problems: dict[str, str] = {}
        for step in plan(settings, observed, self.sandbox):
            if isinstance(step, Skip):
                problems[step.name] = step.reason
                continue
            try:
                await asyncio.to_thread(_write, file_of(self.root, step.name), step.value)
            except OSError as exc:
                problems[step.name] = f"not set to {step.value!r}: {exc.strerror or exc}"
                continue
            self.writes += 1
            log.info("sysctl set", sysctl=step.name, value=step.value,
                     was=" ".join((observed.get(step.name) or "").split()))
        for name, reason in problems.items():
            if self.problems.get(name) != reason:
                log.warning(f"sysctl {name}: {reason}", sysctl=name, key=f"corral.sysctl.{name}")
        self.problems = problems
        if self.report is not None:
            self.report(problems)

    def status(self) -> dict[str, object]:
        return {"writes": self.writes, "not_applied": dict(self.problems)}
