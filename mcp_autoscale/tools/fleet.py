"""Read-only fleet tools: the snapshot and the pool list."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.models import FleetSnapshot
from mcp_autoscale.tools._shared import OptDeployment, OptNamespace, Progress, read_only


class PoolSummary(BaseModel):
    namespace: str
    deployment: str
    model: str
    role: str
    gpu: str = Field(description="GPUs per replica x type, e.g. '4x H100'")
    replicas: int
    owner: str = Field(description="'ScaledObject/llama-8b (2..16)', 'HorizontalPodAutoscaler/...' or 'none'")
    slo: str


class PoolList(BaseModel):
    pools: list[PoolSummary]


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.tool(annotations=read_only("SLO snapshot"))
    async def get_slo_snapshot(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        include_node_pools: bool = True,
        ctx: Context | None = None,
    ) -> FleetSnapshot:
        """Per-pool serving signals now: TTFT/ITL p50/p90(/p99) in s, KV usage 0-1, queue, tokens/s,
        preemptions/min, replicas, owner (HPA/KEDA), SLO status vs targets, $/h, data age. Missing or stale
        signals are named with the reason (never reported as zero). Filter by namespace/deployment."""
        progress = Progress(ctx, 2)
        await progress.run("running approved proposals", app.run_approved)
        return await progress.run(
            f"reading cluster state and signals from {app.signals.name}",
            lambda: app.snapshotter.take(
                namespace=namespace, name=deployment, include_node_pools=include_node_pools
            ),
        )

    @server.tool(annotations=read_only("List pools"))
    def list_pools(namespace: OptNamespace = None) -> PoolList:
        """Model pools the server can act on, with GPU, replicas and which autoscaler owns the replicas."""
        snap = app.snapshotter.take(namespace=namespace, include_node_pools=False)
        out = []
        for p in snap.pools:
            owner = "none"
            if p.owner is not None:
                owner = (
                    f"{p.owner.kind.value}/{p.owner.name} ({p.owner.min_replicas}..{p.owner.max_replicas})"
                )
            out.append(
                PoolSummary(
                    namespace=p.namespace,
                    deployment=p.name,
                    model=p.model,
                    role=p.role.value,
                    gpu=f"{p.gpus_per_replica}x {p.gpu_type}",
                    replicas=p.replicas["desired"],
                    owner=owner,
                    slo=p.slo.value,
                )
            )
        return PoolList(pools=out)
