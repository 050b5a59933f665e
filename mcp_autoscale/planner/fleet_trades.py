"""Fleet-scope trades for ``recommend_scaling``: when a node pool's GPU limit cannot hold what the per-pool
recommendations ask for, move GPUs from pools whose breach costs least per GPU (batch first) to those whose
breach costs most, each trade as the exact gated tool calls (dry_run=true) and a one-line why.

A pool is ``batch`` when its Deployment is labelled ``priority: batch`` (or ``mcp-autoscale/priority``);
otherwise it is ``interactive``. Pure: the snapshot, the cluster state and the recommendations in, trades out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from mcp_autoscale.models import FleetSnapshot, PoolState
from mcp_autoscale.planner.fleet import FleetPolicy, PoolClaim, Priority, allocate
from mcp_autoscale.planner.models import Recommendation, ToolCall

PRIORITY_LABELS = ("priority", "mcp-autoscale/priority")


class FleetTrade(BaseModel):
    node_pool: str
    giver: str = Field(description="namespace/deployment that yields GPUs")
    taker: str = Field(description="namespace/deployment that gets them")
    gpus: int
    usd_per_hour_breach_saved: float
    giver_backlog_drains_by: str | None = Field(
        default=None, description="HH:MM UTC, a batch giver's backlog"
    )
    summary: str
    tool_calls: list[ToolCall] = Field(
        description="Make these in order (giver first): each goes through the gate"
    )


def priority_of(state: PoolState | None) -> Priority:
    labels = state.labels if state is not None else {}
    return "batch" if any(labels.get(k) == "batch" for k in PRIORITY_LABELS) else "interactive"


def _call(state: PoolState | None, key: str, replicas: int, rationale: str) -> ToolCall:
    ns, name = key.split("/", 1)
    args: dict[str, Any] = {"namespace": ns, "deployment": name, "rationale": rationale, "dry_run": True}
    if state is not None and state.autoscaler is not None:
        lo = min(state.autoscaler.min_replicas or 1, replicas)
        return ToolCall(
            tool="patch_hpa", arguments={**args, "min_replicas": lo, "max_replicas": max(1, replicas)}
        )
    return ToolCall(tool="scale_deployment", arguments={**args, "replicas": replicas})


def fleet_trades(
    snapshot: FleetSnapshot,
    states: Sequence[PoolState],
    recs: Sequence[Recommendation],
    policy: FleetPolicy | None = None,
    now: datetime | None = None,
) -> list[FleetTrade]:
    """Trades on every node pool whose limit binds under the recommendations (none where it does not)."""
    policy = policy or FleetPolicy()
    by_state = {s.ref.key: s for s in states}
    by_rec = {r.pool: r for r in recs}
    at = now or snapshot.taken_at
    out: list[FleetTrade] = []
    for npool in snapshot.node_pools:
        if npool.gpu_limit is None:
            continue
        pools = [p for p in snapshot.pools if p.node_pool == npool.name]
        claims: list[PoolClaim] = []
        gpr: dict[str, int] = {}
        for p in pools:
            key = f"{p.namespace}/{p.name}"
            g = max(1, p.gpus_per_replica)
            gpr[key] = g
            rec = by_rec.get(key)
            now_r = p.replicas.get("desired", 0)
            held = p.replicas.get("ready", 0) + p.replicas.get("starting", 0)  # pending pods hold no GPU
            want_r = max(now_r, rec.replicas_target) if rec is not None else now_r
            ready = max(1, p.replicas.get("ready", 0))
            rps = p.signals.request_rps or 0.0
            claims.append(
                PoolClaim(
                    key=key,
                    priority=priority_of(by_state.get(key)),
                    floor=1,
                    gpus_now=held * g,
                    want=max(want_r, 1) * g,
                    backlog=p.signals.queue_depth or 0.0,
                    arrival_rps=rps,
                    per_gpu_rps=max(1e-3, rps / (ready * g)),
                )
            )
        if sum(c.want for c in claims) <= npool.gpu_limit:
            continue
        alloc = allocate(npool.gpu_limit, claims, policy)
        for tr in alloc.trades:
            drains = (
                (at + timedelta(seconds=tr.giver_drains_in_s)).strftime("%H:%M")
                if tr.giver_drains_in_s is not None and tr.giver_drains_in_s != float("inf")
                else None
            )
            summary = tr.sentence(npool.gpu_type)
            if drains is not None:
                summary = (
                    summary.split(f", {tr.giver} backlog")[0] + f", {tr.giver} backlog drains by {drains} UTC"
                )
            why = f"{npool.name} at its {npool.gpu_limit}-GPU limit: {summary}"
            giver_r = alloc.grants[tr.giver] // gpr[tr.giver]
            taker_r = alloc.grants[tr.taker] // gpr[tr.taker]
            out.append(
                FleetTrade(
                    node_pool=npool.name,
                    giver=tr.giver,
                    taker=tr.taker,
                    gpus=tr.gpus,
                    usd_per_hour_breach_saved=tr.usd_per_h_saved,
                    giver_backlog_drains_by=drains,
                    summary=summary,
                    tool_calls=[
                        _call(by_state.get(tr.giver), tr.giver, giver_r, why),
                        _call(by_state.get(tr.taker), tr.taker, taker_r, why),
                    ],
                )
            )
    return out


def pooled_headroom_note(
    state: PoolState, snapshot: FleetSnapshot, states: Sequence[PoolState]
) -> str | None:
    """What ``explain_pool`` says when this pool's burst headroom is pooled: warm placeholder GPUs on its
    node pool, or batch pools on it that yield first (None when neither)."""
    npool = next((n for n in snapshot.node_pools if n.name == state.node_pool), None)
    if npool is None:
        return None
    parts: list[str] = []
    if npool.reserved_gpus > 0:
        parts.append(f"{npool.reserved_gpus} warm placeholder GPU that any pool's pods pre-empt")
    if priority_of(state) == "interactive":
        batch = [
            s.ref.key
            for s in states
            if s.node_pool == npool.name and s.ref.key != state.ref.key and priority_of(s) == "batch"
        ]
        if batch:
            parts.append(f"batch pools that yield first when the limit binds: {', '.join(sorted(batch))}")
    if not parts:
        return None
    return f"headroom is pooled on {npool.name}: " + "; ".join(parts)
