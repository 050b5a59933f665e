"""Read-only fleet tools: the snapshot and the pool list, both bounded (summary + one page, attention first)."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import FleetSnapshot, PoolSnapshot
from mcp_autoscale.paging import (
    FleetSummary,
    active_filters,
    by_attention,
    paginate,
    query_digest,
    select,
    status,
    summarise,
)
from mcp_autoscale.tools._shared import (
    DEFAULT_PAGE,
    Cursor,
    GpuType,
    Limit,
    OptCluster,
    OptDeployment,
    OptNamespace,
    Owner,
    Progress,
    Slo,
    compact_result,
    read_only,
    tool_error,
)

MAX_WARNINGS = 10


class SnapshotPage(FleetSnapshot):
    """A fleet snapshot, bounded: the summary of every matching pool and one page of them, attention first."""

    total_pools: int
    next_cursor: str | None = None
    summary: FleetSummary


class PoolSummary(BaseModel):
    namespace: str
    deployment: str
    cluster: str | None = Field(default=None, description="Cluster (servers with several)")
    model: str
    role: str
    gpu: str = Field(description="GPUs per replica x type, e.g. '4x H100'")
    replicas: int
    owner: str = Field(description="'ScaledObject/llama-8b (2..16)', 'HorizontalPodAutoscaler/...' or 'none'")
    slo: str = Field(description="breach / at_risk / unknown / ok")


class PoolList(BaseModel):
    pools: list[PoolSummary]
    total_pools: int
    next_cursor: str | None = None
    summary: FleetSummary


def cap_warnings(warnings: list[str]) -> list[str]:
    if len(warnings) <= MAX_WARNINGS:
        return warnings
    return [*warnings[:MAX_WARNINGS], f"... and {len(warnings) - MAX_WARNINGS} more warnings"]


def pool_summary(p: PoolSnapshot) -> PoolSummary:
    owner = "none"
    if p.owner is not None:
        owner = f"{p.owner.kind.value}/{p.owner.name} ({p.owner.min_replicas}..{p.owner.max_replicas})"
    return PoolSummary(
        namespace=p.namespace,
        deployment=p.name,
        cluster=p.cluster,
        model=p.model,
        role=p.role.value,
        gpu=f"{p.gpus_per_replica}x {p.gpu_type}",
        replicas=p.replicas["desired"],
        owner=owner,
        slo=status(p),
    )


def register(server: MCPServer, app: AutoscaleApp) -> None:
    def fleet_page(
        tool: str, filters: dict[str, str], limit: int, cursor: str | None, include_node_pools: bool
    ) -> tuple[FleetSnapshot, FleetSummary, list[PoolSnapshot], int, str | None]:
        def compute() -> tuple[tuple[FleetSnapshot, FleetSummary], list[PoolSnapshot]]:
            snap = app.snapshotter.take(
                namespace=filters.get("namespace"),
                name=filters.get("deployment"),
                include_node_pools=include_node_pools,
                cluster=filters.get("cluster"),
            )
            pools = by_attention(select(snap.pools, filters))
            header = snap.model_copy(update={"pools": [], "warnings": cap_warnings(snap.warnings)})
            return (header, summarise(pools)), pools

        query = query_digest(tool, {**filters, "node_pools": include_node_pools})
        try:
            page = paginate(app.pages, query, limit, cursor, compute)
        except AutoscaleError as err:
            raise tool_error(err) from None
        header, summary = page.header
        return header, summary, page.items, page.total, page.next_cursor

    @server.tool(annotations=read_only("SLO snapshot"))
    async def get_slo_snapshot(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        slo: Slo = None,
        gpu_type: GpuType = None,
        owner: Owner = None,
        cluster: OptCluster = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
        include_node_pools: bool = True,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, SnapshotPage]:
        """Fleet summary, then up to `limit` pools, most urgent first (breach, at risk, stale/missing, idle
        spend); next_cursor pages on. Per pool: TTFT/ITL p50/p90 (s), KV 0-1, queue, tokens/s, preemptions,
        replicas, owner, SLO, $/h, data age. Missing signals say why (never zero)."""
        filters = active_filters(  # fixed keyword names: an unknown one is a bug, not bad input
            namespace=namespace,
            deployment=deployment,
            slo=slo,
            gpu_type=gpu_type,
            owner=owner,
            cluster=cluster,
        )
        progress = Progress(ctx, 2)
        await progress.run("running approved proposals", app.run_approved)
        header, summary, pools, total, nxt = await progress.run(
            f"reading cluster state and signals from {app.signals.name}",
            lambda: fleet_page("get_slo_snapshot", filters, limit, cursor, include_node_pools),
        )
        page = SnapshotPage(
            **header.model_dump(exclude={"pools"}),
            pools=pools,
            total_pools=total,
            next_cursor=nxt,
            summary=summary,
        )
        return compact_result(page)

    @server.tool(annotations=read_only("List pools"))
    def list_pools(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        slo: Slo = None,
        gpu_type: GpuType = None,
        owner: Owner = None,
        cluster: OptCluster = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, PoolList]:
        """Pools (GPU, replicas, owning autoscaler, SLO status), most urgent first, with a fleet summary;
        next_cursor pages on."""
        filters = active_filters(  # fixed keyword names: an unknown one is a bug, not bad input
            namespace=namespace,
            deployment=deployment,
            slo=slo,
            gpu_type=gpu_type,
            owner=owner,
            cluster=cluster,
        )
        _, summary, pools, total, nxt = fleet_page("list_pools", filters, limit, cursor, False)
        out = PoolList(
            pools=[pool_summary(p) for p in pools], total_pools=total, next_cursor=nxt, summary=summary
        )
        return compact_result(out)
