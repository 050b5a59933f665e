"""GitOps drift: a read-only tool and resource comparing the live cluster with the manifests in Git."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.gitops.drift import DriftReport, drift_report
from mcp_autoscale.tools._shared import OptDeployment, OptNamespace, read_only


def _report(app: AutoscaleApp, namespace: str | None = None, deployment: str | None = None) -> DriftReport:
    pools = [
        p
        for p in app.backend.list_pools()
        if (namespace is None or p.ref.namespace == namespace)
        and (deployment is None or p.ref.name == deployment)
    ]
    node_pools = app.backend.list_node_pools() if namespace is None and deployment is None else []
    return drift_report(app.policy.gitops, pools, node_pools)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.tool(annotations=read_only("GitOps drift"))
    def gitops_drift(namespace: OptNamespace = None, deployment: OptDeployment = None) -> DriftReport:
        """Where live replicas, autoscaler bounds or NodePool GPU limits differ from the manifests in Git
        (policy gitops.targets). status autoscaled = KEDA/HPA moved replicas within Git's bounds (expected);
        hand_patched = bounds/limits changed outside Git, or replicas on a pool no autoscaler owns."""
        return _report(app, namespace, deployment)

    @server.resource("autoscale://gitops/drift", name="gitops-drift", mime_type="application/json")
    def gitops_drift_resource() -> str:
        """Live cluster vs Git for every mapped pool and node pool (see the gitops_drift tool)."""
        return _report(app).model_dump_json(indent=1)
