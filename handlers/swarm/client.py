"""The swarm part of the user dockerd's API: a thin adapter over ``units.runtime.Runtime`` (its
deadlines, its two failures ``DockerUnavailable`` and ``DockerAPIError``) and aiodocker's swarm and node
calls. Tested against a real dockerd (integration/test_swarm.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from swarm.config import InitSpec
from swarm.plan import JoinRequest, Observed
from units.runtime import Runtime, api_call

JOIN_TIMEOUT = 45.0  # dockerd answers a join within 20 s (then keeps trying in the background)
TASK_LABEL = "com.docker.swarm.task.id"


class SwarmClient:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def observe(self) -> Observed:
        """``GET /info``'s Swarm fields and, on a manager, this node (``GET /nodes/<id>``)."""
        info = await self.runtime.info()
        swarm = info.get("Swarm") or {}
        node = None
        if swarm.get("ControlAvailable") and swarm.get("NodeID"):
            node = await self.node(str(swarm["NodeID"]))
        return Observed.from_info(info, node)

    async def node(self, node_id: str) -> dict[str, Any]:
        return dict(await api_call(self.runtime, "inspect node", lambda d: d.nodes.inspect(node_id=node_id)))

    async def init(self, spec: InitSpec) -> str:
        async def call(docker: Any) -> str:
            return str(await docker.swarm.init(
                advertise_addr=spec.advertise_addr, listen_addr=spec.listen_addr,
                default_addr_pool=list(spec.default_addr_pool) or None, data_path_port=spec.data_path_port))

        return await api_call(self.runtime, "swarm init", call, JOIN_TIMEOUT)

    async def join(self, request: JoinRequest) -> None:
        await api_call(self.runtime, "swarm join", lambda d: d.swarm.join(
            remote_addrs=list(request.remote_addrs), join_token=request.token,
            listen_addr=request.listen_addr, advertise_addr=request.advertise_addr), JOIN_TIMEOUT)

    async def leave(self, force: bool) -> None:
        await api_call(self.runtime, "swarm leave", lambda d: d.swarm.leave(force=force), JOIN_TIMEOUT)

    async def update_node(self, node_id: str, version: int, spec: Mapping[str, Any]) -> None:
        await api_call(self.runtime, "update node", lambda d: d.nodes.update(node_id=node_id, version=version,
                                                                        spec=dict(spec)))

    async def swarm(self) -> dict[str, Any]:
        """``GET /swarm`` (a manager only): the cluster, with its join tokens."""
        return dict(await api_call(self.runtime, "inspect swarm", lambda d: d.swarm.inspect()))

    async def tasks_here(self) -> list[dict[str, Any]]:
        """The swarm tasks running on this node, from its own containers (a worker cannot list tasks)."""
        listed = await self.runtime.list_summaries(label=TASK_LABEL, all=False)
        out = []
        for c in listed:
            labels = c.get("Labels") or {}
            out.append({"task": labels.get("com.docker.swarm.task.name", ""),
                        "service": labels.get("com.docker.swarm.service.name", ""),
                        "container": str(c.get("Id") or "")[:12], "state": c.get("State", ""),
                        "status": c.get("Status", "")})
        return sorted(out, key=lambda t: t["task"])
