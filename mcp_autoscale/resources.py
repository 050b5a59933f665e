"""MCP resources under ``autoscale://``: read-only views an agent (or a person) can attach as context."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from mcp_autoscale.app import AutoscaleApp
from mcp_autoscale.errors import AutoscaleError
from mcp_autoscale.models import PoolRef
from mcp_autoscale.paging import (
    DEFAULT_LIMIT,
    by_attention,
    compact_dump,
    compact_signals,
    compact_text,
    prune,
    summarise,
)

JSON = "application/json"
RECENT_AUDIT = 20


def _dump(obj: object) -> str:
    return compact_text(obj)


def register(server: MCPServer, app: AutoscaleApp) -> None:
    @server.resource("autoscale://fleet/snapshot", name="fleet-snapshot", mime_type=JSON)
    def fleet_snapshot() -> str:
        """The fleet now: a summary of every pool and the most urgent pools (breach, at risk, stale, idle
        spend) with their SLO signals, replicas, owners and cost. get_slo_snapshot pages through the rest."""
        snap = app.snapshotter.take()
        pools = by_attention(snap.pools)
        data = compact_dump(
            snap.model_copy(update={"pools": pools[:DEFAULT_LIMIT], "warnings": snap.warnings[:10]})
        )
        data["total_pools"] = len(pools)
        data["summary"] = summarise(pools).model_dump(mode="json")
        if len(pools) > DEFAULT_LIMIT:
            data["more"] = f"{len(pools) - DEFAULT_LIMIT} more pools: get_slo_snapshot(cursor=...) pages on"
        return _dump(data)

    @server.resource("autoscale://cluster/state", name="cluster-state", mime_type=JSON)
    def cluster_state() -> str:
        """GPU node pools and the first pools (replicas, owners, GPUs, GitOps manager) by name, as the
        backend reports them; list_pools pages through every pool with filters."""
        states = sorted(app.backend.list_pools(), key=lambda p: p.ref.key)
        shown = [
            {k: v for k, v in prune(p).items() if k not in ("metrics_urls", "labels")}
            for p in states[:DEFAULT_LIMIT]
        ]
        node_pools = [prune(n) for n in app.backend.list_node_pools()]
        data: dict[str, object] = {
            "backend": app.backend.name,
            "total_pools": len(states),
            "pools": shown,
            "node_pools": node_pools,
        }
        if len(states) > DEFAULT_LIMIT:
            data["more"] = f"{len(states) - DEFAULT_LIMIT} more pools: list_pools(cursor=...) pages on"
        return _dump(data)

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
        data = prune(pool)
        compact_signals(data["signals"])
        return _dump(data)

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
