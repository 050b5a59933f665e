"""``estimate_cost``: $ per pool and fleet, $ per 1M tokens, and what-if deltas for a proposed change."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult
from pydantic import Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.cost import CostEstimate, WhatIf, estimate
from mcp_autoscale.cost.estimate import PoolCost
from mcp_autoscale.errors import AutoscaleError, InvalidInput
from mcp_autoscale.paging import active_filters, paginate, query_digest, select
from mcp_autoscale.planner.recommend import pool_key
from mcp_autoscale.tools._shared import (
    DEFAULT_PAGE,
    Cursor,
    Limit,
    OptDeployment,
    OptNamespace,
    Owner,
    Slo,
    compact_result,
    read_only,
    tool_error,
)
from mcp_autoscale.tools.fleet import cap_warnings


class CostPage(CostEstimate):
    """Fleet totals over every matching pool; ``pools`` is one page of them, biggest spenders first."""

    total_pools: int = 0
    next_cursor: str | None = None


def register(server: MCPServer, app: AutoscaleApp) -> None:
    def costs(filters: dict[str, str], what_if: WhatIf | None) -> tuple[CostEstimate, list[PoolCost]]:
        snap = app.snapshotter.take(namespace=filters.get("namespace"), name=filters.get("deployment"))
        pools = select(snap.pools, filters)
        if filters and not pools:
            shown = ", ".join(f"{k}={v}" for k, v in filters.items())
            raise InvalidInput(f"no pool matches {shown}")
        keys = {pool_key(p) for p in pools}
        states = [p for p in app.backend.list_pools() if p.ref.key in keys]
        result = estimate(snap.model_copy(update={"pools": pools}), states, app.catalogue, what_if)
        ranked = sorted(result.pools, key=lambda c: (-(c.usd_per_hour or 0.0), c.pool))
        header = result.model_copy(update={"pools": [], "warnings": cap_warnings(result.warnings)})
        return header, ranked

    @server.tool(annotations=read_only("Estimate cost"))
    def estimate_cost(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        replicas: Annotated[
            int | None, Field(default=None, ge=0, le=1000, description="What-if replicas")
        ] = None,
        gpu_type: Annotated[
            str | None,
            Field(
                default=None,
                max_length=32,
                description="Filter; with namespace+deployment: what-if GPU",
            ),
        ] = None,
        capacity_type: Annotated[
            Literal["on-demand", "spot"] | None, Field(default=None, description="What-if capacity type")
        ] = None,
        slo: Slo = None,
        owner: Owner = None,
        limit: Limit = DEFAULT_PAGE,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, CostPage]:
        """Fleet $/h and $/month (all matching pools), $ per 1M tokens at observed throughput, idle GPU $ per
        node pool, and the top spenders (next_cursor pages on). With namespace+deployment and
        replicas/gpu_type/capacity_type: the $ delta of that what-if."""
        pool_given = namespace is not None and deployment is not None
        what_if = None
        if any(v is not None for v in (replicas, capacity_type)) or (gpu_type is not None and pool_given):
            if not pool_given:
                raise tool_error(InvalidInput("a what-if needs namespace and deployment"))
            what_if = WhatIf(
                namespace=namespace or "",
                deployment=deployment or "",
                replicas=replicas,
                gpu_type=gpu_type,
                capacity_type=capacity_type,
            )
        try:
            filters = active_filters(
                namespace=namespace,
                deployment=deployment,
                slo=slo,
                gpu_type=None if what_if is not None else gpu_type,
                owner=owner,
            )
            query = query_digest("estimate_cost", {**filters, "what_if": what_if and what_if.model_dump()})
            page = paginate(app.pages, query, limit, cursor, lambda: costs(filters, what_if))
        except AutoscaleError as err:
            raise tool_error(err) from None
        out = CostPage(
            **page.header.model_dump(exclude={"pools"}),
            pools=page.items,
            total_pools=page.total,
            next_cursor=page.next_cursor,
        )
        return compact_result(out)
