"""Planner tools: per-pool recommendations with the exact tool call to make, and a pool explanation.

The planner is pure (``mcp_autoscale.planner``); this module feeds it the snapshot, the cluster state,
the node pools, the price catalogue and the recent snapshot history, and returns its answer.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError, NotFound
from mcp_autoscale.models import FleetSnapshot, PoolRef, PoolSnapshot
from mcp_autoscale.paging import ATTENTION, active_filters, attention_key, paginate, query_digest, select
from mcp_autoscale.planner import (
    Diagnosis,
    PlannerConfig,
    PoolExplanation,
    Recommendation,
    dark_capacity_nodes,
    explain_pool,
    recommend,
    samples_from_snapshots,
)
from mcp_autoscale.planner.fleet_trades import FleetTrade, fleet_trades, pooled_headroom_note
from mcp_autoscale.planner.recommend import pool_key
from mcp_autoscale.tools._shared import (
    RECOMMEND_PAGE,
    Cursor,
    Deployment,
    GpuType,
    Limit,
    Namespace,
    OptDeployment,
    OptNamespace,
    Owner,
    Progress,
    Slo,
    compact_result,
    read_only,
    tool_error,
)
from mcp_autoscale.tools.fleet import cap_warnings


class Recommendations(BaseModel):
    recommendations: list[Recommendation] = Field(description="Actions first; tool_call is the call to make")
    diagnoses: list[Diagnosis] = Field(
        default_factory=list,
        description="Node-pool findings (idle GPUs); pool findings are on each recommendation",
    )
    trades: list[FleetTrade] = Field(
        default_factory=list,
        description="Fleet scope: GPUs to move between pools where a node pool's limit binds (batch yields "
        "first), each with its tool calls in order",
    )
    data_warnings: list[str] = Field(default_factory=list)
    total_pools: int = 0
    actions: int = Field(default=0, description="Not 'none', all pages")
    next_cursor: str | None = None


def action_key(rec: Recommendation, pool: PoolSnapshot | None) -> tuple[int, int, float, float, str]:
    """Actions before 'none'; then the pool's attention class and p90/target; then the $ at stake."""
    urgency = attention_key(pool) if pool is not None else (len(ATTENTION), 0.0, 0.0, "", "")
    dollars = abs(rec.expected.usd_per_hour_delta or 0.0)
    return (rec.action == "none", urgency[0], urgency[1], -dollars, rec.pool)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    def plan(fleet: FleetSnapshot, filters: dict[str, str]) -> tuple[Recommendations, list[Recommendation]]:
        wanted = select(fleet.pools, filters)
        if filters and not wanted:
            shown = ", ".join(f"{k}={v}" for k, v in filters.items())
            raise tool_error(NotFound(f"no pool matches {shown}"))
        keys = {pool_key(p) for p in wanted}
        all_states = app.backend.list_pools()
        states = [s for s in all_states if s.ref.key in keys]
        history = samples_from_snapshots(app.snapshotter.history())
        scoped = fleet.model_copy(update={"pools": wanted})
        minutes = app.snapshotter.minutes.view()  # demand per minute: the periodic model
        recs = recommend(scoped, states, fleet.node_pools, app.catalogue, history, minutes=minutes)
        by_key = {pool_key(p): p for p in wanted}
        recs.sort(key=lambda r: action_key(r, by_key.get(r.pool)))
        diags = dark_capacity_nodes(list(fleet.node_pools), app.catalogue, PlannerConfig())
        if filters:
            node_pools = {p.node_pool for p in wanted}
            diags = [d for d in diags if d.target.removeprefix("nodepool/") in node_pools]
        trades = [t for t in fleet_trades(fleet, all_states, recs) if t.giver in keys or t.taker in keys]
        header = Recommendations(
            recommendations=[],
            diagnoses=diags,
            trades=trades,
            data_warnings=cap_warnings(fleet.warnings),
            total_pools=len(recs),
            actions=sum(1 for r in recs if r.action != "none"),
        )
        return header, recs

    @server.tool(annotations=read_only("Recommend scaling"))
    async def recommend_scaling(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        slo: Slo = None,
        gpu_type: GpuType = None,
        owner: Owner = None,
        limit: Limit = RECOMMEND_PAGE,
        cursor: Cursor = None,
        ctx: Context | None = None,
    ) -> Annotated[CallToolResult, Recommendations]:
        """Per pool: the recommended action (none / patch_hpa / scale_deployment / request_gpu_nodes), reasons,
        expected effect on SLO and $, and the exact tool call to make (dry_run=true). Never fights an owner.
        Actions first, by breach severity then $; next_cursor pages on."""
        filters = active_filters(  # fixed keyword names: an unknown one is a bug, not bad input
            namespace=namespace, deployment=deployment, slo=slo, gpu_type=gpu_type, owner=owner
        )
        progress = Progress(ctx, 2)
        query = query_digest("recommend_scaling", filters)
        fleet: FleetSnapshot | None = None
        if cursor is None:
            fleet = await progress.run("taking a fleet snapshot", app.snapshotter.take)

        def answer() -> Recommendations:
            def compute() -> tuple[Recommendations, list[Recommendation]]:
                return plan(fleet or app.snapshotter.take(), filters)

            try:
                page = paginate(app.pages, query, limit, cursor, compute)
            except AutoscaleError as err:
                raise tool_error(err) from None
            return page.header.model_copy(
                update={"recommendations": page.items, "next_cursor": page.next_cursor}
            )

        return compact_result(await progress.run("planning capacity and cost per pool", answer))

    @server.tool(name="explain_pool", annotations=read_only("Explain a pool"))
    def explain_pool_tool(
        namespace: Namespace, deployment: Deployment
    ) -> Annotated[CallToolResult, PoolExplanation]:
        """One pool in depth: per-replica capacity, load and forecast, headroom, bottleneck (KV vs compute vs
        queue), saturation, diagnoses with $ evidence, cost per hour and per 1M output tokens."""
        ref = PoolRef(namespace=namespace, name=deployment)
        fleet = app.snapshotter.take(namespace=namespace, name=deployment)
        snap = fleet.pool(ref)
        if snap is None:
            raise tool_error(NotFound(f"unknown pool {ref}; {did_you_mean(ref, app)}"))
        state = app.backend.get_pool(ref)
        node_pool = next((n for n in fleet.node_pools if n.name == state.node_pool), None)
        history = samples_from_snapshots(app.snapshotter.history()).get(ref.key)
        explanation = explain_pool(snap, state, app.catalogue, node_pool, history)
        explanation.pooled_headroom = pooled_headroom_note(state, fleet, app.backend.list_pools())
        return compact_result(explanation)


def did_you_mean(ref: PoolRef, app: AutoscaleApp, n: int = 5) -> str:
    """A few close pool names instead of the whole fleet (which may be 1,000 names)."""
    keys = [p.ref.key for p in app.backend.list_pools()]
    close = difflib.get_close_matches(ref.key, keys, n=n, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{hint}list_pools (filters: namespace, slo, gpu_type, owner) lists the {len(keys)} pools"
