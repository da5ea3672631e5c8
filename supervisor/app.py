"""The composition root: builds PID 1's parts, runs the boot phases, reacts to signals and shuts down.

It wires; it does not decide. Decisions live in the parts (config store, handlers, process keeper)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from handlers.authorized_keys import AuthorizedKeysWriter
from handlers.hostname import HostnameKeeper
from handlers.processes import ProcessKeeper
from storage.media import LabelledMedia
from supervisor import __version__, prefetch, signals
from supervisor.boot.context import BootContext, Runners, StopRegistry
from supervisor.boot.datasources import disk_datasources, network_datasources
from supervisor.boot.modules import CloudModules
from supervisor.boot.schema import check_config_schema
from supervisor.boot.storage import StorageServices
from supervisor.boot.unit_urls import UnitUrls
from supervisor.bus import Bus
from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.proxy import proxy_environment
from supervisor.config.salvage import ON_LAST_GOOD, WHOLE, domain_root, summary
from supervisor.config.store import ReloadResult
from supervisor.config.worker import ConfigWorker
from supervisor.domain_checks import Domains, config_store
from supervisor.emergency import emergency_shell, open_console
from supervisor.events import ConfigChanged, Phase, SignalReceived
from supervisor.journal import Journal
from supervisor.journal.redact import redact_text
from supervisor.mounts import MountTable
from supervisor.paths import Paths
from supervisor.process import ProcessManager
from supervisor.state import SupervisorState
from supervisor.tasks import running_tasks, spawn_task

if TYPE_CHECKING:
    from handlers.swarm.reconciler import SwarmHandler
    from handlers.udevd import Udevd
    from handlers.units.reconciler import UnitsReconciler
    from handlers.user_images import UserImagesHandler
    from supervisor.boot.images import SystemImages
    from supervisor.boot.network import NetworkService
    from supervisor.boot.slots import BootSlots
    from supervisor.control.server import ControlServer
    from supervisor.sources.acpi import AcpiSource
    from supervisor.sources.docker import DockerEventsSource
    from supervisor.sources.timer import Timer
    from units.system_dockerd import SystemDockerd

log = structlog.get_logger("supervisor")

STATUS_INTERVAL = 60.0
SYSTEM_DOCKER_READY_TIMEOUT = 60.0
# The images and units phases' modules (0.5 s of imports under TCG): imported by the units phase they
# held up the image loads the images phase had just begun (their requests are sent from this loop).
IMAGES_AND_UNITS = ("supervisor.boot.images", "units.images", "supervisor.boot.units")
SYSTEM_DOCKER_SPAWN_TIMEOUT = 30.0  # the system-docker-start phase's wait for the spawn (then degraded)
AFTER_READY_WAIT = 120.0  # the schema check and the heap freeze wait at most this long for the ready line


class FatalStartup(Exception):
    """A boot phase that PID 1 cannot go on without failed."""


@dataclass
class Options:
    paths: Paths
    mount_root: Path = Path("/")
    sandbox: bool = False
    emergency_shell: tuple[str, ...] = ("/bin/sh",)
    cmdline: str | None = None  # None: read paths.cmdline_file


@dataclass
class Supervisor:
    options: Options
    journal: Journal
    bus: Bus = field(default_factory=Bus)
    state: SupervisorState = field(default_factory=SupervisorState)

    def __post_init__(self) -> None:
        self.paths = self.options.paths
        self.processes = ProcessManager(self.bus.publish)
        self.mounts = MountTable(self.options.mount_root)
        # the disk datasources' media (nocloud, configdrive), found by label and read on the config worker
        self.media = LabelledMedia(self.paths.run_dir / "media")
        # the schema's own check (seconds under TCG) runs once the system dockerd is spawned (boot/schema.py)
        self.config = config_store(self.paths, self.options.cmdline, self.media, check_schema=False)
        self.config.sources.network_ready = False  # ec2, url: fetch once the network phase is done
        self.config_worker = ConfigWorker()  # every parse and validation of config, off the loop
        self.config_errors: list[str] = []
        self.config_salvaged: list[str] = []  # "corral.network: 2 error(s); on the last good config"
        self.config_warnings: list[str] = []
        self.datasource_notes: list[str] = []
        self.stops = StopRegistry()  # in start order; shutdown walks it backwards
        self.runners = Runners(self.bus, lambda: self.setting("handlers", {}) or {})
        self.ctx = BootContext(
            bus=self.bus, processes=self.processes, journal=self.journal, paths=self.paths,
            sandbox=self.options.sandbox, config=lambda: self.config.current,
            generation=lambda: self.config.generation, runners=self.runners, stops=self.stops,
            reload=self.reload, domains=Domains(self.config), degrade=self.state.degrade,
            clear=self.state.clear)
        self.timers: list[Timer] = []
        self.keeper = ProcessKeeper(self.processes, self.bus)
        self.storage = StorageServices()
        self.system_docker: SystemDockerd | None = None
        self.docker_events: DockerEventsSource | None = None
        self.images: SystemImages | None = None  # the system dockerd's image archives (`images` phase)
        self.units: UnitsReconciler | None = None  # the units reconciler (the `units` boot phase)
        self.user_images: UserImagesHandler | None = None  # preloads the user dockerd (`units` phase)
        self.swarm: SwarmHandler | None = None  # corral.swarm's reconciler (`units` phase)
        self.network: NetworkService | None = None  # the `network` boot phase
        self.slots: BootSlots | None = None  # the installed disk's boot slots (the `slots` phase)
        self._final: asyncio.Future[str] | None = None
        self.control: ControlServer | None = None
        self.acpi: AcpiSource | None = None
        self.udevd: Udevd | None = None  # corral.udev (the devices phase)
        self.modules = CloudModules(self.ctx)  # write_files, bootcmd, runcmd, corral.sysctl
        self.unit_urls = UnitUrls(self.paths.fetched_units_dir, self.reload,  # services_include URLs
                                  lambda: self.config.sources.network_ready)

    # ---- life cycle ----------------------------------------------------------------------
    async def run(self) -> str:
        """Boot, then serve until a poweroff/reboot/halt is requested; returns that action."""
        loop = asyncio.get_running_loop()
        self._final = loop.create_future()
        self.processes.attach(loop)
        signals.install(loop, self._on_signal)
        try:
            await self.boot()
        except FatalStartup as exc:
            self.state.emergency = str(exc)
            console = None if self.options.sandbox else open_console()
            await asyncio.to_thread(self.journal.drain_console)  # the reason is on screen before the shell
            await emergency_shell(self.processes, str(exc), self.options.emergency_shell, console=console,
                                  respawn=not self.options.sandbox)
            if not self._final.done():
                self._final.set_result("poweroff")
        action = await self._final
        await self.shutdown(action)
        return action

    async def boot(self) -> None:
        log.info(f"corral {__version__} starting", pid=os.getpid())
        prefetch.start(prefetch.EARLY)  # the heavy imports overlap the phases' waits (supervisor/prefetch.py)
        await self._phase("mounts", self._mounts, fatal=True)
        await self._phase("config", self._load_config)
        await self._phase("devices", self._devices)
        await self._phase("datasources",
                          lambda: disk_datasources(self.media, self.setting, self._load_config))
        await self._phase("state", self._state, fatal=True)
        await self._phase("storage", self._storage)
        await self._phase("slots", lambda: _start_slots(self))  # an installed disk's trial or rollback
        await self._phase("sysctl", self.modules.start_sysctl)  # the cloud-config modules: sysctl,
        await self._phase("bootcmd", self.modules.run_bootcmd)  # bootcmd and write_files early; the
        await self._phase("write-files", self.modules.start_write_files)  # deferred ones and runcmd last
        await self._phase("hostname", self._hostname)
        # dockerd takes the longest to come up (25 s under QEMU's TCG): it starts now and comes up while
        # the network is configured; "system-docker" then waits for it. The phase ends at the spawn.
        await self._phase("system-docker-start", self._system_docker_start)
        prefetch.start(prefetch.AFTER_SPAWN)  # what only the later phases need, while dockerd starts
        await self._phase("loopback", lambda: asyncio.to_thread(_loopback_up))
        await self._phase("network", self._network)
        await self._phase("network-datasources",
                          lambda: network_datasources(self.config.sources, self._load_config))
        self.unit_urls.start(self.setting("services_include", {}))  # in the background, never waited for
        await self._phase("control", self._control, fatal=True)
        await self._phase("handlers", self._handlers, fatal=True)
        await self._phase("system-docker", self._system_docker)
        await self._phase("images", self._preload_images)
        await self._phase("units", self._units)
        self.state.ready = True
        self.state.phase = "ready"
        from supervisor.boot.ready import announce_ready

        self.modules.after_boot()  # deferred write_files, then runcmd, in the background

        also = self.images.ready_waits() if self.images is not None else {}
        if self.units is not None and self.user_images is not None:
            also.update(self.user_images.ready_waits(self.units.units))
        said = asyncio.Event()

        def on_ready() -> None:
            if self.slots is not None:
                self.slots.on_ready()  # a trial boot is good
            said.set()

        announce_ready(self.ctx, self.units, self.state.started, lambda: self.state.stopping, also, on_ready)
        after = spawn_task(_after_ready(self, said), name="after-ready")
        self.stops.add("after ready", lambda: _cancelled(after))  # (a shutdown closes the config worker)

    async def _phase(self, name: str, body: Callable[[], Awaitable[None]], fatal: bool = False) -> None:
        self.state.phase = name
        self.bus.publish(Phase(name=name, state="started"))
        started = time.monotonic()
        try:
            await body()
        except FatalStartup:
            self.bus.publish(Phase(name=name, state="failed"))
            raise
        except Exception as exc:
            self.bus.publish(Phase(name=name, state="failed"))
            if fatal:
                log.critical("boot phase failed", phase=name, error=str(exc), exc_info=exc)
                raise FatalStartup(f"{name}: {exc}") from exc
            log.error("boot phase failed; carrying on degraded", phase=name, error=str(exc))
            self.state.degrade(name, str(exc))
            return
        self.state.phases[name] = round(time.monotonic() - started, 6)
        self.bus.publish(Phase(name=name, state="done"))
        log.info("boot phase done", phase=name, seconds=self.state.phases[name])

    def request(self, action: str) -> None:
        """Ask for poweroff, reboot or halt. The first request wins."""
        if self._final is not None and not self._final.done():
            log.info("shutdown requested", action=action)
            self._final.set_result(action)

    async def shutdown(self, action: str) -> None:
        self.state.stopping = True
        self.journal.console_mirror = True
        log.info("shutting down", action=action)
        grace = float(self.setting("shutdown_grace", 10))
        for timer in reversed(self.timers):
            await timer.stop()
        await self.runners.stop_all()
        await self.stops.stop_all()
        await self.processes.stop_all(grace)
        self.config_worker.shutdown()
        await asyncio.to_thread(os.sync)
        # A journal that cannot write stops retrying: a retry after this would write under the mounts.
        await asyncio.to_thread(self.journal.outage.close)
        # A mount the journal still writes to is detached lazily; the journal is closed after this,
        # then reboot(2) syncs, so the last lines reach the disk and the filesystem ends clean.
        self.mounts.unmount_all()
        log.info("shutdown complete", action=action)

    # ---- boot phases -----------------------------------------------------------------------
    async def _mounts(self) -> None:
        await asyncio.to_thread(self.mounts.ensure_base)
        if self.options.sandbox:  # its own /run and /sys, so that a dockerd it runs stays in the sandbox
            await asyncio.to_thread(self.mounts.isolate_run_and_sys, self.paths.prefix)

    async def _load_config(self) -> None:
        result = await self.config_worker.run(self.config.load)
        recovered = self.config.last_recovered
        if recovered.adopted or recovered.removed:  # the old layout, a hand edit, or a crash's leftovers
            log.info("config files adopted or tidied", adopted=list(recovered.adopted),
                     removed=list(recovered.removed))
        self._note_config(result.errors)
        self._apply_log_settings()

    def _note_config(self, errors: list[ConfigError]) -> None:
        """Errors of a load (boot, reload): each logged once (not again while the next loads still
        have it), listed in status, and the domain roots they cost shown as degraded, naming what each
        is on (the last good config, or the defaults). Then the warnings, the same way. What each
        datasource found is logged when it changes."""
        notes = list(self.config.last_notes)
        if notes != self.datasource_notes:
            for note in notes:
                log.info(f"datasource {note}")
        self.datasource_notes = notes
        texts = [str(e) for e in errors]
        on = self.config.salvaged
        for error, text in zip(errors, texts, strict=True):
            if text not in self.config_errors:
                root = domain_root(error.key)
                if root is None:  # a file that cannot be read: the others are
                    log.error("config error", error=text, root=None, on=on.get(WHOLE) or "not read")
                else:
                    log.error("config error", error=text, root=root, on=on.get(root) or on.get(WHOLE))
        self.config_errors = texts
        self.config_salvaged = summary(self.config.salvaged_errors, on)
        if on:
            self.state.degrade("config", "; ".join(self.config_salvaged))
        elif texts:  # only files that could not be read at all (their other layers are in force)
            self.state.degrade("config", f"{len(texts)} config error(s); the files with them are not read")
        else:
            self.state.clear("config")
        # Warnings (a key corral knows but does not implement, a datasource that found nothing) are
        # logged when they change and listed in status; they do not make the boot degraded: what they
        # name is ignored on purpose, and everything else is applied.
        warnings = [str(w) for w in self.config.last_warnings]
        if warnings != self.config_warnings:
            for warning in warnings:
                log.warning("config warning", warning=warning)
        self.config_warnings = warnings

    async def _devices(self) -> None:
        """udev source (monitor, then coldplug), MODALIAS module loading, corral.modules."""
        from supervisor.boot.storage import start_devices
        from supervisor.boot.udevd import start_udevd

        # The sandbox shares the host's kernel: it must not load modules into it.
        modprobe = ("modprobe", "--dry-run") if self.options.sandbox else ("modprobe",)
        # udevd first: the udev source then opens on udevd's events
        self.udevd = udevd = await start_udevd(self.ctx, self.keeper)
        # The coldplug runs on through state .. system-docker-start; `network` waits for it.
        await start_devices(self.ctx, self.storage, modprobe=modprobe, background_coldplug=True)
        udevd.attach(self.storage.udev)

    async def _state(self) -> None:
        """The state partition: found (or a zeroed candidate formatted), mounted, the persistent
        directories bound from it, and the config read again from it. Missing and not required: run
        from RAM, said loudly; missing and required: the emergency shell."""
        from storage.state import STATE_MOUNT, bind_persistent
        from supervisor.boot.storage import StateEmergency, start_storage

        if self.options.sandbox and not self.setting("state", None):
            # The sandbox sees the host's disks: it looks for a state partition only when told to.
            log.info("no corral.state configured; the sandbox keeps its state in its directory")
            await start_storage(self.ctx, self.storage, find_state=False)
            return
        try:
            if await start_storage(self.ctx, self.storage):
                self.mounts.mounted.append(STATE_MOUNT)  # unmounted at shutdown, after everything else
        except StateEmergency as exc:
            raise FatalStartup(f"state: {exc}") from exc
        state = self.storage.state
        if state is None or state.outcome not in ("found", "formatted"):
            reason = state.reason if state is not None else "not looked for"
            if self.options.sandbox:  # the sandbox's directory is its persistent storage
                log.info("no state partition; the sandbox keeps its state in its directory", reason=reason)
                return
            self.state.degrade("state", f"no state partition, running from RAM: {reason}")
            log.warning("no state partition: nothing written now survives a reboot", reason=reason)
            return
        bound = await asyncio.to_thread(bind_persistent, STATE_MOUNT, self.paths.prefix)
        self.mounts.mounted.extend(bound)
        await self._load_config()  # the config persisted on the state partition, if any

    async def _storage(self) -> None:
        settings = self.setting("log", {}) or {}
        await asyncio.to_thread(self.journal.attach_storage, self.paths.log_dir,
                                int(settings.get("max_bytes", 10 << 20)), int(settings.get("keep", 5)))

    async def _hostname(self) -> None:
        """The host name's reconciler (handlers/hostname.py): applied now, before the system dockerd and
        DHCP (which sends it), then kept by its runner on every config change, a failure now included."""
        keeper = HostnameKeeper(self.paths, lambda: self.config.current)
        try:
            await keeper.reconcile(full=True)
        finally:
            self.ctx.add_handler(keeper)

    async def _network(self) -> None:
        from supervisor.boot.network import start_network

        if self.storage.udev is not None:  # NICs' modules come from their MODALIAS
            failed = await self.storage.udev.coldplugged()
            if failed is not None:  # the devices phase's own failure, found late: boot goes on degraded
                self.state.degrade("devices", f"coldplug failed: {failed!r}")
        self.network = await start_network(self.ctx)

    async def _control(self) -> None:
        from supervisor.commands.core import build_control_server

        control = self.control = build_control_server(self)
        await control.start()
        self.stops.add("control socket", control.stop)

    async def _handlers(self) -> None:
        from supervisor.sources.timer import Timer

        self.ctx.add_handler(self.keeper)  # (already running when the devices phase started udevd)
        self.ctx.add_handler(AuthorizedKeysWriter(self.paths, lambda: self.config.current))  # console's keys
        timer = Timer(self.bus, "status", STATUS_INTERVAL)
        timer.start()
        self.timers.append(timer)
        if not self.options.sandbox:  # the host's power button is not the sandbox's
            from supervisor.boot.power import start_power_button

            self.acpi = start_power_button(self.ctx, self.request)

    async def _system_docker_start(self) -> None:
        """Spawn the system dockerd (kept running and watched by SystemDockerd); ``_system_docker`` waits
        until it answers. Only the spawn is on this phase's path: the API client (aiodocker, seconds to
        import under TCG) is first needed to ping it. The phase ends once dockerd is spawned (its
        directories and bridge made first), so that what comes after does not compete with that; a
        first start that fails before the spawn, or takes longer than its bound, degrades it."""
        if not (self.setting("system_docker", {}) or {}).get("enabled", True):
            log.info("system docker disabled by corral.system_docker.enabled")
            return
        from units.system_dockerd import DOCKERD, DockerdLayout, SystemDockerd

        if not await asyncio.to_thread(DOCKERD.exists):
            raise RuntimeError(f"{DOCKERD} missing: the system docker cannot run")
        # corral.network's proxies are its environment (as RancherOS's; a change takes effect at its restart)
        proxies = tuple(proxy_environment(self.config.current).items())
        layout = replace(DockerdLayout.system(self.paths, self.options.sandbox), environment=proxies)
        dockerd = SystemDockerd(self.processes, self.bus, layout, journal=self.journal)
        self.system_docker = dockerd
        grace = float(self.setting("shutdown_grace", 10))
        dockerd.start()
        self.stops.add("system dockerd", lambda: dockerd.stop(grace))
        if not await dockerd.wait_spawned(SYSTEM_DOCKER_SPAWN_TIMEOUT):
            why = dockerd.spawn_error or f"still preparing after {SYSTEM_DOCKER_SPAWN_TIMEOUT:g} s"
            raise RuntimeError(f"system dockerd not spawned: {why}; still trying")

    async def _system_docker(self) -> None:
        """Wait until the system dockerd answers, then start the events source of its socket. Not
        answering in time degrades boot, and it keeps trying."""
        dockerd = self.system_docker
        if dockerd is None:
            return
        from supervisor.sources.docker import DockerEventsSource

        events = DockerEventsSource(self.bus, dockerd.layout.socket, daemon="system")
        dockerd.on_up.append(events.wake)
        self.docker_events = events
        for name in IMAGES_AND_UNITS:  # now, while dockerd starts, not between the loads' start and them
            importlib.import_module(name)
        ready = await dockerd.wait_ready(SYSTEM_DOCKER_READY_TIMEOUT)
        events.start()
        self.stops.add("docker events", events.stop)
        if not ready:
            raise RuntimeError(f"system dockerd not answering after {SYSTEM_DOCKER_READY_TIMEOUT:g} s; "
                               "still trying")

    async def _preload_images(self) -> None:
        """The image archives: their loads start, and the units with them (supervisor/boot/images.py)."""
        if self.system_docker is None:
            return
        from supervisor.boot.images import SystemImages

        self.images = SystemImages(self.bus, self.system_docker, self.paths, self.state.degrade)
        await self.images.start()

    async def _units(self) -> None:
        """The units reconciler (handlers.units): started with the system dockerd; waits until the
        first wave of units is up or failed. Its stopper, added after dockerd's, runs before it."""
        if self.system_docker is None:
            log.info("units not started: the system dockerd is off")
            return
        from supervisor.boot.units import start_units

        booted = start_units(self.ctx, self.system_docker, lambda: self.storage.storage,
                             self.images.preloads if self.images is not None else None)
        self.units, self.user_images = booted.handler, booted.user_images
        from supervisor.boot.swarm import start_swarm

        self.swarm = start_swarm(self.ctx, booted.user_up)  # never waited for: a swarm never holds the boot
        await booted.wait_first_wave()

    # ---- reactions ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, action: str) -> None:
        self.bus.publish(SignalReceived(signum=signum, name=signals.signal_name(signum), action=action))
        if action in (signals.POWEROFF, signals.REBOOT, signals.HALT):
            self.request(action)
        elif action == signals.RELOAD:
            spawn_task(self.reload(), name="reload")
        elif action == signals.DUMP:
            log.info("state dump", **self.status())

    async def reload(self) -> dict[str, Any]:
        """Re-read the config and put it in force. With errors, each domain root they cost stays on
        the last good config and the rest is applied all the same (supervisor/config/salvage.py):
        ``applied`` is False, ``salvaged`` names those roots, ``changed`` what came into force."""
        warned = set(self.config_warnings)
        try:
            errors, changed = await self.config_worker.run(self.config.reload)
        except Exception as exc:  # a failed reload is reported (status), never a dead task
            errors, changed = ReloadResult([ConfigError("config", DOCUMENT, f"reload failed: "
                                                        f"{type(exc).__name__}: {exc}")], [])
            self.config.salvaged, self.config.salvaged_errors = {WHOLE: ON_LAST_GOOD}, {WHOLE: 1}
        self._note_config(errors)
        if changed:
            log.info("config changed", changed=list(changed), generation=self.config.generation)
            self._apply_log_settings()
            self.bus.publish(ConfigChanged(generation=self.config.generation, changed=tuple(changed)))
            if "corral.services_include" in changed:
                self.unit_urls.start(self.setting("services_include", {}))
        result: dict[str, Any] = {"applied": not errors, "changed": list(changed),
                                  "generation": self.config.generation,
                                  "new_warnings": [w for w in self.config_warnings if w not in warned]}
        if errors:
            result.update(errors=self.config_errors, salvaged=list(self.config_salvaged))
        return result

    def _apply_log_settings(self) -> None:
        settings = self.setting("log", {}) or {}
        self.journal.set_level(str(settings.get("level", "info")))

    def setting(self, key: str, default: Any) -> Any:
        """A value under the `corral:` key of the config in force."""
        return (self.config.current.get("corral") or {}).get(key, default)

    # ---- reporting -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        journal = self.journal.status()
        if journal["failure"] is None:  # the journal retries by itself: status says how it is now
            self.state.clear("journal")
        else:
            self.state.degrade("journal", journal["failure"]["reason"])
        return {
            "version": __version__,
            "os": self.slots.status() if self.slots is not None else None,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "sandbox": self.options.sandbox,
            "state": self.state.state,
            "phase": self.state.phase,
            "uptime": round(time.time() - self.state.started, 3),
            "boot_phases": dict(self.state.phases),
            "degraded": dict(self.state.degraded),
            "emergency": self.state.emergency,
            "config": config_status(self.config.generation, self.config_errors, self.config_warnings,
                                    self.config.salvaged),
            "handlers": self.runners.status(),
            "processes": {
                "children": [{"name": c.name, "pid": c.pid} for c in self.processes.children()],
                "spawned": self.processes.spawned,
                "orphans_reaped": self.processes.orphans_reaped,
            },
            "bus": self.bus.stats(),
            "tasks": len(running_tasks()),
            "memory": {"max_rss_kib": _status_kib("VmHWM"), "rss_kib": _status_kib("VmRSS"),
                       "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3)},
            "mounts": [str(p) for p in self.mounts.mounted],
            "journal": journal,
            "storage": self.storage.status(),
            "system_docker": None if self.system_docker is None else {
                **self.system_docker.status(),
                "events": self.docker_events.status() if self.docker_events is not None else None,
                "preload": self.images.result if self.images is not None else None,
            },
            "user_docker": None if self.user_images is None else {"preload": self.user_images.status()},
            "units": None if self.units is None else self.units.status(),
            "swarm": None if self.swarm is None else self.swarm.status(),
            "udevd": None if self.udevd is None else self.udevd.status(),
            **self.modules.status(),
        }


def config_status(generation: int, errors: list[str], warnings: list[str],
                  salvaged: Mapping[str, str]) -> dict[str, Any]:
    """The ``config`` part of status. Errors and warnings quote the user's values (a URL with its
    password, a ``token=...``): status is a plain view, so they pass the journal's redaction too."""
    return {"generation": generation, "errors": [redact_text(e) for e in errors],
            "warnings": [redact_text(w) for w in warnings], "salvaged": dict(salvaged)}


def _status_kib(field: str) -> int:
    """A memory figure (VmRSS, VmHWM) of this process from /proc/self/status, in KiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _loopback_up() -> None:
    from pyroute2.iproute.linux import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname="lo")
        if index:
            ipr.link("set", index=index[0], state="up")


async def _start_slots(sup: Supervisor) -> None:
    """The ``slots`` boot phase (supervisor/boot/slots.py): a trial boot's clock, or a rollback's report."""
    from supervisor.boot.slots import BootSlots

    sup.slots = await BootSlots.for_boot(sup.ctx, sup.options.cmdline, sup.request, sup.state.started,
                                         lambda: sup.units.not_up() if sup.units is not None else {})
    await sup.slots.start()


async def _after_ready(sup: Supervisor, said: asyncio.Event) -> None:
    """Work off the boot's path, once ready was said (or AFTER_READY_WAIT without it): the schema's own
    check (supervisor/boot/schema.py) and the boot heap's freeze (ConfigWorker.freeze), seconds of CPU
    under TCG that would otherwise compete with the user dockerd's start on a two-vCPU guest."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(said.wait(), AFTER_READY_WAIT)
    if not sup.state.stopping:
        await check_config_schema(sup.config.schema, sup.state.degrade)
    if not sup.state.stopping:
        log.debug("boot heap frozen", objects=await sup.config_worker.freeze())


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
