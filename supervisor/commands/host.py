"""What the control commands see of PID 1: a narrow, typed view (the ``Supervisor`` satisfies it), so
that the commands never import the composition root that builds them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from handlers.swarm.reconciler import SwarmHandler
    from handlers.units.reconciler import UnitsReconciler
    from supervisor.boot.context import Runners
    from supervisor.boot.network import NetworkService
    from supervisor.boot.slots import BootSlots
    from supervisor.boot.storage import StorageServices
    from supervisor.bus import Bus
    from supervisor.config.store import ConfigStore
    from supervisor.config.worker import ConfigWorker
    from supervisor.journal import Journal
    from supervisor.paths import Paths
    from supervisor.process import ProcessManager


class Host(Protocol):
    paths: Paths
    bus: Bus
    journal: Journal
    processes: ProcessManager
    config: ConfigStore
    config_worker: ConfigWorker
    runners: Runners
    storage: StorageServices
    units: UnitsReconciler | None
    network: NetworkService | None
    swarm: SwarmHandler | None
    slots: BootSlots | None

    def request(self, action: str) -> None: ...  # poweroff | reboot | halt

    async def reload(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def setting(self, key: str, default: Any) -> Any: ...
