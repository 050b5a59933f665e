"""Planner tools: per-pool recommendations with the exact tool call to make, and a pool explanation.

The planner is pure (``mcp_autoscale.planner``); this module feeds it the snapshot, the cluster state,
the node pools, the price catalogue and the recent snapshot history, and returns its answer.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import NotFound
from mcp_autoscale.models import FleetSnapshot, PoolRef
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
from mcp_autoscale.tools._shared import (
    Deployment,
    Namespace,
    OptDeployment,
    OptNamespace,
    Progress,
    read_only,
    tool_error,
)


class Recommendations(BaseModel):
    recommendations: list[Recommendation] = Field(description="One per pool; tool_call is the call to make")
    diagnoses: list[Diagnosis] = Field(
        default_factory=list,
        description="Node-pool findings (idle GPUs); pool findings are on each recommendation",
    )
    data_warnings: list[str] = Field(default_factory=list)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    def plan(fleet: FleetSnapshot, namespace: str | None, deployment: str | None) -> Recommendations:
        states = app.backend.list_pools()
        history = samples_from_snapshots(app.snapshotter.history())
        recs = recommend(fleet, states, fleet.node_pools, app.catalogue, history)
        diags = dark_capacity_nodes(list(fleet.node_pools), app.catalogue, PlannerConfig())
        if namespace is not None or deployment is not None:
            wanted = {
                f"{p.namespace}/{p.name}"
                for p in fleet.pools
                if (namespace is None or p.namespace == namespace)
                and (deployment is None or p.name == deployment)
            }
            if not wanted:
                raise tool_error(NotFound(f"no pool matches namespace={namespace} deployment={deployment}"))
            recs = [r for r in recs if r.pool in wanted]
            node_pools = {p.node_pool for p in fleet.pools if f"{p.namespace}/{p.name}" in wanted}
            diags = [d for d in diags if d.target.removeprefix("nodepool/") in node_pools]
        return Recommendations(recommendations=recs, diagnoses=diags, data_warnings=fleet.warnings)

    @server.tool(annotations=read_only("Recommend scaling"))
    async def recommend_scaling(
        namespace: OptNamespace = None, deployment: OptDeployment = None, ctx: Context | None = None
    ) -> Recommendations:
        """Per pool: the recommended action (none / patch_hpa / scale_deployment / request_gpu_nodes), reasons,
        expected effect on SLO and $, and the exact tool call to make (dry_run=true). Never fights an owner."""
        progress = Progress(ctx, 2)
        fleet = await progress.run("taking a fleet snapshot", app.snapshotter.take)
        return await progress.run(
            "planning capacity and cost per pool", lambda: plan(fleet, namespace, deployment)
        )

    @server.tool(name="explain_pool", annotations=read_only("Explain a pool"))
    def explain_pool_tool(namespace: Namespace, deployment: Deployment) -> PoolExplanation:
        """One pool in depth: per-replica capacity, load and forecast, headroom, bottleneck (KV vs compute vs
        queue), saturation, diagnoses with $ evidence, cost per hour and per 1M output tokens."""
        ref = PoolRef(namespace=namespace, name=deployment)
        fleet = app.snapshotter.take()
        snap = fleet.pool(ref)
        if snap is None:
            known = ", ".join(f"{p.namespace}/{p.name}" for p in fleet.pools)
            raise tool_error(NotFound(f"unknown pool {ref}; known pools: {known}"))
        state = app.backend.get_pool(ref)
        node_pool = next((n for n in fleet.node_pools if n.name == state.node_pool), None)
        history = samples_from_snapshots(app.snapshotter.history()).get(ref.key)
        return explain_pool(snap, state, app.catalogue, node_pool, history)
