"""MCP resources under ``autoscale://``: read-only views an agent (or a person) can attach as context."""

from __future__ import annotations

import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import PoolRef

JSON = "application/json"
RECENT_AUDIT = 20


def _dump(obj: object) -> str:
    return json.dumps(obj, indent=1, default=str)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.resource("autoscale://fleet/snapshot", name="fleet-snapshot", mime_type=JSON)
    def fleet_snapshot() -> str:
        """The whole fleet now: per-pool SLO signals, replicas, owners, cost."""
        return app.snapshotter.take().model_dump_json(indent=1)

    @server.resource("autoscale://cluster/state", name="cluster-state", mime_type=JSON)
    def cluster_state() -> str:
        """Pools (replicas, owners, GPUs, GitOps manager) and GPU node pools, as the backend reports them."""
        pools = [p.model_dump(mode="json") for p in app.backend.list_pools()]
        node_pools = [n.model_dump(mode="json") for n in app.backend.list_node_pools()]
        return _dump({"backend": app.backend.name, "pools": pools, "node_pools": node_pools})

    @server.resource(
        "autoscale://pools/{namespace}/{deployment}/metrics", name="pool-metrics", mime_type=JSON
    )
    def pool_metrics(namespace: str, deployment: str) -> str:
        """One pool's signals, SLO status and data age."""
        try:
            ref = PoolRef(namespace=namespace, name=deployment)
            pool = app.snapshotter.pool(ref)
        except (AutoscaleError, ValueError) as err:
            raise ResourceError(f"pool {namespace}/{deployment}: {err}") from err
        if pool is None:
            raise ResourceError(f"unknown pool {namespace}/{deployment}; see autoscale://cluster/state")
        return pool.model_dump_json(indent=1)

    @server.resource("autoscale://policy/active", name="active-policy", mime_type=JSON)
    def active_policy() -> str:
        """The policy every mutating call is checked against, and where it came from."""
        return _dump(
            {
                "source": app.policy_source,
                "server_dry_run": app.settings.dry_run,
                "policy": app.policy.model_dump(mode="json", exclude_none=True),
            }
        )

    @server.resource("autoscale://audit/recent", name="recent-audit", mime_type=JSON)
    def recent_audit() -> str:
        """The most recent audit records (newest last): who, what, why, verdict, result."""
        records = app.audit.records(limit=RECENT_AUDIT)
        return _dump([r.model_dump(mode="json", exclude={"evidence"}) for r in records])
