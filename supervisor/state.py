"""What `corral status` reports about the supervisor itself: boot state, phases, degraded reasons."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

BOOTING = "booting"
READY = "ready"
DEGRADED = "degraded"
EMERGENCY = "emergency"
STOPPING = "stopping"


@dataclass
class SupervisorState:
    started: float = field(default_factory=time.time)
    phase: str = "init"
    stopping: bool = False
    emergency: str | None = None
    ready: bool = False
    phases: dict[str, float] = field(default_factory=dict)  # name -> seconds it took
    degraded: dict[str, str] = field(default_factory=dict)  # source -> reason

    @property
    def state(self) -> str:
        if self.stopping:
            return STOPPING
        if self.emergency is not None:
            return EMERGENCY
        if not self.ready:
            return BOOTING
        return DEGRADED if self.degraded else READY

    def degrade(self, source: str, reason: str) -> None:
        self.degraded[source] = reason

    def clear(self, source: str) -> None:
        self.degraded.pop(source, None)
