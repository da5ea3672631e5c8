"""Loads kernel modules for devices: ``modprobe -b -- <MODALIAS>`` once per alias, and ``corral.modules``.

Inputs: the udev source's events (coldplug ``add`` events and hotplug ``add`` events carry each
device's ``MODALIAS``). The handler drains its own subscription of UEvents on each reconcile; a
resync (the source reopened, or this handler's queue overflowed) makes it enumerate every device's
MODALIAS from sysfs instead, so an alias whose event was lost is still seen. Each alias is tried once
(``-b``: modprobe honours the blacklist, as udev's kmod builtin does); the outcome is kept for status.
Every modprobe runs through the ProcessManager; the command is injectable (tests use a recorder).
With a ``resolve`` (``supervisor.kmod.lookup_many``: libkmod, in a thread), modprobe runs only for
aliases that resolve to a module not in the kernel yet; the others are settled without a process (at
boot, most of some 40 aliases resolve to nothing: under TCG those processes cost seconds of CPU).

No value (a config entry, an alias) can become one of modprobe's options: kmod's modprobe parses its
argv with getopt_long, which permutes, so an option is taken wherever it stands, after the module name
too (``modprobe loop --config=/x`` reads /x). Every argv therefore ends the options with ``--`` before
the name (``modprobe_argv``), and ``parse_modules`` accepts only module names and ``param[=value]``.

``plan_aliases``, ``parse_modules`` and ``modprobe_argv`` are the pure part."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from supervisor.bus import Bus
from supervisor.events import Event, Resync
from supervisor.events.udev import UEvent
from supervisor.kmod import Lookup
from supervisor.process import ProcessManager

log = structlog.get_logger("handlers.devices")

ADD_ACTIONS = frozenset({"add"})


def plan_aliases(seen: Iterable[str], done: Iterable[str]) -> list[str]:
    """The aliases to load, in the order first seen: each once, none already tried."""
    tried = set(done)
    out: list[str] = []
    for alias in seen:
        alias = alias.strip()
        if alias and alias not in tried:
            tried.add(alias)
            out.append(alias)
    return out


@dataclass(frozen=True)
class ModuleSpec:
    """One ``corral.modules`` entry: ``name`` and module parameters (``"bonding mode=1"``)."""

    name: str
    params: tuple[str, ...] = ()


# A module name (or an alias such as fs-ext4, char-major-10-200): never an option, never a path.
MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+-]*")
# A module parameter: ``name`` (a boolean) or ``name=value``; the value is any printable text.
MODULE_PARAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(=[^\x00-\x20\x7f]*)?")
MAX_MODULE_ENTRY = 4096  # characters of one entry


def modprobe_argv(modprobe: Sequence[str], name: str, params: Sequence[str] = (),
                  options: Sequence[str] = ()) -> list[str]:
    """modprobe's argv: its own ``options``, ``--``, then the name and the parameters, so that
    neither can be taken as an option (getopt_long permutes: without ``--`` an option is taken
    wherever it stands)."""
    return [*modprobe, *options, "--", name, *params]


def check_modules(value: object) -> tuple[list[ModuleSpec], list[tuple[str, str]]]:
    """``corral.modules`` (a list of "name [param=value ...]") into specs, and problems as (key, reason):
    the config store's domain check rejects a config with any; at boot, a bad entry is skipped."""
    specs: list[ModuleSpec] = []
    problems: list[tuple[str, str]] = []
    if value is None:
        return specs, problems
    if not isinstance(value, list):
        return specs, [("corral.modules", f"expected a list, got {type(value).__name__}")]
    for i, item in enumerate(value):
        key = f"corral.modules[{i}]"
        if not isinstance(item, str) or not item.split():
            problems.append((key, f"expected a module name, got {item!r}"))
            continue
        if len(item) > MAX_MODULE_ENTRY:
            problems.append((key, f"longer than {MAX_MODULE_ENTRY} characters"))
            continue
        name, *params = item.split()
        if not MODULE_NAME.fullmatch(name):
            problems.append((key, f"{name!r} is not a module name (letters, digits, '_', '-', '.', ':', '+'; "
                                  "not starting with '-')"))
            continue
        bad = [p for p in params if not MODULE_PARAM.fullmatch(p)]
        if bad:
            problems.append((key, f"{bad[0]!r} is not a module parameter (expected name or name=value, the "
                                  "name of letters, digits, '_', '-', '.'; not starting with '-')"))
            continue
        specs.append(ModuleSpec(name, tuple(params)))
    return specs, problems


def parse_modules(value: object) -> tuple[list[ModuleSpec], list[str]]:
    """``check_modules`` with each problem as one line, ``key: reason``."""
    specs, problems = check_modules(value)
    return specs, [f"{key}: {reason}" for key, reason in problems]


def scan_modaliases() -> list[str]:
    """Every MODALIAS in sysfs (blocking: run it in a thread)."""
    from supervisor.sources.udev import enumerate_devices

    return [p["MODALIAS"] for p in enumerate_devices() if p.get("MODALIAS")]


@dataclass
class _Outcome:
    returncode: int | None
    seconds: float
    error: str | None = None


