"""``estimate_cost``: $ per pool and fleet, $ per 1M tokens, and what-if deltas for a proposed change."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.cost import CostEstimate, WhatIf, estimate
from mcp_autoscale.errors import InvalidInput
from mcp_autoscale.tools._shared import OptDeployment, OptNamespace, read_only, tool_error


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.tool(annotations=read_only("Estimate cost"))
    def estimate_cost(
        namespace: OptNamespace = None,
        deployment: OptDeployment = None,
        replicas: Annotated[
            int | None, Field(default=None, ge=0, le=1000, description="What-if replicas")
        ] = None,
        gpu_type: Annotated[
            str | None, Field(default=None, max_length=32, description="What-if GPU: L4, L40S, A100-80, H100")
        ] = None,
        capacity_type: Annotated[
            Literal["on-demand", "spot"] | None, Field(default=None, description="What-if capacity type")
        ] = None,
    ) -> CostEstimate:
        """Current $/h and $/month per pool and fleet, $ per 1M input/output tokens at observed throughput,
        idle GPU $ per node pool. With namespace+deployment and replicas/gpu_type/capacity_type: the $ delta."""
        wants_what_if = any(v is not None for v in (replicas, gpu_type, capacity_type))
        what_if = None
        if wants_what_if:
            if namespace is None or deployment is None:
                raise tool_error(InvalidInput("a what-if needs namespace and deployment"))
            what_if = WhatIf(
                namespace=namespace,
                deployment=deployment,
                replicas=replicas,
                gpu_type=gpu_type,
                capacity_type=capacity_type,
            )
        snap = app.snapshotter.take(namespace=namespace, name=deployment)
        if (namespace or deployment) and not snap.pools:
            raise tool_error(InvalidInput(f"no pool matches namespace={namespace} deployment={deployment}"))
        states = [p for p in app.backend.list_pools() if any(p.ref == s.ref for s in snap.pools)]
        return estimate(snap, states, app.catalogue, what_if)
