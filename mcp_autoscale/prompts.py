"""MCP prompts: reusable instructions that walk an agent through a task with this server's tools."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from mcp_autoscale.models import K8S_NAME


def register(server: MCPServer) -> None:
    @server.prompt(title="Diagnose an SLO breach")
    def diagnose_slo_breach(
        namespace: Annotated[str, Field(pattern=K8S_NAME)],
        deployment: Annotated[str, Field(pattern=K8S_NAME)],
    ) -> str:
        """Step-by-step diagnosis of a latency SLO breach on one pool, ending in a gated dry-run proposal."""
        pool = f"{namespace}/{deployment}"
        return (
            f"You are the outer-loop autoscaling engineer for the LLM inference pool {pool}.\n"
            "Work through these steps and show the evidence for each conclusion:\n"
            f"1. Call get_slo_snapshot(namespace='{namespace}', deployment='{deployment}'). Note TTFT/ITL p90 "
            "against the targets, KV usage, queue depth, ready vs desired replicas, the owner (HPA/KEDA) and "
            "the age of each signal. If signals are stale or missing, say so and do not act on them.\n"
            "2. Classify the breach: queueing (queue > ~5 per replica, TTFT up, ITL flat), KV pressure "
            "(KV > 0.9, preemptions), compute saturation (ITL up with batch), cold start (replicas starting), "
            "or not capacity at all (low KV and queue yet high latency: CPU-bound or wrong GPU tier).\n"
            "3. Read the matching runbook resource (autoscale://runbooks/...) for the decision steps.\n"
            "4. If capacity is the cause: when an autoscaler owns the replicas, propose patch_hpa "
            "(raise min_replicas, or max_replicas if it is pinned at max); otherwise scale_deployment. "
            "Remember the cold start before new replicas serve, and check node-pool GPU headroom "
            "(request_gpu_nodes if the node pool is the bottleneck).\n"
            "5. Call estimate_cost for the change, then make the call with dry_run=true and a rationale "
            "that cites the numbers. Report the policy verdict and the audit id; never work around a denial.\n"
        )


def register_capacity_review(server: MCPServer) -> None:
    @server.prompt(title="Capacity review")
    def capacity_review(
        namespace: Annotated[str | None, Field(default=None, pattern=K8S_NAME)] = None,
    ) -> str:
        """Walk through a fleet capacity and cost review, ending in dry-run proposals an engineer can approve."""
        scope = f"namespace {namespace}" if namespace else "the whole fleet"
        ns_arg = f"namespace='{namespace}'" if namespace else ""
        return (
            f"Review the capacity and cost of {scope} as the outer-loop autoscaling engineer.\n"
            f"1. get_slo_snapshot({ns_arg}): list pools in breach or with stale/missing data first.\n"
            f"2. recommend_scaling({ns_arg}): for each pool read the action, reasons, expected effect on SLO "
            "and $, and the diagnoses (tier misplacement, dark capacity, CPU-bound, KV pressure vs compute).\n"
            "3. For any pool you are unsure about, explain_pool(namespace, deployment): capacity per replica, "
            "headroom, bottleneck, forecast.\n"
            "4. estimate_cost for the fleet and for each proposed change (what-if replicas or gpu_type).\n"
            "5. check_policy for each proposed call, then make it with dry_run=true and a rationale that cites "
            "the numbers. Never work around a denial; a pending approval goes to a human.\n"
            "6. Finish with a table: pool, finding, action, $/month delta, verdict, audit id.\n"
        )