NO_MODULE = "no module has this alias"


def split_by_lookup(aliases: Sequence[str], found: Mapping[str, Lookup] | None
                    ) -> tuple[list[str], dict[str, _Outcome]]:
    """Pure: the aliases modprobe must run for (resolving to a module not in the kernel, or not looked
    up), and the outcomes of the others: no module (as modprobe's exit 1) or in the kernel already (0)."""
    if found is None:
        return list(aliases), {}
    spawn: list[str] = []
    settled: dict[str, _Outcome] = {}
    for alias in aliases:
        lookup = found.get(alias)
        if lookup is None or lookup.needs_modprobe:
            spawn.append(alias)
        elif not lookup.modules:
            settled[alias] = _Outcome(1, 0.0, NO_MODULE)
        else:
            settled[alias] = _Outcome(0, 0.0)
    return spawn, settled


class DevicesHandler:
    name = "devices"
    kinds: tuple[type[Event], ...] = (UEvent,)
    config_keys: tuple[str, ...] | None = ("corral.modules",)

    def __init__(self, processes: ProcessManager, bus: Bus, *, modprobe: Sequence[str] = ("modprobe",),
                 concurrency: int = 8, scan: Callable[[], list[str]] = scan_modaliases,
                 timeout: float = 30.0,
                 resolve: Callable[[Sequence[str]], Mapping[str, Lookup] | None] | None = None) -> None:
        self.processes = processes
        self.modprobe = tuple(modprobe)
        self.scan = scan
        self.resolve = resolve
        self.timeout = timeout
        self._sem = asyncio.Semaphore(concurrency)
        self._events = bus.subscribe("devices:modalias", UEvent, maxsize=4096)
        self.aliases: dict[str, _Outcome | None] = {}  # None while running
        self.modules: dict[str, _Outcome] = {}
        self.scans = 0

    async def load_modules(self, modules: Sequence[ModuleSpec]) -> dict[str, int | None]:
        """``corral.modules`` at boot: ``modprobe -- NAME [PARAMS]`` each, in order. Returns exit codes."""
        results: dict[str, int | None] = {}
        for spec in modules:
            outcome = await self._run(modprobe_argv(self.modprobe, spec.name, spec.params), spec.name)
            self.modules[spec.name] = outcome
            results[spec.name] = outcome.returncode
            if outcome.returncode == 0:
                log.info("module loaded", module=spec.name, params=list(spec.params))
            else:
                log.error("module not loaded", module=spec.name, status=outcome.returncode,
                          error=outcome.error)
        return results

    async def reconcile(self, full: bool) -> None:
        seen: list[str] = []
        udev_resync = other_resync = False
        while (event := self._events.get_nowait()) is not None:
            if isinstance(event, Resync):
                # the udev source's resync follows its coldplug events (drained in this same batch); any
                # other resync (this queue overflowed, the runner retried) means events may be missing
                udev_resync = udev_resync or event.source == "udev"
                other_resync = other_resync or event.source != "udev"
            elif isinstance(event, UEvent) and event.action in ADD_ACTIONS and event.modalias:
                seen.append(event.modalias)
        if other_resync or (full and not udev_resync):
            self.scans += 1
            seen.extend(await asyncio.to_thread(self.scan))
        todo = plan_aliases(seen, self.aliases)
        if not todo:
            return
        for alias in todo:
            self.aliases[alias] = None
        found = await asyncio.to_thread(self.resolve, todo) if self.resolve is not None else None
        spawn, settled = split_by_lookup(todo, found)
        for alias, outcome in settled.items():
            self.aliases[alias] = outcome
            log.debug("modalias settled without modprobe", alias=alias, outcome=outcome.error or "in kernel")
        await asyncio.gather(*(self._load_alias(a) for a in spawn))

    async def _load_alias(self, alias: str) -> None:
        outcome = await self._run(modprobe_argv(self.modprobe, alias, options=("-b",)), alias)
        self.aliases[alias] = outcome
        if outcome.returncode == 0:
            log.debug("modalias handled", alias=alias, seconds=round(outcome.seconds, 4))
        else:
            log.info("no module loaded for alias", alias=alias, status=outcome.returncode,
                     error=outcome.error)

    async def _run(self, argv: list[str], what: str) -> _Outcome:
        async with self._sem:
            started = time.monotonic()
            try:
                status, _, err = await self.processes.run(argv, name="modprobe", timeout=self.timeout)
            except (OSError, TimeoutError) as exc:
                return _Outcome(None, time.monotonic() - started, repr(exc))
            text = err.decode(errors="replace").strip()[:300] or None
            return _Outcome(status.returncode, time.monotonic() - started, text)

    def close(self) -> None:
        self._events.close()

    def status(self) -> dict[str, object]:
        done = [o for o in self.aliases.values() if o is not None]
        return {
            "aliases": len(self.aliases),
            "loaded": sum(1 for o in done if o.returncode == 0),
            "failed": sum(1 for o in done if o.returncode != 0),
            "running": sum(1 for o in self.aliases.values() if o is None),
            "scans": self.scans,
            "modules": {n: o.returncode for n, o in self.modules.items()},
        }
